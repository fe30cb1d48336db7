"""Hand-packed encoders for the two PDUs sent once per message: submit_sm and deliver_sm_resp.

smpplib builds every PDU through a generic field walker (~250 µs a PDU here, the largest
single cost at thousands of messages a second). Everything else, and all parsing, stays with
smpplib; a unit test checks these bytes against smpplib's own for the same fields.
"""

from __future__ import annotations

import struct
from typing import Final

SUBMIT_SM: Final = 0x00000004
DELIVER_SM_RESP: Final = 0x80000005
_HEADER = struct.Struct(">IIII")
MAX_ADDRESS: Final = 20  # octets, without the terminating NUL
MAX_SHORT_MESSAGE: Final = 254


def _cstring(value: str, limit: int, field: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) > limit:
        raise ValueError(f"{field} longer than {limit} characters: {value!r}")
    return raw + b"\0"


def submit_sm(
    sequence: int,
    *,
    source_addr: str,
    source_addr_ton: int,
    source_addr_npi: int,
    destination_addr: str,
    dest_addr_ton: int,
    dest_addr_npi: int,
    esm_class: int,
    data_coding: int,
    registered_delivery: int,
    short_message: bytes,
    service_type: str = "",
) -> bytes:
    if len(short_message) > MAX_SHORT_MESSAGE:
        raise ValueError(f"short_message of {len(short_message)} octets (max 254)")
    body = b"".join(
        (
            _cstring(service_type, 5, "service_type"),
            bytes((source_addr_ton, source_addr_npi)),
            _cstring(source_addr, MAX_ADDRESS, "source_addr"),
            bytes((dest_addr_ton, dest_addr_npi)),
            _cstring(destination_addr, MAX_ADDRESS, "destination_addr"),
            bytes((esm_class, 0, 0)),  # protocol_id, priority_flag
            b"\0\0",  # schedule_delivery_time, validity_period: SMSC defaults
            bytes((registered_delivery, 0, data_coding, 0, len(short_message))),
            short_message,
        )
    )
    return _HEADER.pack(16 + len(body), SUBMIT_SM, 0, sequence) + body


def deliver_sm_resp(sequence: int, status: int) -> bytes:
    body = b"\0"  # message_id: unused, always empty
    return _HEADER.pack(16 + len(body), DELIVER_SM_RESP, status, sequence) + body
