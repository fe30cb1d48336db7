"""Recorded AMI streams fed back through the real client and tracker, for the replay tests.

A trace is the raw bytes Asterisk sent (`<name>.ami`) and the attempt ids it was recorded with
(`<name>.json`, call name → attempt id). The tests compare what the tracker publishes per
call, summarised, with what the sandbox's number table says must happen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from contactd.ami.client import AmiClient
from contactd.calls.events import (
    CallAbandoned,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallEvent,
    CallRinging,
)
from contactd.calls.tracker import TRACKED_EVENTS, CallTracker
from contactd.config import AmiSettings

HERE = Path(__file__).parent


def load(name: str) -> tuple[bytes, dict[str, str]]:
    """The recorded bytes of trace `name` and its call name → attempt id map."""
    ids: dict[str, str] = json.loads((HERE / f"{name}.json").read_text())
    return (HERE / f"{name}.ami").read_bytes(), ids


def frames_twice(stream: bytes) -> bytes:
    """The stream with every frame sent twice (a duplicated event must change nothing)."""
    frames = [f for f in stream.split(b"\r\n\r\n") if f]
    return b"".join(f + b"\r\n\r\n" + f + b"\r\n\r\n" for f in frames)


def summary(event: CallEvent) -> tuple[Any, ...]:
    """What a test compares of one published event."""
    if isinstance(event, CallAnswered):
        return ("CallAnswered", event.answered_by)
    if isinstance(event, CallAbandoned):
        return ("CallAbandoned", event.prompt_status)
    if isinstance(event, CallBridged):
        return ("CallBridged", event.agent_interface)
    if isinstance(event, CallEnded):
        return ("CallEnded", event.outcome, event.cause)
    assert isinstance(event, CallRinging)
    return ("CallRinging",)


def replay(
    chunks: Iterable[bytes], ids: dict[str, str], *, expect_amd: Callable[[str], bool]
) -> tuple[dict[str, list[tuple[Any, ...]]], CallTracker]:
    """Feed the bytes, chunk by chunk, through the client's protocol into a tracker watching
    every call (`expect_amd(call name)`); the summaries per call name, and the tracker. Every
    frame must parse and every call must end."""
    client = AmiClient(AmiSettings())
    tracker = CallTracker()
    for name, attempt_id in ids.items():
        tracker.watch(attempt_id, started=0.0, expect_amd=expect_amd(name))
    produced: list[CallEvent] = []
    for event_name in TRACKED_EVENTS:
        client.events.on(event_name, lambda e: produced.extend(tracker.feed(e, 0.0)))
    protocol = client.replay_protocol()
    for chunk in chunks:
        protocol.data_received(chunk)
    assert protocol.malformed == 0 and not client.events.failures
    assert tracker.open_attempts == []
    by_id = {attempt_id: name for name, attempt_id in ids.items()}
    out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in ids}
    for event in produced:
        out[by_id[event.attempt_id]].append(summary(event))
    return out, tracker
