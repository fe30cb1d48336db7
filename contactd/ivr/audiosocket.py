"""AudioSocket server: Asterisk's `AudioSocket()` app connects here, one TCP stream per call.

This module only translates (STYLE 2): frames in become `AudioEvent`/`DtmfEvent` on a bounded
queue, prompt audio out leaves as 20 ms frames paced at real time. What to say and when is the
IVR service's job, handed each call through `CallHandler`.

Wire format (DESIGN §4): 1 byte kind, 2 bytes big-endian length, payload. Asterisk sends the
UUID first; on hang-up it usually just closes the socket, so end-of-stream is a hang-up too.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from contactd.background import TaskOwner
from contactd.errors import ContactdError, StartupError

log = logging.getLogger(__name__)

FRAME_BYTES: Final = 320  # 20 ms of signed 16-bit mono at 8 kHz
FRAME_S: Final = 0.020
HEADER_BYTES: Final = 3
UUID_TIMEOUT_S: Final = 5.0


class Kind(enum.IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10
    ERROR = 0xFF


class AudioSocketError(ContactdError):
    """One call's stream broke the protocol; that call ends, the server goes on."""

    code = "audiosocket_protocol"


class TruncatedFrame(AudioSocketError):
    code = "audiosocket_truncated"


class UnknownKind(AudioSocketError):
    code = "audiosocket_unknown_kind"


class OversizedFrame(AudioSocketError):
    code = "audiosocket_oversized"


class MalformedFrame(AudioSocketError):
    code = "audiosocket_malformed"


class PeerError(AudioSocketError):
    """Asterisk sent an 0xff error frame."""

    code = "audiosocket_peer_error"


class StreamTimeout(AudioSocketError):
    """Nothing arrived for too long: a live call sends a frame every 20 ms."""

    code = "audiosocket_timeout"


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    payload: bytes


def encode(kind: Kind, payload: bytes = b"") -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError(f"AudioSocket payload of {len(payload)} bytes exceeds 65535")
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


async def read_frame(reader: asyncio.StreamReader, max_payload: int) -> Frame | None:
    """The next frame, or None at a clean end of stream (between frames)."""
    try:
        header = await reader.readexactly(HEADER_BYTES)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise TruncatedFrame(
            f"stream ended inside a frame header ({len(exc.partial)} of 3 bytes)"
        ) from None
    raw_kind, length = header[0], int.from_bytes(header[1:3], "big")
    try:
        kind = Kind(raw_kind)
    except ValueError:
        raise UnknownKind(f"unknown frame kind 0x{raw_kind:02x}", kind=raw_kind) from None
    if length > max_payload:
        raise OversizedFrame(
            f"frame of {length} bytes exceeds the {max_payload}-byte limit", length=length
        )
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise TruncatedFrame(
            f"stream ended inside a {kind.name} frame ({len(exc.partial)} of {length} bytes)"
        ) from None
    return Frame(kind, payload)


@dataclass(frozen=True, slots=True)
class AudioEvent:
    pcm: bytes


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    digit: str


@dataclass(frozen=True, slots=True)
class HangupEvent:
    """The call is over; `reason` is None for a normal hang-up, else the protocol error code."""

    reason: str | None = None


CallEvent = AudioEvent | DtmfEvent | HangupEvent


