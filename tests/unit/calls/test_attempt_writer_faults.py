"""The attempt writer when a commit fails: the batch is kept, retried and committed, never lost."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from contactd.calls.events import CallEnded, CallRinging
from contactd.calls.repo import AttemptRepository, NewAttempt
from contactd.calls.writer import AttemptWriter
from contactd.db.session import Database
from contactd.enums import AttemptState, CallOutcome

WAIT_S = 30.0
POLL_S = 0.05


async def test_updates_whose_commit_fails_on_a_locked_database_are_committed_later(
    db: Database, tmp_path: Path
) -> None:
    repo = AttemptRepository(db)
    async with AttemptWriter(repo) as writer:
        await writer.create(NewAttempt(attempt_id="a", phone_e164="+15550001"))
        locker = sqlite3.connect(tmp_path / "test.db", isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")  # as an import holding the write lock does
            writer.apply(CallRinging(attempt_id="a"))
            writer.apply(CallEnded(attempt_id="a", outcome=CallOutcome.NO_ANSWER, cause=19))
            deadline = time.monotonic() + WAIT_S
            while writer.probe().status != "degraded":  # the probe has no event to wait on
                assert time.monotonic() < deadline
                await asyncio.sleep(POLL_S)
            assert "locked" in writer.probe().detail
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await asyncio.wait_for(writer.flush(), WAIT_S)
        assert writer.probe().status == "ok" and writer.failures >= 1
    row = await repo.get("a")
    assert row is not None and row.state is AttemptState.ENDED
    assert row.outcome is CallOutcome.NO_ANSWER
