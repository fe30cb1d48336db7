"""Hand-packed codecs for the PDUs that flow once per message: submit_sm and deliver_sm_resp
out, submit_sm_resp and deliver_sm in.

smpplib builds and parses every PDU through a generic field walker (~250 µs to build a
submit_sm, ~200 µs to parse a receipt here: the largest costs at thousands of messages a
second). Bind, unbind, enquire_link and anything unusual stay with smpplib; unit tests check
these codecs against smpplib's own for the same fields.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
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


SUBMIT_SM_RESP: Final = 0x80000004
DELIVER_SM: Final = 0x00000005
TAG_RECEIPTED_MESSAGE_ID: Final = 0x001E
TAG_MESSAGE_PAYLOAD: Final = 0x0424


@dataclass(frozen=True)
class RawDeliverSm:
    """The deliver_sm fields contactd reads, named as smpplib names them."""

    sequence: int
    source_addr: bytes
    destination_addr: bytes
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_message_id: bytes | None


def command_id(raw: bytes) -> int:
    return int.from_bytes(raw[4:8], "big")


def parse_submit_sm_resp(raw: bytes) -> tuple[int, int, str]:
    """(sequence, status, message_id); an error response may carry no body at all."""
    _, _, status, sequence = _HEADER.unpack_from(raw)
    end = raw.find(b"\0", 16)
    message_id = raw[16:end if end >= 0 else len(raw)].decode("latin-1")
    return sequence, status, message_id


def parse_deliver_sm(raw: bytes) -> RawDeliverSm:
    """Read a deliver_sm the way SMPP 3.4 lays it out; ValueError/IndexError when malformed."""
    length, _, _, sequence = _HEADER.unpack_from(raw)
    pos = 16

    def cstring() -> bytes:
        nonlocal pos
        end = raw.index(b"\0", pos, length)
        value = raw[pos:end]
        pos = end + 1
        return value

    cstring()  # service_type
    pos += 2  # source_addr_ton, source_addr_npi
    source = cstring()
    pos += 2  # dest_addr_ton, dest_addr_npi
    destination = cstring()
    esm_class = raw[pos]
    pos += 3  # esm_class, protocol_id, priority_flag
    cstring()  # schedule_delivery_time
    cstring()  # validity_period
    pos += 2  # registered_delivery, replace_if_present_flag
    data_coding = raw[pos]
    sm_length = raw[pos + 2]  # after sm_default_msg_id
    pos += 3
    short_message = raw[pos : pos + sm_length]
    pos += sm_length
    receipted: bytes | None = None
    while pos + 4 <= length:
        tag, size = struct.unpack_from(">HH", raw, pos)
        value = raw[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if tag == TAG_RECEIPTED_MESSAGE_ID:
            receipted = value.rstrip(b"\0")
        elif tag == TAG_MESSAGE_PAYLOAD and not short_message:
            short_message = value
    return RawDeliverSm(
        sequence, source, destination, esm_class, data_coding, short_message, receipted
    )
