"""Hand-packed codecs for the PDUs that flow once per message: submit_sm and deliver_sm_resp
out, submit_sm_resp and deliver_sm in.

smpplib builds and parses every PDU through a generic field walker (~250 µs to build a
submit_sm, ~200 µs to parse a receipt here: the largest costs at thousands of messages a
second). Bind, unbind, enquire_link and anything unusual stay with smpplib; unit tests check
these codecs against smpplib's own for the same fields.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
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
    return inbound_resp(DELIVER_SM, sequence, status)


def inbound_resp(command: int, sequence: int, status: int) -> bytes:
    """The answer to an inbound deliver_sm or data_sm (message_id unused, always empty)."""
    body = b"\0"
    return _HEADER.pack(16 + len(body), command | RESP_BIT, status, sequence) + body


def generic_nack(sequence: int, status: int) -> bytes:
    """The answer to a PDU whose header cannot be acted on (unknown command_id)."""
    return _HEADER.pack(16, GENERIC_NACK, status, sequence)


def header(raw: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) of a whole PDU."""
    length, command, status, sequence = _HEADER.unpack_from(raw)
    return length, command, status, sequence


RESP_BIT: Final = 0x80000000
GENERIC_NACK: Final = 0x80000000
SUBMIT_SM_RESP: Final = 0x80000004
DELIVER_SM: Final = 0x00000005
DATA_SM: Final = 0x00000103
TAG_RECEIPTED_MESSAGE_ID: Final = 0x001E
TAG_MESSAGE_PAYLOAD: Final = 0x0424


@dataclass(frozen=True)
class RawDeliverSm:
    """The deliver_sm / data_sm fields contactd reads, named as smpplib names them."""

    sequence: int
    source_addr: bytes
    destination_addr: bytes
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_message_id: bytes | None
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    command: int = DELIVER_SM


def command_id(raw: bytes) -> int:
    return int.from_bytes(raw[4:8], "big")


def parse_submit_sm_resp(raw: bytes) -> tuple[int, int, str]:
    """(sequence, status, message_id); an error response may carry no body at all."""
    _, _, status, sequence = _HEADER.unpack_from(raw)
    end = raw.find(b"\0", 16)
    message_id = raw[16:end if end >= 0 else len(raw)].decode("latin-1")
    return sequence, status, message_id


class _Reader:
    """Walks a PDU body; every read past the declared length raises ValueError."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.length = _HEADER.unpack_from(raw)[0]
        if self.length != len(raw):
            raise ValueError(f"command_length {self.length} but {len(raw)} octets")
        self.pos = 16

    def octets(self, n: int) -> bytes:
        end = self.pos + n
        if end > self.length:
            raise ValueError(f"PDU ends inside a field at octet {self.pos}")
        value = self.raw[self.pos : end]
        self.pos = end
        return value

    def byte(self) -> int:
        return self.octets(1)[0]

    def cstring(self) -> bytes:
        end = self.raw.index(b"\0", self.pos, self.length)  # ValueError when unterminated
        value = self.raw[self.pos : end]
        self.pos = end + 1
        return value

    def tlvs(self) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        while self.pos < self.length:
            tag, size = struct.unpack(">HH", self.octets(4))
            found.setdefault(tag, self.octets(size))
        return found


def _parse_mo(
    raw: bytes, body: Callable[[_Reader], tuple[int, bytes]], command: int
) -> RawDeliverSm:
    """The fields deliver_sm and data_sm share (addresses first, TLVs last); `body` reads what
    lies between esm_class and the TLVs and returns (data_coding, short_message)."""
    r = _Reader(raw)
    sequence = _HEADER.unpack_from(raw)[3]
    r.cstring()  # service_type
    ton, npi = r.byte(), r.byte()
    source = r.cstring()
    r.octets(2)  # dest_addr_ton, dest_addr_npi
    destination = r.cstring()
    esm_class = r.byte()
    data_coding, short_message = body(r)
    tlvs = r.tlvs()
    if not short_message:
        short_message = tlvs.get(TAG_MESSAGE_PAYLOAD, b"")
    receipted = tlvs.get(TAG_RECEIPTED_MESSAGE_ID)
    return RawDeliverSm(
        sequence,
        source,
        destination,
        esm_class,
        data_coding,
        short_message,
        receipted.rstrip(b"\0") if receipted is not None else None,
        ton,
        npi,
        command,
    )


def _deliver_sm_body(r: _Reader) -> tuple[int, bytes]:
    r.octets(2)  # protocol_id, priority_flag
    r.cstring()  # schedule_delivery_time
    r.cstring()  # validity_period
    r.octets(2)  # registered_delivery, replace_if_present_flag
    data_coding = r.byte()
    r.byte()  # sm_default_msg_id
    return data_coding, r.octets(r.byte())


def _data_sm_body(r: _Reader) -> tuple[int, bytes]:
    r.byte()  # registered_delivery
    return r.byte(), b""  # data_coding; the text travels in message_payload


def parse_deliver_sm(raw: bytes) -> RawDeliverSm:
    """Read a deliver_sm the way SMPP 3.4 lays it out; ValueError when malformed."""
    return _parse_mo(raw, _deliver_sm_body, DELIVER_SM)


def parse_data_sm(raw: bytes) -> RawDeliverSm:
    """Read a data_sm (some SMSCs send MO texts and receipts this way); text in message_payload."""
    return _parse_mo(raw, _data_sm_body, DATA_SM)
