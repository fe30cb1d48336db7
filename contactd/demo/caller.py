"""Simulated inbound callers: what Asterisk's AudioSocket() sends to contactd's IVR server.

DESIGN.md §4: Asterisk connects as a TCP client; every message is 1 byte kind, 2 bytes
big-endian length, payload. It sends the session UUID (0x01) first, then signed 16-bit
little-endian 8 kHz mono audio (0x10) in 320-byte frames every 20 ms, DTMF digits (0x03) as
ASCII, and on hang-up it just closes the socket. The caller's speech is synthesized with
espeak-ng and resampled to 8 kHz.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from array import array
from dataclasses import dataclass, field
from typing import Final

from contactd.errors import ContactdError

KIND_HANGUP: Final = 0x00
KIND_UUID: Final = 0x01
KIND_DTMF: Final = 0x03
KIND_AUDIO: Final = 0x10
RATE: Final = 8000
FRAME_BYTES: Final = 320  # 20 ms of 16-bit mono at 8 kHz
FRAME_S: Final = 0.020
CONNECT_TIMEOUT_S: Final = 5.0
TTS_TIMEOUT_S: Final = 20.0
SILENCE_FRAME: Final = bytes(FRAME_BYTES)
PROMPT_GAP_S: Final = 0.6  # quiet after a prompt that tells the caller it is their turn
PROMPT_WAIT_S: Final = 30.0


class SpeechError(ContactdError):
    """espeak-ng could not synthesize the caller's words."""

    code = "demo_speech_failed"


def message(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


def wav_pcm(wav: bytes) -> tuple[bytes, int]:
    """The 16-bit mono samples and rate of a WAV (espeak-ng's streamed header claims a
    bogus length, so the data chunk is read to the end of the bytes)."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise SpeechError("espeak-ng did not write a WAV")
    fmt = wav.find(b"fmt ")
    data = wav.find(b"data")
    if fmt < 0 or data < 0:
        raise SpeechError("WAV without fmt or data chunk")
    channels, rate = struct.unpack_from("<HI", wav, fmt + 10)
    bits = struct.unpack_from("<H", wav, fmt + 22)[0]
    if channels != 1 or bits != 16:
        raise SpeechError(f"WAV is {channels} channel(s) of {bits} bits; 1 of 16 expected")
    pcm = wav[data + 8 :]
    return pcm[: len(pcm) - len(pcm) % 2], int(rate)


def resample(pcm: bytes, rate: int, target: int = RATE) -> bytes:
    """Linear interpolation to `target` Hz (speech for an ASR, not hi-fi)."""
    source = array("h")
    source.frombytes(pcm)
    if rate == target or not source:
        return pcm
    count = len(source) * target // rate
    out = array("h", bytes(2 * count))
    step = rate / target
    last = len(source) - 1
    for i in range(count):
        position = i * step
        left = int(position)
        right = min(left + 1, last)
        fraction = position - left
        out[i] = int(source[left] + (source[right] - source[left]) * fraction)
    return out.tobytes()


async def synthesize(text: str, voice: str = "en") -> bytes:
    """8 kHz slin of `text` spoken by espeak-ng (Debian package espeak-ng)."""
    try:
        process = await asyncio.create_subprocess_exec(
            "espeak-ng", "-v", voice, "--stdout", text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise SpeechError("espeak-ng is not installed") from None
    try:
        out, err = await asyncio.wait_for(process.communicate(), TTS_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SpeechError(f"espeak-ng took over {TTS_TIMEOUT_S:g} s") from None
    if process.returncode != 0:
        raise SpeechError(f"espeak-ng failed: {err.decode(errors='replace').strip()}")
    pcm, rate = wav_pcm(out)
    return resample(pcm, rate)


@dataclass(frozen=True)
class Turn:
    """One thing the caller does: say `text`, or key in `dtmf`, after `pause_s` of silence;
    with `after_prompt`, first let the IVR finish what it is saying (as a person listens to
    the menu before pressing a key)."""

    text: str = ""
    dtmf: str = ""
    pause_s: float = 0.5
    after_prompt: bool = False


@dataclass
class CallerReport:
    session: uuid.UUID
    frames_sent: int = 0
    digits_sent: str = ""
    frames_heard: int = 0  # audio the IVR played back to the caller
    heard_at: float = 0.0  # loop time of the last frame the IVR played
    hung_up_by_ivr: bool = False
    turns: list[Turn] = field(default_factory=list)


async def call_ivr(host: str, port: int, turns: list[Turn], *, voice: str = "en",
                   session: uuid.UUID | None = None, hold_s: float = 30.0) -> CallerReport:
    """Connect as Asterisk does, play the caller's turns in real time, then stay on the line
    up to `hold_s` and hang up (close).

    Ends early when the IVR closes its side (it decided the call's route)."""
    report = CallerReport(session or uuid.uuid4(), turns=list(turns))
    speech = {t.text: await synthesize(t.text, voice) for t in turns if t.text}
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                            CONNECT_TIMEOUT_S)
    listener = asyncio.create_task(_listen(reader, report), name="demo-caller-listen")
    try:
        writer.write(message(KIND_UUID, report.session.bytes))
        clock = _Clock()
        for turn in turns:
            if turn.after_prompt:
                await _until_prompt_ends(writer, clock, report, listener)
            await _silence(writer, clock, report, turn.pause_s, listener)
            for digit in turn.dtmf:
                writer.write(message(KIND_DTMF, digit.encode("ascii")))
                report.digits_sent += digit
                await _silence(writer, clock, report, 0.2, listener)
            if turn.text:
                await _stream(writer, clock, report, speech[turn.text], listener)
        await _silence(writer, clock, report, hold_s, listener)
    except (ConnectionError, _IvrHungUp):
        pass
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return report


class _IvrHungUp(Exception):
    pass


class _Clock:
    """Paces frames at 20 ms against the loop's clock, so a late frame does not drift."""

    def __init__(self) -> None:
        self.next = asyncio.get_running_loop().time()

    async def tick(self) -> None:
        self.next += FRAME_S
        delay = self.next - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)  # real-time pacing of the simulated line


