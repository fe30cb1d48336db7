"""Attempt rows: written before anything else, moved only forward, batched by the writer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from contactd.calls.events import AnsweredBy, CallAnswered, CallBridged, CallEnded, CallRinging
from contactd.calls.repo import AttemptRepository, NewAttempt
from contactd.calls.writer import AttemptWriter
from contactd.db.session import Database
from contactd.enums import AttemptState, CallOutcome


def ended(attempt_id: str, outcome: CallOutcome = CallOutcome.BUSY) -> CallEnded:
    return CallEnded(attempt_id=attempt_id, outcome=outcome, cause=17, ring_s=2.5)


async def test_forward_only_transitions(db: Database) -> None:
    repo = AttemptRepository(db)
    await repo.insert_many([NewAttempt(attempt_id="a", phone_e164="+15550001", lead_id=None)])
    row = await repo.get("a")
    assert row is not None and row.state is AttemptState.DIALING
    answered_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    await repo.apply_many(
        [
            CallRinging(attempt_id="a"),
            CallAnswered(
                attempt_id="a",
                answered_by=AnsweredBy.HUMAN,
                answered_at=answered_at,
                amd_status="HUMAN",
                channel="Local/1@w;1",
            ),
        ]
    )
    # late and duplicated events must not move the row back
    await repo.apply_many([CallRinging(attempt_id="a"), CallRinging(attempt_id="a")])
    row = await repo.get("a")
    assert row is not None
    assert (row.state, row.answered_at, row.amd_status) == (
        AttemptState.ANSWERED,
        answered_at,
        "HUMAN",
    )
    await repo.apply_many([CallBridged(attempt_id="a", agent_channel="x", agent_interface="x")])
    await repo.apply_many([ended("a", CallOutcome.HUMAN)])
    await repo.apply_many([ended("a", CallOutcome.LOST)])  # a second end is refused
    row = await repo.get("a")
    assert row is not None
    assert (row.state, row.outcome, row.hangup_cause, row.ring_s) == (
        AttemptState.ENDED,
        CallOutcome.HUMAN,
        17,
        2.5,
    )
    assert row.bridged_at is not None and row.ended_at is not None
    assert await repo.open_attempts() == []


async def test_writer_batches_and_keeps_order(db: Database) -> None:
    repo = AttemptRepository(db)
    async with AttemptWriter(repo) as writer:
        ids = [f"id-{i}" for i in range(300)]
        await asyncio.gather(
            *(writer.create(NewAttempt(attempt_id=i, phone_e164="+1555")) for i in ids)
        )
        assert writer.commits < 30  # group commit, not one transaction per row
        for attempt_id in ids[:100]:
            writer.apply(CallRinging(attempt_id=attempt_id))
            writer.apply(ended(attempt_id))
        await writer.flush()
    counts = await repo.count_by_state()
    assert counts == {AttemptState.ENDED: 100, AttemptState.DIALING: 200}
    assert len(await repo.open_attempts()) == 200


async def test_writer_reports_a_failed_insert_to_its_caller(db: Database) -> None:
    repo = AttemptRepository(db)
    async with AttemptWriter(repo) as writer:
        await writer.create(NewAttempt(attempt_id="dup", phone_e164="+1555"))
        try:
            await writer.create(NewAttempt(attempt_id="dup", phone_e164="+1555"))
        except Exception as exc:
            assert "UNIQUE" in str(exc) or "unique" in str(exc)
        else:
            raise AssertionError("a duplicate attempt id must fail")
        assert writer.failures == 1
