"""Replay of a recorded AMI stream (calls.ami, captured from the Asterisk 22 sandbox by
record_trace.py): eight calls, one per outcome, must give exactly the expected domain events
and stored rows, also when every frame comes twice or the bytes arrive in odd chunks."""

from __future__ import annotations

import random
from typing import Any

import pytest

from contactd.ami.client import AmiClient
from contactd.calls.events import AnsweredBy, CallEnded, CallEvent
from contactd.calls.repo import AttemptRepository, NewAttempt
from contactd.calls.service import CallService
from contactd.config import AmiSettings
from contactd.db.session import Database
from contactd.enums import AttemptState, CallOutcome
from contactd.events import EventBus
from tests.replay.ami import trace

STREAM, IDS = trace.load("calls")
OC, B = CallOutcome, AnsweredBy

# From the sandbox's number table (tests/peers/asterisk.py), not from the tracker's output.
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "human": [("CallAnswered", B.HUMAN), ("CallEnded", OC.HUMAN, 16)],
    "busy": [("CallEnded", OC.BUSY, 17)],
    "no_answer": [("CallRinging",), ("CallEnded", OC.NO_ANSWER, 19)],
    "unallocated": [("CallEnded", OC.UNALLOCATED, 1)],
    "congestion": [("CallEnded", OC.CONGESTION, 34)],
    "machine": [("CallAnswered", B.MACHINE), ("CallEnded", OC.MACHINE, 16)],
    "bridged": [
        ("CallAnswered", B.HUMAN),
        ("CallBridged", "Local/7003@contactd-test-world"),
        ("CallEnded", OC.HUMAN, 16),
    ],
    "no_amd": [("CallAnswered", B.UNKNOWN), ("CallEnded", OC.HUMAN, 16)],
}


def replay(chunks: list[bytes]) -> dict[str, list[tuple[Any, ...]]]:
    return trace.replay(chunks, IDS, expect_amd=lambda name: name != "no_amd")[0]


def test_each_outcome_from_the_recorded_stream() -> None:
    assert replay([STREAM]) == EXPECTED


def test_every_frame_twice() -> None:
    assert replay([trace.frames_twice(STREAM)]) == EXPECTED


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_odd_chunking(seed: int) -> None:
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(STREAM):
        step = rng.choice([1, 2, 7, 100, 1500, 9000])
        chunks.append(STREAM[i : i + step])
        i += step
    assert replay(chunks) == EXPECTED


async def test_replay_through_the_service_stores_every_outcome(db: Database) -> None:
    client = AmiClient(AmiSettings())
    bus = EventBus()
    published: list[CallEvent] = []
    bus.subscribe(CallEvent, published.append)
    repo = AttemptRepository(db)
    await repo.insert_many(
        [
            NewAttempt(attempt_id=a, phone_e164="+15550100", detect_machine=True)
            for a in IDS.values()
        ]
    )
    async with CallService(db, bus, client) as calls:
        for name, attempt_id in IDS.items():
            calls.tracker.watch(attempt_id, started=0.0, expect_amd=name != "no_amd")
        client.replay_protocol().data_received(STREAM)
        await calls.drain()
        assert calls.in_flight == 0
    for name, attempt_id in IDS.items():
        row = await repo.get(attempt_id)
        assert row is not None and row.state is AttemptState.ENDED, name
        assert (row.outcome, row.hangup_cause) == EXPECTED[name][-1][1:], name
    bridged = await repo.get(IDS["bridged"])
    assert bridged is not None and bridged.bridged_at is not None and bridged.talk_s
    machine = await repo.get(IDS["machine"])
    assert machine is not None and machine.amd_status == "MACHINE"
    assert sum(isinstance(e, CallEnded) for e in published) == len(IDS)
