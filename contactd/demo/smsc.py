"""A minimal SMSC for the demo: an SMPP 3.4 server answering bind, submit_sm, enquire_link
and unbind, sending delivery receipts and, for some messages, a reply from the recipient
(now and then a STOP), the way a provider's SMSC does. No root, no Node: asyncio only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import struct
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from contactd.background import TaskOwner

log = logging.getLogger(__name__)

HEADER: Final = struct.Struct(">IIII")
BIND_RECEIVER: Final = 0x00000001
BIND_TRANSMITTER: Final = 0x00000002
SUBMIT_SM: Final = 0x00000004
DELIVER_SM: Final = 0x00000005
UNBIND: Final = 0x00000006
BIND_TRANSCEIVER: Final = 0x00000009
ENQUIRE_LINK: Final = 0x00000015
GENERIC_NACK: Final = 0x80000000
RESP: Final = 0x80000000
ESME_ROK: Final = 0x00000000
ESME_RINVCMDID: Final = 0x00000003
ESME_RBINDFAIL: Final = 0x0000000D
ESME_RINVBNDSTS: Final = 0x00000004
ESM_RECEIPT: Final = 0x04
TLV_RECEIPTED_ID: Final = 0x001E
TLV_MESSAGE_STATE: Final = 0x0427
STATE_DELIVERED: Final = 2
MAX_PDU_BYTES: Final = 64 * 1024
REPLIES: Final = ("Thanks, see you then", "Yes please", "Can you call me tomorrow?", "OK")


def _cstr(data: bytes, at: int) -> tuple[bytes, int]:
    end = data.index(b"\0", at)
    return data[at:end], end + 1


@dataclass(frozen=True)
class Submitted:
    message_id: str
    source: str
    destination: str
    data_coding: int
    short_message: bytes


def parse_submit(body: bytes) -> Submitted:
    """The fields of a submit_sm body this SMSC uses (SMPP 3.4 §4.4.1)."""
    _service, at = _cstr(body, 0)
    at += 2  # source ton, npi
    source, at = _cstr(body, at)
    at += 2  # dest ton, npi
    destination, at = _cstr(body, at)
    at += 3  # esm_class, protocol_id, priority_flag
    _schedule, at = _cstr(body, at)
    _validity, at = _cstr(body, at)
    at += 2  # registered_delivery, replace_if_present
    data_coding = body[at]
    length = body[at + 2]
    message = body[at + 3 : at + 3 + length]
    return Submitted("", source.decode("latin-1"), destination.decode("latin-1"), data_coding,
                     message)


def deliver_body(source: str, destination: str, text: bytes, *, esm_class: int,
                 tlvs: bytes = b"") -> bytes:
    return (
        b"\0" + b"\x01\x01" + source.encode("latin-1") + b"\0"
        + b"\x01\x01" + destination.encode("latin-1") + b"\0"
        + bytes([esm_class, 0, 0]) + b"\0" + b"\0" + bytes([0, 0, 0, 0, len(text)]) + text
        + tlvs
    )


def _tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


@dataclass
class SmscStats:
    submitted: int = 0
    receipts: int = 0
    replies: int = 0
    stops: int = 0


class DemoSmsc:
    """Async context manager: listens on host:port (0: any free port, see `.port`)."""

    def __init__(
        self,
        *,
        system_id: str,
        password: str,
        host: str = "127.0.0.1",
        port: int = 0,
        receipt_delay_s: tuple[float, float] = (0.3, 2.0),
        reply_delay_s: tuple[float, float] = (3.0, 12.0),
        reply_pct: float = 30.0,
        stop_pct: float = 20.0,
        rng: random.Random | None = None,
    ) -> None:
        self.system_id, self._password = system_id, password
        self.host, self.port = host, port
        self.receipt_delay_s, self.reply_delay_s = receipt_delay_s, reply_delay_s
        self.reply_pct, self.stop_pct = reply_pct, stop_pct
        self.rng = rng or random.Random()
        self.stats = SmscStats()
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks = TaskOwner("demo-smsc", log)
        self._receivers: list[_Link] = []

    async def __aenter__(self) -> DemoSmsc:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._receivers):
            link.writer.close()
        await self._tasks.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        self._tasks.spawn(self._read(link, reader), "link")

    async def _read(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                head = await reader.readexactly(HEADER.size)
                length, command, _status, sequence = HEADER.unpack(head)
                if not HEADER.size <= length <= MAX_PDU_BYTES:
                    link.send(GENERIC_NACK, 0x00000002, sequence)  # ESME_RINVCMDLEN
                    return
                body = await reader.readexactly(length - HEADER.size)
                if not self._answer(link, command, sequence, body):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if link in self._receivers:
                self._receivers.remove(link)
            link.writer.close()

    def _answer(self, link: _Link, command: int, sequence: int, body: bytes) -> bool:
        """Reply to one PDU; False ends the session."""
        if command in (BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER):
            system_id, at = _cstr(body, 0)
            password, _ = _cstr(body, at)
            ok = system_id.decode() == self.system_id and password.decode() == self._password
            status = ESME_ROK if ok else ESME_RBINDFAIL
            link.send(command | RESP, status, sequence, b"demo-smsc\0")
            if ok and command != BIND_TRANSMITTER:
                self._receivers.append(link)
            link.bound = ok
            return ok
        if command == ENQUIRE_LINK:
            link.send(ENQUIRE_LINK | RESP, ESME_ROK, sequence)
            return True
        if command == UNBIND:
            link.send(UNBIND | RESP, ESME_ROK, sequence)
            return False
        if command & RESP:
            return True  # deliver_sm_resp and the like: nothing to do
        if not link.bound:
            link.send(command | RESP, ESME_RINVBNDSTS, sequence)
            return True
        if command == SUBMIT_SM:
            submitted = parse_submit(body)
            message_id = f"demo{next(self._ids):08d}"
            link.send(SUBMIT_SM | RESP, ESME_ROK, sequence, message_id.encode() + b"\0")
            self.stats.submitted += 1
            self._tasks.spawn(self._after_submit(message_id, submitted), f"after-{message_id}")
            return True
        link.send(GENERIC_NACK, ESME_RINVCMDID, sequence)
        return True

    async def _after_submit(self, message_id: str, sms: Submitted) -> None:
        await asyncio.sleep(self.rng.uniform(*self.receipt_delay_s))  # the network's delay
        stamp = time.strftime("%y%m%d%H%M", time.gmtime())
        text = (f"id:{message_id} sub:001 dlvrd:001 submit date:{stamp} done date:{stamp} "
                f"stat:DELIVRD err:000 text:").encode("latin-1")
        tlvs = (_tlv(TLV_RECEIPTED_ID, message_id.encode() + b"\0")
                + _tlv(TLV_MESSAGE_STATE, bytes([STATE_DELIVERED])))
        self._deliver(deliver_body(sms.destination, sms.source, text, esm_class=ESM_RECEIPT,
                                   tlvs=tlvs))
        self.stats.receipts += 1
        if self.rng.uniform(0, 100) >= self.reply_pct:
            return
        await asyncio.sleep(self.rng.uniform(*self.reply_delay_s))  # the person types
        stop = self.rng.uniform(0, 100) < self.stop_pct
        reply = "STOP" if stop else self.rng.choice(REPLIES)
        self._deliver(deliver_body(sms.destination, sms.source, reply.encode("latin-1"),
                                   esm_class=0))
        self.stats.replies += 1
        self.stats.stops += int(stop)

    def _deliver(self, body: bytes) -> None:
        for link in self._receivers:
            link.send(DELIVER_SM, ESME_ROK, link.next_sequence(), body)
            return
        log.warning("demo SMSC: no receiver bound; a deliver_sm is dropped")


class _Link:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.bound = False
        self._sequence = itertools.count(1)

    def next_sequence(self) -> int:
        return next(self._sequence)

    def send(self, command: int, status: int, sequence: int, body: bytes = b"") -> None:
        if not self.writer.is_closing():
            self.writer.write(HEADER.pack(HEADER.size + len(body), command, status, sequence)
                              + body)
