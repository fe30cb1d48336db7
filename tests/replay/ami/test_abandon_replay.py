"""Replay of a recorded AMI stream of abandoned calls (abandon.ami, captured from the Asterisk 22
sandbox by record_abandon_trace.py): queue timeout, busy agent, no agent in time - each gives
CallAnswered → CallAbandoned → CallEnded - and a connected control call that gives none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contactd.ami.client import AmiClient
from contactd.calls.events import (
    AnsweredBy,
    CallAbandoned,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallEvent,
)
from contactd.calls.repo import AttemptRepository, NewAttempt
from contactd.calls.service import CallService
from contactd.calls.tracker import TRACKED_EVENTS, CallTracker
from contactd.config import AmiSettings
from contactd.db.session import Database
from contactd.enums import AttemptState, CallOutcome
from contactd.events import EventBus

HERE = Path(__file__).parent
STREAM = (HERE / "abandon.ami").read_bytes()
IDS: dict[str, str] = json.loads((HERE / "abandon.json").read_text())
B, OC = AnsweredBy, CallOutcome

ABANDONED = [("CallAnswered", B.HUMAN), ("CallAbandoned", "SUCCESS"), ("CallEnded", OC.HUMAN, 16)]
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "queue_timeout": ABANDONED,
    "agent_busy": ABANDONED,
    "no_agent_in_time": ABANDONED,
    "connected": [
        ("CallAnswered", B.HUMAN),
        ("CallBridged", "Local/7003@contactd-test-world"),
        ("CallEnded", OC.HUMAN, 16),
    ],
}

# Not from the recording: a ContactdAbandon of an attempt nobody watches, one naming nothing.
STRAY = (
    b"Event: UserEvent\r\nPrivilege: user,all\r\nChannel: Local/20012@x-000000ff;1\r\n"
    b"Uniqueid: 1700000000.99\r\nLinkedid: 1700000000.99\r\nUserEvent: ContactdAbandon\r\n"
    b"Attempt: 00000000-0000-0000-0000-000000000000\r\nStatus: SUCCESS\r\n\r\n"
    b"Event: UserEvent\r\nUserEvent: ContactdAbandon\r\n\r\n"
)


def summary(event: CallEvent) -> tuple[Any, ...]:
    if isinstance(event, CallAnswered):
        return ("CallAnswered", event.answered_by)
    if isinstance(event, CallAbandoned):
        return ("CallAbandoned", event.prompt_status)
    if isinstance(event, CallBridged):
        return ("CallBridged", event.agent_interface)
    assert isinstance(event, CallEnded)
    return ("CallEnded", event.outcome, event.cause)


def replay(stream: bytes) -> dict[str, list[tuple[Any, ...]]]:
    client = AmiClient(AmiSettings())
    tracker = CallTracker()
    for attempt_id in IDS.values():
        tracker.watch(attempt_id, started=0.0, expect_amd=True)
    produced: list[CallEvent] = []
    for name in TRACKED_EVENTS:
        client.events.on(name, lambda e: produced.extend(tracker.feed(e, 0.0)))
    protocol = client.replay_protocol()
    protocol.data_received(stream)
    assert protocol.malformed == 0 and not client.events.failures and tracker.malformed == 0
    assert tracker.open_attempts == []
    by_id = {attempt_id: name for name, attempt_id in IDS.items()}
    out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in IDS}
    for event in produced:
        out[by_id[event.attempt_id]].append(summary(event))
    return out


def test_each_abandon_from_the_recorded_stream() -> None:
    assert replay(STREAM) == EXPECTED


def test_every_frame_twice_and_stray_abandons() -> None:
    frames = [f for f in STREAM.split(b"\r\n\r\n") if f]
    doubled = b"".join(f + b"\r\n\r\n" + f + b"\r\n\r\n" for f in frames)
    assert replay(STRAY + doubled + STRAY) == EXPECTED


async def test_through_the_service_abandon_is_published_before_the_end(db: Database) -> None:
    client = AmiClient(AmiSettings())
    bus = EventBus()
    published: list[CallEvent] = []
    bus.subscribe(CallEvent, published.append)
    repo = AttemptRepository(db)
    await repo.insert_many([NewAttempt(attempt_id=a, phone_e164="+15550100", detect_machine=True)
                            for a in IDS.values()])
    async with CallService(db, bus, client) as calls:
        for attempt_id in IDS.values():
            calls.tracker.watch(attempt_id, started=0.0, expect_amd=True)
        client.replay_protocol().data_received(STREAM)
        await calls.drain()
    for name, attempt_id in IDS.items():
        mine = [summary(e) for e in published if e.attempt_id == attempt_id]
        assert mine == EXPECTED[name], name
        row = await repo.get(attempt_id)
        # The call layer stores the line's fate; the abandon is the dialer's to record.
        assert row is not None and (row.state, row.outcome) == (AttemptState.ENDED, OC.HUMAN)