async def _send_frame(writer: asyncio.StreamWriter, clock: _Clock, report: CallerReport,
                      frame: bytes, listener: asyncio.Task[None]) -> None:
    if listener.done():
        raise _IvrHungUp
    writer.write(message(KIND_AUDIO, frame.ljust(FRAME_BYTES, b"\0")))
    report.frames_sent += 1
    await clock.tick()


async def _silence(writer: asyncio.StreamWriter, clock: _Clock, report: CallerReport,
                   seconds: float, listener: asyncio.Task[None]) -> None:
    for _ in range(round(seconds / FRAME_S)):
        await _send_frame(writer, clock, report, SILENCE_FRAME, listener)


async def _until_prompt_ends(writer: asyncio.StreamWriter, clock: _Clock,
                             report: CallerReport, listener: asyncio.Task[None]) -> None:
    """Silence on the line until the IVR has played something new and then been quiet for
    PROMPT_GAP_S (or PROMPT_WAIT_S passed: a caller does not wait for ever)."""
    loop = asyncio.get_running_loop()
    seen = report.frames_heard
    deadline = loop.time() + PROMPT_WAIT_S
    while loop.time() < deadline:
        if report.frames_heard > seen and loop.time() - report.heard_at >= PROMPT_GAP_S:
            return
        await _send_frame(writer, clock, report, SILENCE_FRAME, listener)


async def _stream(writer: asyncio.StreamWriter, clock: _Clock, report: CallerReport,
                  pcm: bytes, listener: asyncio.Task[None]) -> None:
    for start in range(0, len(pcm), FRAME_BYTES):
        await _send_frame(writer, clock, report, pcm[start : start + FRAME_BYTES], listener)


async def _listen(reader: asyncio.StreamReader, report: CallerReport) -> None:
    """What the IVR sends: audio (counted) and 0x00 hang-up; end of stream is a hang-up."""
    try:
        while True:
            kind, length = struct.unpack(">BH", await reader.readexactly(3))
            if length:
                await reader.readexactly(length)
            if kind == KIND_AUDIO:
                report.frames_heard += 1
                report.heard_at = asyncio.get_running_loop().time()
            elif kind == KIND_HANGUP:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    report.hung_up_by_ivr = True
