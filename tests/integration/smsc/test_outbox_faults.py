"""The outbox against database faults, sending through the real SMSC peer.

A locked SQLite database (another connection holding BEGIN IMMEDIATE, as an import does)
stalls the dispatcher: it reports degraded health and delivers once the lock goes. A batch of
outcomes whose commit fails is kept and committed later, never dropped.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from contactd.config import Settings
from contactd.db.models import OutboxMessage
from contactd.db.session import Database
from contactd.enums import MessageState
from contactd.events import EventBus
from contactd.health import ComponentHealth
from contactd.messaging import outbox_store
from contactd.messaging.events import MessageDelivered, MessageSent
from contactd.messaging.outbox_store import insert_messages
from tests.integration.smsc.test_sms_outbox import messaging, rows, sms
from tests.peers.smsc import SmscPeer

pytestmark = pytest.mark.smsc

WAIT_S = 30.0
POLL_S = 0.05


async def until(probe: Callable[[], ComponentHealth], status: str) -> None:
    """Poll a health probe (it has no event to wait on) until it reports `status`."""
    deadline = time.monotonic() + WAIT_S
    while probe().status != status:
        assert time.monotonic() < deadline, f"health stayed {probe()}"
        await asyncio.sleep(POLL_S)


async def test_a_locked_database_stalls_the_outbox_which_delivers_once_the_lock_goes(
    settings: Settings, smsc: SmscPeer, db: Database, tmp_path: Path
) -> None:
    ids, _ = await insert_messages(db, [sms(i) for i in range(20)])
    due = datetime.now(UTC) + timedelta(seconds=1)  # claimed only once the lock is held
    async with db.transaction() as session:
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(next_attempt_at=due)
        )
    async with messaging(settings, smsc, db) as m:
        locker = sqlite3.connect(tmp_path / "test.db", isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")
            await until(m.outbox.probe, "degraded")
            assert "locked" in m.outbox.probe().detail
            assert m.outbox.stats.sent == 0
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await m.outbox.wait_for(lambda s: s.delivered == 20, WAIT_S)
        await until(m.outbox.probe, "ok")
        assert m.outbox.dispatch_state.total_failures >= 1
    assert [r.state for r in await rows(db)] == [MessageState.DELIVERED] * 20
    assert len(await smsc.submits()) == 20


async def test_outcomes_whose_commit_fails_are_kept_and_committed_later(
    settings: Settings, smsc: SmscPeer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fault the real database cannot be made to produce on demand: a commit that fails
    # three times with an error (not a lock wait), then works.
    real = outbox_store.write_outcomes
    failures = 3

    async def flaky(*args: object, **kwargs: object) -> list[outbox_store.Outcome]:
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError("disk I/O error (injected)")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox_store, "write_outcomes", flaky)
    async with messaging(settings, smsc, db) as m:
        await m.outbox.enqueue_many([sms(i) for i in range(10)])
        await m.outbox.wait_for(lambda s: s.delivered == 10, WAIT_S)
        assert failures == 0 and m.outbox.writer_state.total_failures == 3
        assert m.outbox.probe().status == "ok"
    stored = await rows(db)
    assert [r.state for r in stored] == [MessageState.DELIVERED] * 10
    assert all(r.provider_id and r.attempts == 1 for r in stored)
    assert len(await smsc.submits()) == 10  # nothing was sent twice


async def test_events_are_published_in_commit_order(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    bus = EventBus()
    seen: list[tuple[str, int]] = []

    async def slow_sent(event: MessageSent) -> None:
        for _ in range(20):  # a subscriber that takes a while: later events must wait for it
            await asyncio.sleep(0)
        seen.append(("sent", event.message_id))

    bus.subscribe(MessageSent, slow_sent)
    bus.subscribe(MessageDelivered, lambda e: seen.append(("delivered", e.message_id)))
    async with messaging(settings, smsc, db, bus) as m:
        ids = await m.outbox.enqueue_many([sms(i) for i in range(50)])
        await m.outbox.wait_for(lambda s: s.delivered == 50, WAIT_S)
    assert sorted(seen) == sorted([("sent", i) for i in ids] + [("delivered", i) for i in ids])
    for message_id in ids:
        assert seen.index(("sent", message_id)) < seen.index(("delivered", message_id))
