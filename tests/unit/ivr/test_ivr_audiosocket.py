"""AudioSocket server over loopback TCP; the client plays Asterisk so faults can be injected."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from contactd.ivr.audiosocket import (
    FRAME_BYTES,
    AudioEvent,
    AudioSocketCall,
    AudioSocketServer,
    DtmfEvent,
    HangupEvent,
    Kind,
    encode,
)


class Recorder:
    """A handler that records every event until hang-up, optionally playing a prompt first."""

    def __init__(self, prompt: bytes = b"") -> None:
        self.prompt = prompt
        self.events: dict[uuid.UUID, list[object]] = {}
        self.done: dict[uuid.UUID, asyncio.Event] = {}
        self.played: dict[uuid.UUID, bool] = {}

    def _done(self, session: uuid.UUID) -> asyncio.Event:
        return self.done.setdefault(session, asyncio.Event())

    async def __call__(self, call: AudioSocketCall) -> None:
        got = self.events.setdefault(call.session_id, [])
        try:
            if self.prompt:
                self.played[call.session_id] = await call.play(self.prompt)
            while True:
                event = await call.next_event(5.0)
                got.append(event)
                if isinstance(event, HangupEvent):
                    return
        finally:
            self._done(call.session_id).set()


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def server(recorder: Recorder) -> AsyncIterator[AudioSocketServer]:
    async with AudioSocketServer(
        "127.0.0.1", 0, recorder, read_timeout_s=2.0, write_timeout_s=1.0
    ) as srv:
        yield srv


async def connect(
    server: AudioSocketServer, session: uuid.UUID | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    if session is not None:
        writer.write(encode(Kind.UUID, session.bytes))
    return reader, writer


async def test_audio_and_dtmf_arrive_then_eof_is_a_hangup(
    server: AudioSocketServer, recorder: Recorder
) -> None:
    session = uuid.uuid4()
    _, writer = await connect(server, session)
    writer.write(encode(Kind.AUDIO, b"\x01\x00" * 160))
    writer.write(encode(Kind.DTMF, b"5"))
    await writer.drain()
    writer.close()  # Asterisk hangs up by closing, no 0x00 frame
    await asyncio.wait_for(recorder._done(session).wait(), 5)
    assert recorder.events[session] == [
        AudioEvent(b"\x01\x00" * 160),
        DtmfEvent("5"),
        HangupEvent(None),
    ]


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (bytes([0x42, 0, 1, 0]), "audiosocket_unknown_kind"),
        (encode(Kind.AUDIO, b"\x00" * 4000), "audiosocket_oversized"),
        (bytes([Kind.AUDIO, 0x01, 0x40]) + b"\x00" * 10, "audiosocket_truncated"),
        (bytes([Kind.AUDIO, 0x01]), "audiosocket_truncated"),
        (encode(Kind.DTMF, b"55"), "audiosocket_malformed"),
        (encode(Kind.ERROR, b"\x04"), "audiosocket_peer_error"),
    ],
)
async def test_a_bad_stream_ends_that_call_alone(
    server: AudioSocketServer,
    recorder: Recorder,
    garbage: bytes,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, bad = uuid.uuid4(), uuid.uuid4()
    _, good_writer = await connect(server, good)
    _, bad_writer = await connect(server, bad)
    bad_writer.write(encode(Kind.AUDIO, b"\x00" * FRAME_BYTES) + garbage)
    await bad_writer.drain()
    bad_writer.close()
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(recorder._done(bad).wait(), 5)
    assert recorder.events[bad][-1] == HangupEvent(reason)
    (warning,) = [r for r in caplog.records if getattr(r, "reason", None) == reason]
    # The line names the AudioSocket session under its own field: it is not an interaction id.
    assert getattr(warning, "session_id", None) == str(bad)
    assert not hasattr(warning, "interaction_id")
    # The other call still works.
    good_writer.write(encode(Kind.DTMF, b"#"))
    await good_writer.drain()
    good_writer.close()
    await asyncio.wait_for(recorder._done(good).wait(), 5)
    assert recorder.events[good] == [DtmfEvent("#"), HangupEvent(None)]


async def test_a_first_frame_that_is_not_a_uuid_is_refused(
    server: AudioSocketServer, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await connect(server)
    writer.write(encode(Kind.AUDIO, b"\x00" * FRAME_BYTES))
    await writer.drain()
    with caplog.at_level(logging.WARNING):
        assert await asyncio.wait_for(reader.read(), 5) == b""  # server closed it
    assert any(getattr(r, "reason", None) == "audiosocket_malformed" for r in caplog.records)
    writer.close()
    assert server.calls == {}


async def test_prompt_audio_leaves_in_20ms_frames_at_real_time() -> None:
    prompt = b"\x07\x00" * (160 * 25 + 10)  # 25 frames and a bit: the last one is padded
    recorder = Recorder(prompt)
    async with AudioSocketServer("127.0.0.1", 0, recorder) as srv:
        session = uuid.uuid4()
        loop = asyncio.get_running_loop()
        reader, writer = await connect(srv, session)
        await writer.drain()
        frames = []
        arrivals = []
        while len(frames) < 26:
            header = await asyncio.wait_for(reader.readexactly(3), 5)
            payload = await reader.readexactly(int.from_bytes(header[1:], "big"))
            frames.append((header[0], payload))
            arrivals.append(loop.time())
        writer.close()
        await asyncio.wait_for(recorder._done(session).wait(), 5)
    assert all(kind == Kind.AUDIO and len(p) == FRAME_BYTES for kind, p in frames)
    assert b"".join(p for _, p in frames)[: len(prompt)] == prompt
    # 26 frames at 20 ms with one frame ahead of the clock: about 0.5 s, not a burst.
    assert 0.44 <= arrivals[-1] - arrivals[0] <= 0.75
    assert recorder.played[session] is True


async def test_hangup_mid_prompt_stops_playback() -> None:
    recorder = Recorder(b"\x00" * FRAME_BYTES * 500)  # 10 s prompt
    async with AudioSocketServer("127.0.0.1", 0, recorder) as srv:
        session = uuid.uuid4()
        reader, writer = await connect(srv, session)
        await reader.readexactly(3 + FRAME_BYTES)
        writer.close()
        await asyncio.wait_for(recorder._done(session).wait(), 3)
    assert recorder.played[session] is False
    assert recorder.events[session] == [HangupEvent(None)]


async def test_barge_in_event_stops_the_prompt() -> None:
    stop = asyncio.Event()
    result: list[bool] = []

    async def handler(call: AudioSocketCall) -> None:
        play = asyncio.create_task(call.play(b"\x00" * FRAME_BYTES * 500, stop))
        event = await call.next_event(5)
        assert isinstance(event, DtmfEvent)
        stop.set()
        result.append(await asyncio.wait_for(play, 1))
        await call.hangup()

    async with AudioSocketServer("127.0.0.1", 0, handler) as srv:
        reader, writer = await connect(srv, uuid.uuid4())
        await reader.readexactly(3 + FRAME_BYTES)
        writer.write(encode(Kind.DTMF, b"1"))
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 3)
        writer.close()
    assert result == [False]
    assert rest.endswith(encode(Kind.HANGUP))


async def test_a_silent_stream_times_out() -> None:
    recorder = Recorder()
    async with AudioSocketServer("127.0.0.1", 0, recorder, read_timeout_s=0.3) as srv:
        session = uuid.uuid4()
        _, writer = await connect(srv, session)
        await writer.drain()
        await asyncio.wait_for(recorder._done(session).wait(), 3)
        writer.close()
    assert recorder.events[session] == [HangupEvent("audiosocket_timeout")]


async def test_a_crashing_handler_ends_its_call_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(call: AudioSocketCall) -> None:
        raise RuntimeError("flow bug")

    with caplog.at_level(logging.ERROR):
        async with AudioSocketServer("127.0.0.1", 0, handler) as srv:
            reader, writer = await connect(srv, uuid.uuid4())
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
    assert any(r.exc_info and "flow bug" in str(r.exc_info[1]) for r in caplog.records)


async def test_fifty_calls_at_once(server: AudioSocketServer, recorder: Recorder) -> None:
    sessions = [uuid.uuid4() for _ in range(50)]
    writers = [(await connect(server, s))[1] for s in sessions]
    for n, w in enumerate(writers):
        w.write(encode(Kind.DTMF, str(n % 10).encode()))
        w.close()
    await asyncio.wait_for(asyncio.gather(*(recorder._done(s).wait() for s in sessions)), 10)
    for n, s in enumerate(sessions):
        assert recorder.events[s] == [DtmfEvent(str(n % 10)), HangupEvent(None)]


async def test_busy_port_is_a_startup_error(server: AudioSocketServer) -> None:
    from contactd.errors import StartupError

    async def nothing(call: AudioSocketCall) -> None:
        return None

    with pytest.raises(StartupError, match="cannot listen"):
        async with AudioSocketServer("127.0.0.1", server.port, nothing):
            pass