class AudioSocketCall:
    """One connected call: events in (bounded queue), paced prompt audio out."""

    def __init__(
        self,
        session_id: uuid.UUID,
        writer: asyncio.StreamWriter,
        *,
        queue_frames: int,
        write_timeout_s: float,
    ) -> None:
        self.session_id = session_id
        self._writer = writer
        # Bounded: a handler that falls behind stops the reader, and TCP pushes back on Asterisk.
        self.events: asyncio.Queue[CallEvent] = asyncio.Queue(maxsize=queue_frames)
        self._write_timeout_s = write_timeout_s
        self.ended = asyncio.Event()
        self.end_reason: str | None = None

    async def next_event(self, timeout_s: float | None = None) -> CallEvent | None:
        """The next event; None when `timeout_s` passed with nothing (silence is a timeout)."""
        if self.ended.is_set() and self.events.empty():
            return HangupEvent(self.end_reason)
        try:
            return await asyncio.wait_for(self.events.get(), timeout_s)
        except TimeoutError:
            return None

    async def play(self, pcm: bytes, stop: asyncio.Event | None = None) -> bool:
        """Send `pcm` (8 kHz slin) in 20 ms frames at real time; False if stopped or hung up.

        Frames are scheduled against absolute deadlines so a late wake-up does not stretch
        the prompt; `stop` is barge-in (caller speech or a key stops the prompt).
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
            if self.ended.is_set() or (stop is not None and stop.is_set()):
                return False
            chunk = pcm[offset : offset + FRAME_BYTES].ljust(FRAME_BYTES, b"\x00")
            if not await self._send(encode(Kind.AUDIO, chunk)):
                return False
            # Asterisk buffers a little: keep one frame ahead of the clock, never more.
            delay = start + index * FRAME_S - loop.time()
            if delay > 0:
                await _sleep_or_any(delay, self.ended, *([stop] if stop is not None else []))
        return True

    async def hangup(self) -> None:
        """Ask Asterisk to hang up this leg (kind 0x00) and stop sending."""
        await self._send(encode(Kind.HANGUP))
        self.finish(None)

    def finish(self, reason: str | None) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()

    async def _send(self, data: bytes) -> bool:
        if self.ended.is_set() or self._writer.is_closing():
            return False
        try:
            self._writer.write(data)
            # A peer that stops reading fills the socket buffer: give up on the call, not block.
            await asyncio.wait_for(self._writer.drain(), self._write_timeout_s)
        except (ConnectionError, TimeoutError) as exc:
            self.finish(f"write failed: {type(exc).__name__}")
            return False
        return True


async def _sleep_or_any(delay_s: float, *events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=delay_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


CallHandler = Callable[[AudioSocketCall], Coroutine[Any, Any, None]]


class AudioSocketServer:
    """TCP server for AudioSocket; each connection runs `handler` until the call ends."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: CallHandler,
        *,
        max_frame_bytes: int = 2048,
        read_timeout_s: float = 10.0,
        write_timeout_s: float = 2.0,
        queue_frames: int = 100,
    ) -> None:
        self.host = host
        self.port = port
        self._handler = handler
        self._max_frame_bytes = max_frame_bytes
        self._read_timeout_s = read_timeout_s
        self._write_timeout_s = write_timeout_s
        self._queue_frames = queue_frames
        self._server: asyncio.Server | None = None
        self._tasks = TaskOwner("audiosocket", log)
        self.calls: dict[uuid.UUID, AudioSocketCall] = {}

    async def __aenter__(self) -> AudioSocketServer:
        try:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)
        except OSError as exc:
            raise StartupError(
                f"AudioSocket server cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from exc
        # Port 0 (tests) picks a free port: report the real one.
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("audiosocket listening", extra={"host": self.host, "port": self.port})
        return self

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        for call in list(self.calls.values()):
            call.finish("server stopping")
        await self._tasks.close()
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self._tasks.spawn(self._connection(reader, writer), name=f"conn {peer}")

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        call: AudioSocketCall | None = None
        try:
            try:
                first = await asyncio.wait_for(
                    read_frame(reader, self._max_frame_bytes), UUID_TIMEOUT_S
                )
            except TimeoutError:
                raise StreamTimeout("no UUID frame within the timeout") from None
            if first is None:
                return
            if first.kind is not Kind.UUID or len(first.payload) != 16:
                raise MalformedFrame(
                    f"first frame must be a 16-byte UUID, got {first.kind.name} of "
                    f"{len(first.payload)} bytes"
                )
            call = AudioSocketCall(
                uuid.UUID(bytes=first.payload),
                writer,
                queue_frames=self._queue_frames,
                write_timeout_s=self._write_timeout_s,
            )
            await self._run_call(call, reader)
        except AudioSocketError as exc:
            log.warning(
                "audiosocket stream rejected",
                extra={
                    "reason": exc.code,
                    "detail": exc.message,
                    "peer": str(writer.get_extra_info("peername")),
                },
            )
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _run_call(self, call: AudioSocketCall, reader: asyncio.StreamReader) -> None:
        session = str(call.session_id)
        self.calls[call.session_id] = call
        log.info("audiosocket call connected", extra={"session_id": session})
        handler = asyncio.create_task(self._handler(call), name=f"audiosocket:handler {session}")
        reader_task = asyncio.create_task(
            self._read_loop(call, reader), name=f"audiosocket:read {session}"
        )
        try:
            await asyncio.wait({handler, reader_task}, return_when=asyncio.FIRST_COMPLETED)
            if handler.done() and not reader_task.done():
                # The flow finished: stop reading, the connection closes below.
                call.finish(call.end_reason)
                reader_task.cancel()
            # A reader that ended (hang-up or bad stream) leaves the handler to see HangupEvent
            # and write its final record; it gets a bounded grace period.
            await asyncio.wait({handler}, timeout=self._read_timeout_s)
        finally:
            for task in (handler, reader_task):
                task.cancel()
            await asyncio.gather(handler, reader_task, return_exceptions=True)
            for task in (handler, reader_task):
                if not task.cancelled() and task.exception() is not None:
                    log.error(
                        "audiosocket call task failed",
                        exc_info=task.exception(),
                        extra={"session_id": session, "task": task.get_name()},
                    )
            self.calls.pop(call.session_id, None)
            log.info(
                "audiosocket call ended",
                extra={"session_id": session, "reason": call.end_reason or "hangup"},
            )

    async def _read_loop(self, call: AudioSocketCall, reader: asyncio.StreamReader) -> None:
        reason: str | None = None
        try:
            while not call.ended.is_set():
                try:
                    frame = await asyncio.wait_for(
                        read_frame(reader, self._max_frame_bytes), self._read_timeout_s
                    )
                except TimeoutError:
                    raise StreamTimeout(f"no frame for {self._read_timeout_s} s") from None
                if frame is None or frame.kind is Kind.HANGUP:
                    break
                if frame.kind is Kind.AUDIO:
                    await call.events.put(AudioEvent(frame.payload))
                elif frame.kind is Kind.DTMF:
                    digit = frame.payload.decode("ascii", "replace")
                    if len(digit) != 1 or digit not in "0123456789*#ABCD":
                        raise MalformedFrame(f"DTMF frame carries {frame.payload!r}, not one digit")
                    await call.events.put(DtmfEvent(digit))
                elif frame.kind is Kind.ERROR:
                    raise PeerError(
                        f"Asterisk reported error {frame.payload.hex() or 'without code'}"
                    )
                else:
                    raise MalformedFrame(f"unexpected {frame.kind.name} frame after the first")
        except AudioSocketError as exc:
            reason = exc.code
            log.warning(
                "audiosocket call ended on a bad stream",
                extra={
                    "session_id": str(call.session_id),
                    "reason": exc.code,
                    "detail": exc.message,
                },
            )
        except ConnectionError:
            # A reset is how a hang-up looks when prompt audio was still in flight.
            reason = None
        finally:
            call.finish(reason)
            # Wake a handler blocked on the queue without blocking here if it is full.
            with contextlib.suppress(asyncio.QueueFull):
                call.events.put_nowait(HangupEvent(reason))
