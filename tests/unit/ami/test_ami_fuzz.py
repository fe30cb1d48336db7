"""Property tests: malformed, truncated and garbled AMI frames never break the event path.

Bytes go through the same path as a live link (AmiProtocol → EventDispatcher → CallTracker);
every frame that cannot be understood leaves a logged warning, and the link keeps working:
a valid frame after the garbage is still understood.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from contactd.ami.client import AmiClient
from contactd.calls.events import CallEnded, CallEvent
from contactd.calls.tracker import TRACKED_EVENTS, CallTracker
from contactd.config import AmiSettings

TRACE = Path(__file__).parents[2] / "replay" / "ami" / "calls.ami"
FRAMES = [f for f in TRACE.read_bytes().split(b"\r\n\r\n") if f.strip()]
END = b"\r\n\r\n"
BUSY = (
    b"Event: OriginateResponse\r\nActionID: fz\r\nResponse: Failure\r\nReason: 5\r\n"
    b"Uniqueid: <null>\r\n\r\n"
)


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def warnings_logged() -> Iterator[_Count]:
    handler = _Count()
    root = logging.getLogger("contactd")
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def pipeline() -> tuple[AmiClient, CallTracker, list[CallEvent]]:
    client = AmiClient(AmiSettings())
    tracker = CallTracker()
    out: list[CallEvent] = []
    for name in TRACKED_EVENTS:
        client.events.on(name, lambda e: out.extend(tracker.feed(e, 0.0)))
    return client, tracker, out


def understood(frame: bytes) -> bool:
    """Whether panoramisk's parser would see an Event or Response header in the frame."""
    text = frame.decode("utf8", "replace").strip()
    if text.startswith("Asterisk Call Manager/"):  # the banner, with what follows it
        text = text.partition("\r\n")[2]
        if not text:
            return True
    for line in text.split("\r\n"):
        if ": " in line and line.split(": ", 1)[0] in ("Event", "Response"):
            return True
    return False


def feed_in_chunks(data: bytes, cuts: list[int], protocol: object) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, stop in itertools.pairwise(points):
        protocol.data_received(data[start:stop])  # type: ignore[attr-defined]


garbage = st.binary(max_size=300).filter(lambda b: END not in b and not b.endswith(b"\r\n\r"))


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(garbage, max_size=12), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_garbage_frames_warn_and_never_raise(frames: list[bytes], cuts: list[int]) -> None:
    client, tracker, out = pipeline()
    tracker.watch("fz", started=0.0)
    protocol = client.replay_protocol()
    data = b"".join(f + END for f in frames) + BUSY
    with warnings_logged() as logged:
        feed_in_chunks(data, cuts, protocol)
    bad = [f for f in frames if f.decode("utf8", "replace").strip() and not understood(f)]
    assert protocol.malformed >= len(bad)
    assert len(logged.records) >= len(bad)
    # the link still understands the next good frame
    assert [type(e) for e in out][-1:] == [CallEnded]


def mutate(frame: bytes, how: int, where: int, junk: bytes) -> bytes:
    lines = frame.split(b"\r\n")
    i = where % len(lines)
    if how == 0:  # truncated anywhere
        return frame[: where % (len(frame) + 1)]
    if how == 1:  # a header line lost
        return b"\r\n".join(lines[:i] + lines[i + 1 :])
    if how == 2:  # a header repeated with another value (panoramisk makes it a list)
        key = lines[i].split(b": ", 1)[0]
        return frame + b"\r\n" + key + b": " + junk
    if how == 3:  # a value replaced by junk
        key = lines[i].split(b": ", 1)[0]
        lines[i] = key + b": " + junk
        return b"\r\n".join(lines)
    return junk + frame  # junk glued in front


@settings(max_examples=150, deadline=None)
@given(
    picks=st.lists(
        st.tuples(
            st.integers(0, len(FRAMES) - 1),
            st.integers(0, 5),
            st.integers(0, 10_000),
            st.binary(max_size=40).filter(lambda b: b"\r\n" not in b),
        ),
        min_size=1,
        max_size=60,
    ),
    cuts=st.lists(st.integers(0, 100_000), max_size=10),
)
def test_mutated_real_frames_never_break_tracking(
    picks: list[tuple[int, int, int, bytes]], cuts: list[int]
) -> None:
    client, tracker, out = pipeline()
    for frame in FRAMES:  # watch every call of the trace
        if b"Event: Newchannel" in frame:
            for line in frame.split(b"\r\n"):
                if line.startswith(b"Linkedid: "):
                    tracker.watch(line[10:].decode(), started=0.0, expect_amd=True)
    tracker.watch("fz", started=0.0)
    protocol = client.replay_protocol()
    data = b"".join(mutate(FRAMES[i], how, where, junk) + END for i, how, where, junk in picks)
    with warnings_logged() as logged:
        feed_in_chunks(data + BUSY, cuts, protocol)
    ended = [e.attempt_id for e in out if isinstance(e, CallEnded)]
    assert len(ended) == len(set(ended))  # never two ends for one call
    # tracking still works after the damage: the next good frame ends its call
    assert [e.attempt_id for e in out if isinstance(e, CallEnded)][-1:] == ["fz"]
    # every bad value the tracker absorbed left a warning naming it (nothing dropped silently)
    absorbed = [r for r in logged.records if r.name == "contactd.calls.tracker"]
    assert len(absorbed) == tracker.malformed


def test_a_split_utf8_caller_name_survives_chunking() -> None:
    client, _tracker, _out = pipeline()
    seen: list[str] = []
    client.events.on("Newchannel", lambda e: seen.append(str(e["CallerIDName"])))
    protocol = client.replay_protocol()
    frame = "Event: Newchannel\r\nCallerIDName: Zoë Øster\r\nUniqueid: 1\r\n\r\n".encode()
    split = frame.index("ë".encode()) + 1  # in the middle of the two-byte "ë"
    protocol.data_received(frame[:split])
    protocol.data_received(frame[split:])
    assert seen == ["Zoë Øster"]
