"""Replay of a recorded AMI stream of abandoned calls (abandon.ami, captured from the Asterisk 22
sandbox by record_abandon_trace.py): queue timeout, busy agent, no agent in time - each gives
CallAnswered → CallAbandoned → CallEnded - and a connected control call that gives none."""

from __future__ import annotations

from typing import Any

from contactd.ami.client import AmiClient
from contactd.calls.events import AnsweredBy, CallEvent
from contactd.calls.repo import AttemptRepository, NewAttempt
from contactd.calls.service import CallService
from contactd.config import AmiSettings
from contactd.db.session import Database
from contactd.enums import AttemptState, CallOutcome
from contactd.events import EventBus
from tests.replay.ami import trace

STREAM, IDS = trace.load("abandon")
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


def replay(stream: bytes) -> dict[str, list[tuple[Any, ...]]]:
    out, tracker = trace.replay([stream], IDS, expect_amd=lambda name: True)
    assert tracker.malformed == 0
    return out


def test_each_abandon_from_the_recorded_stream() -> None:
    assert replay(STREAM) == EXPECTED


def test_every_frame_twice_and_stray_abandons() -> None:
    assert replay(STRAY + trace.frames_twice(STREAM) + STRAY) == EXPECTED


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
        mine = [trace.summary(e) for e in published if e.attempt_id == attempt_id]
        assert mine == EXPECTED[name], name
        row = await repo.get(attempt_id)
        # The call layer stores the line's fate; the abandon is the dialer's to record.
        assert row is not None and (row.state, row.outcome) == (AttemptState.ENDED, OC.HUMAN)
