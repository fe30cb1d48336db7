"""The blocking half of the SMPP client: smpplib in one reader thread and one writer thread.

smpplib is blocking and not thread-safe, so it never runs on the event loop. The reader thread
owns the connection (connect, bind, read loop, reconnect with back-off); the writer thread
sends PDUs the loop has already encoded. Every socket write holds one lock. Whatever the
threads learn goes to the loop through `call_soon_threadsafe`, batched so that a burst of
responses costs one wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import smpplib.client
import smpplib.command_codes
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp

from contactd.messaging import pdu as pdu_codec

log = logging.getLogger(__name__)

MAX_SEQUENCE: Final = 0x7FFFFFFF
MAX_PDU_BYTES: Final = 65536  # anything larger is a broken stream, not a PDU
READ_CHUNK: Final = 65536
ESME_RINVCMDLEN: Final = 0x02
ESME_RINVCMDID: Final = 0x03
ESME_RX_P_APPN: Final = 0x65  # "permanent receiver error": an SMSC does not redeliver it
# smpplib logs every PDU it writes in hex at debug, the bind (and its password) included: its
# records go to this one logger (not one per connection), which never passes a hex dump.
SMPPLIB_LOGGER: Final = "contactd.messaging.smpplib"
_COMMAND_NAMES: Final = {code: name for name, code in smpplib.command_codes.commands.items()}


class _NoPduDumps(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith((">>", "<<")))


_smpplib_log = logging.getLogger(SMPPLIB_LOGGER)
_smpplib_log.addFilter(_NoPduDumps())


class SequenceGenerator:
    """Thread-safe smpplib sequence source (smpplib's own is not; parsing also draws from it)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.sequence = 0

    def next_sequence(self) -> int:
        with self._lock:
            self.sequence = next(self._counter) % MAX_SEQUENCE or 1
            return self.sequence


class _Client(smpplib.client.Client):  # type: ignore[misc]
    """smpplib's client with TCP_NODELAY and a raw write for PDUs encoded elsewhere."""

    _socket: socket.socket | None
    _inbox: bytearray  # bytes read past the last whole PDU

    def _create_socket(self) -> socket.socket:
        sock: socket.socket = super()._create_socket()
        # Nagle's algorithm delays small PDUs waiting for ACKs: 78 -> 1,757 msg/s measured.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._inbox = bytearray()
        return sock

    def write_raw(self, data: bytes) -> None:
        sock = self._socket
        if sock is None:
            raise smpplib.exceptions.ConnectionError("not connected")
        sock.sendall(data)

    def read_pdus(self) -> list[bytes]:
        """Every whole PDU that has arrived, at least one; parsing is the caller's choice.

        One recv takes a burst (smpplib's reader makes two per PDU): each recv releases and
        retakes the GIL, which the event loop then waits for.
        """
        buffer = self._inbox
        while True:
            pdus: list[bytes] = []
            pos, size = 0, len(buffer)
            while size - pos >= 4:
                (length,) = struct.unpack_from(">I", buffer, pos)
                if not 16 <= length <= MAX_PDU_BYTES:
                    raise smpplib.exceptions.ConnectionError(f"bad PDU length {length}")
                if size - pos < length:
                    break
                pdus.append(bytes(buffer[pos : pos + length]))
                pos += length
            if pos:
                del buffer[:pos]
            if pdus:
                return pdus
            sock = self._socket
            if sock is None:
                raise smpplib.exceptions.ConnectionError("not connected")
            chunk = sock.recv(READ_CHUNK)
            if not chunk:
                raise smpplib.exceptions.ConnectionError("closed by the SMSC")
            buffer += chunk

    def block_forever(self) -> None:
        if self._socket is not None:
            self._socket.settimeout(None)

    def send_nowait(self, data: bytes) -> int:
        sock = self._socket
        if sock is None:
            raise OSError("not connected")
        return sock.send(data, socket.MSG_DONTWAIT)

    def close_quietly(self) -> None:
        """smpplib's disconnect() logs a warning whenever it is not unbound first; we know."""
        sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED

    def shutdown(self) -> None:
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str
    connect_timeout_s: float


@dataclass(frozen=True)
class Up:
    generation: int


@dataclass(frozen=True)
class Down:
    generation: int
    reason: str


@dataclass(frozen=True)
class BindRefused:
    status: int
    description: str


@dataclass(frozen=True)
class Unreachable:
    reason: str


@dataclass(frozen=True)
class Response:
    generation: int
    sequence: int
    command: str
    status: int
    message_id: str


@dataclass(frozen=True)
class Inbound:
    """A deliver_sm or data_sm (receipt or MO) still to be answered by the loop."""

    generation: int
    sequence: int
    pdu: pdu_codec.RawDeliverSm


Report = Up | Down | BindRefused | Unreachable | Response | Inbound


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


class SmppIo:
    """Runs the threads; the loop side reads `Report`s via the `deliver` callback."""

    def __init__(
        self,
        endpoint: Endpoint,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[list[Report]], None],
        *,
        reconnect_min_s: float,
        reconnect_max_s: float,
    ) -> None:
        self._endpoint = endpoint
        self._loop = loop
        self._deliver = deliver
        self._reconnect = (reconnect_min_s, reconnect_max_s)
        self.sequences = SequenceGenerator()
        self._write_lock = threading.Lock()
        self._writes: queue.SimpleQueue[tuple[int, bytes] | None] = queue.SimpleQueue()
        self._loop_queued = 0
        self._written = 0
        self._unsent: list[bytes] = []  # PDUs from this turn of the loop, written at its end
        self._unsent_generation = 0
        self._flush_scheduled = False
        self._stopping = threading.Event()
        self._client: _Client | None = None
        self._generation = 0
        self._outbox: deque[Report] = deque()
        self._scheduled = False
        self._threads = [
            threading.Thread(target=self._read_loop, name="smpp-reader", daemon=True),
            threading.Thread(target=self._write_loop, name="smpp-writer", daemon=True),
        ]

    # -- called from the loop -------------------------------------------------------------
    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def encode(self, command: str, sequence: int, **fields: Any) -> bytes:
        pdu = smpplib.smpp.make_pdu(command, client=self._client, sequence=sequence, **fields)
        # smpplib ignores a `sequence` keyword (its property already reads the client's
        # counter), so it is set here: the counter may have moved on in the reader thread.
        pdu.sequence = sequence
        data: bytes = pdu.generate()
        return data

    def send(self, generation: int, data: bytes) -> None:
        """Queue a PDU; the PDUs queued in one turn of the loop leave in one write.

        A write releases and retakes the GIL (the reader thread takes it meanwhile): one per
        turn rather than one per PDU.
        """
        if self._unsent and generation != self._unsent_generation:
            self._flush()
        self._unsent_generation = generation
        self._unsent.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._unsent:
            data = b"".join(self._unsent)
            self._unsent.clear()
            self._write_now(self._unsent_generation, data)

    def _write_now(self, generation: int, data: bytes) -> None:
        """Write now when nothing is queued and the socket takes it all; else via the writer.

        The fast path saves a thread hop; it never blocks (MSG_DONTWAIT), and bytes it could
        not write go to the writer queue before the lock is released, so PDUs never
        interleave and keep their order.
        """
        if self._loop_queued == self._written and self._write_lock.acquire(blocking=False):
            try:
                client = self._client
                if client is None or generation != self._generation:
                    return
                try:
                    sent = client.send_nowait(data)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    client.shutdown()
                    return
                if sent == len(data):
                    return
                self._enqueue(generation, data[sent:])
            finally:
                self._write_lock.release()
            return
        self._enqueue(generation, data)

    def _enqueue(self, generation: int, data: bytes) -> None:
        # Only the loop thread touches _loop_queued, only the writer _written: no lock needed.
        self._loop_queued += 1
        self._writes.put((generation, data))

    def drop(self, generation: int) -> None:
        """Force a reconnect (e.g. enquire_link unanswered)."""
        client = self._client
        if client is not None and generation == self._generation:
            client.shutdown()

    def stop(self) -> None:
        self._flush()  # the last answers (deliver_sm_resp) still go out
        self._stopping.set()
        self._writes.put(None)
        client = self._client
        if client is not None:
            client.shutdown()

    def join(self, timeout_s: float) -> None:
        for thread in self._threads:
            thread.join(timeout_s)

    # -- threads --------------------------------------------------------------------------
    def _report(self, item: Report) -> None:
        self._outbox.append(item)
        if not self._scheduled:
            self._scheduled = True
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        items: list[Report] = []
        while self._outbox:
            items.append(self._outbox.popleft())
        if items:
            self._deliver(items)

    def _write(self, client: _Client, data: bytes) -> None:
        with self._write_lock:
            client.write_raw(data)

    def _write_loop(self) -> None:
        while True:
            item = self._writes.get()
            if item is None:
                return
            generation, data = item
            client = self._client
            try:
                if client is None or generation not in (-1, self._generation):
                    continue  # for a connection that is gone; its future already failed
                self._write(client, data)
            except Exception as exc:  # the writer must outlive any one write
                log.warning("smpp write failed", extra={"error": f"{type(exc).__name__}: {exc}"})
                if client is not None:
                    client.shutdown()
            finally:
                if generation >= 0:
                    self._written += 1

    def _connect(self) -> _Client | None:
        ep = self._endpoint
        client = _Client(
            ep.host,
            ep.port,
            timeout=ep.connect_timeout_s,
            sequence_generator=self.sequences,
            allow_unknown_opt_params=True,
            logger_name=SMPPLIB_LOGGER,
        )
        try:
            client.connect()
            client.bind_transceiver(
                system_id=ep.system_id, password=ep.password, system_type=ep.system_type
            )
        except smpplib.exceptions.PDUError as exc:
            status = int(exc.args[1]) if len(exc.args) > 1 else smpplib.consts.SMPP_ESME_RBINDFAIL
            desc = smpplib.consts.DESCRIPTIONS.get(status, "bind refused")
            self._report(BindRefused(status, desc))
            client.close_quietly()
            return None
        except Exception as exc:  # OSError, ConnectionError, or a broken bind_transceiver_resp
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else "connection refused"
            log.info(
                "smpp connect failed",
                extra={"host": ep.host, "port": ep.port, "error": reason},
            )
            client.close_quietly()
            self._report(Unreachable(reason))
            return None
        # Blocking reads without a timeout: a timeout between a PDU's length and its body would
        # desynchronise smpplib's reader. stop()/drop() wake it by shutting the socket down.
        client.block_forever()
        return client

    @property
    def reader_alive(self) -> bool:
        return self._threads[0].is_alive()

    def _read_loop(self) -> None:
        delay = self._reconnect[0]
        while not self._stopping.is_set():
            try:
                connected = self._session()
            except Exception:  # a bug must cost one session, never the reader
                log.exception("smpp reader failed; resetting the link")
                connected = False
            if connected:
                delay = self._reconnect[0]
            self._stopping.wait(delay)
            delay = delay if connected else min(delay * 2, self._reconnect[1])

    def _session(self) -> bool:
        """Connect, bind and read until the link ends; False when it never came up."""
        client = self._connect()
        if client is None:
            return False
        self._generation += 1
        generation = self._generation
        self._client = client
        self._report(Up(generation))
        reason = "reader error"
        try:
            reason = self._read_until_closed(client, generation)
        except Exception as exc:
            reason = f"reader error ({type(exc).__name__}: {exc})"
            raise
        finally:
            self._client = None
            client.close_quietly()
            self._report(Down(generation, reason))
        return True

    def _read_until_closed(self, client: _Client, generation: int) -> str:
        while True:
            try:
                pdus = client.read_pdus()
            except TimeoutError:
                if self._stopping.is_set():
                    return "stopping"
                continue
            except (OSError, smpplib.exceptions.ConnectionError) as exc:
                return f"connection lost ({exc or 'closed'})"
            for raw in pdus:
                try:
                    ended = self._handle(client, generation, raw)
                except Exception as exc:
                    # The PDU is framed by its length, so the stream is still in step: skip it.
                    length, command, _, sequence = pdu_codec.header(raw)
                    log.warning(
                        "smpp: unreadable PDU skipped",
                        exc_info=exc,
                        extra={
                            "command_id": f"{command:08x}",
                            "sequence": sequence,
                            "length": length,
                        },
                    )
                    if not command & pdu_codec.RESP_BIT:
                        # A request must be answered or the SMSC's window slot stays taken.
                        self._answer_raw(pdu_codec.generic_nack(sequence, ESME_RINVCMDLEN))
                    continue
                if ended is not None:
                    return ended

    def _handle(self, client: _Client, generation: int, raw: bytes) -> str | None:
        """Act on one PDU; the reason when the session ends with it."""
        _, command, _, sequence = pdu_codec.header(raw)
        if command == pdu_codec.SUBMIT_SM_RESP:
            # Once per message: read without smpplib (see pdu.py).
            sequence, status, message_id = pdu_codec.parse_submit_sm_resp(raw)
            self._report(Response(generation, sequence, "submit_sm_resp", status, message_id))
            return None
        if command in (pdu_codec.DELIVER_SM, pdu_codec.DATA_SM):
            self._inbound(generation, command, sequence, raw)
            return None
        name = _COMMAND_NAMES.get(command)
        if name is None:
            log.warning(
                "smpp: unknown command_id",
                extra={"command_id": f"{command:08x}", "sequence": sequence},
            )
            if not command & pdu_codec.RESP_BIT:
                self._answer_raw(pdu_codec.generic_nack(sequence, ESME_RINVCMDID))
            return None
        pdu = smpplib.smpp.parse_pdu(raw, client=client, allow_unknown_opt_params=True)
        if not self._dispatch(client, generation, pdu):
            return "unbound" if pdu.command == "unbind_resp" else "unbound by the SMSC"
        return None

    def _inbound(self, generation: int, command: int, sequence: int, raw: bytes) -> None:
        parse = (
            pdu_codec.parse_deliver_sm
            if command == pdu_codec.DELIVER_SM
            else (pdu_codec.parse_data_sm)
        )
        try:
            inbound = parse(raw)
        except ValueError as exc:
            # Answered with a permanent error: redelivering the same broken bytes cannot help.
            log.warning(
                "smpp: malformed inbound PDU refused",
                extra={"command_id": f"{command:08x}", "sequence": sequence, "error": str(exc)},
            )
            self._answer_raw(pdu_codec.inbound_resp(command, sequence, ESME_RX_P_APPN))
            return
        self._report(Inbound(generation, sequence, inbound))

    def _dispatch(self, client: _Client, generation: int, pdu: Any) -> bool:
        """Act on a PDU smpplib parsed; False when the session ends with it."""
        command = pdu.command
        if command == "enquire_link":
            self._answer(client, "enquire_link_resp", pdu.sequence)
        elif command == "unbind":
            self._answer(client, "unbind_resp", pdu.sequence)
            return False
        elif command.endswith("_resp") or command == "generic_nack":
            message_id = _text(getattr(pdu, "message_id", None))
            self._report(
                Response(generation, pdu.sequence, command, int(pdu.status or 0), message_id)
            )
            if command == "unbind_resp":
                return False
        else:
            # A request contactd does not serve (submit_sm from the SMSC, query_sm …).
            log.info("smpp: request refused", extra={"command": command, "sequence": pdu.sequence})
            self._answer_raw(pdu_codec.generic_nack(pdu.sequence, ESME_RINVCMDID))
        return True

    def _answer(self, client: _Client, command: str, sequence: int) -> None:
        self._answer_raw(self.encode(command, sequence))

    def _answer_raw(self, data: bytes) -> None:
        # Through the writer (generation -1: not counted against the loop's fast path),
        # so it cannot land between the two halves of a PDU the fast path split.
        self._writes.put((-1, data))
