from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from contactd.crm.assign import AssignPolicy
from contactd.crm.events import TaskCreated, TaskEscalated, TaskReminderDue
from contactd.crm.routing import FollowUp, InboundContact, Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import NewTask, TaskService, TaskWatcher
from contactd.db.base import utcnow
from contactd.db.models import Task
from contactd.db.session import Database
from contactd.enums import (
    Channel,
    Direction,
    InteractionKind,
    Role,
    TaskPriority,
    TaskSource,
    TaskStatus,
)
from contactd.errors import ConflictError
from contactd.events import DomainEvent, EventBus

AddUser = Callable[..., Awaitable[int]]


@pytest.fixture
def bus_events() -> tuple[EventBus, list[DomainEvent]]:
    bus = EventBus()
    seen: list[DomainEvent] = []
    bus.subscribe(DomainEvent, seen.append)
    return bus, seen


async def test_routing_creates_assigned_tasks(
    crm_db: Database, contacts: ContactService, add_user: AddUser,
    bus_events: tuple[EventBus, list[DomainEvent]],
) -> None:
    bus, seen = bus_events
    ann = await add_user("ann", team="sales")
    bob = await add_user("bob", team="sales")
    owner = await add_user("olga", team="support")
    tasks = TaskService(crm_db, bus=bus, policy=AssignPolicy.ROUND_ROBIN)
    router = Router(crm_db, contacts, tasks, bus=bus)
    owned = await contacts.create_contact(ContactInput(last_name="Owned", owner_id=owner,
                                                       phones=["030 1000001"]))
    missed = InboundContact(kind=InteractionKind.CALL, direction=Direction.INBOUND,
                            channel=Channel.CALL, remote_address="+49301000001", outcome="missed")
    first = await router.record(missed)
    assert first.contact_id == owned
    picks = [await tasks.create(NewTask(title=f"t{i}", team="sales")) for i in range(3)]
    async with crm_db.session() as session:
        kept = await session.get(Task, first.task_ids[0])
        assert kept is not None and kept.assignee_id == owner  # the contact's owner keeps it
        assert kept.source is TaskSource.MISSED_CALL and kept.priority is TaskPriority.HIGH
        assignees = [await session.scalar(select(Task.assignee_id).where(Task.id == t))
                     for t in picks]
    assert assignees == [ann, bob, ann]
    created = [e for e in seen if isinstance(e, TaskCreated)]
    assert len(created) == 4


async def test_least_loaded_and_skills(
    crm_db: Database, add_user: AddUser
) -> None:
    busy = await add_user("busy", skills=["fr"])
    free = await add_user("free", skills=["de"])
    await add_user("away", skills=["fr"], active=False)
    tasks = TaskService(crm_db)
    for _ in range(2):
        await tasks.create(NewTask(title="x", assignee_id=busy))
    assert (await tasks.open_tasks(assignee_id=free)) == []
    least = await tasks.create(NewTask(title="y"))
    french = await tasks.create(NewTask(title="z", skill="fr"))
    nobody = await tasks.create(NewTask(title="w", skill="jp"))
    async with crm_db.session() as session:
        got = dict((await session.execute(select(Task.id, Task.assignee_id))).all())
    assert (got[least], got[french], got[nobody]) == (free, busy, None)


async def test_reminders_and_escalation_once(
    crm_db: Database, add_user: AddUser, bus_events: tuple[EventBus, list[DomainEvent]]
) -> None:
    bus, seen = bus_events
    agent = await add_user("agent", team="sales")
    boss = await add_user("boss", team="sales", role=Role.SUPERVISOR)
    tasks = TaskService(crm_db, bus=bus)
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    late = await tasks.create(NewTask(title="late", assignee_id=agent, team="sales",
                                      due_at=now - timedelta(minutes=1),
                                      remind_at=now - timedelta(minutes=30)))
    soon = await tasks.create(NewTask(title="soon", assignee_id=agent,
                                      due_at=now + timedelta(hours=1),
                                      remind_at=now + timedelta(minutes=45)))
    watcher = TaskWatcher(tasks, clock=lambda: now)
    assert await watcher.tick() == {"reminded": [late], "escalated": [late]}
    assert await watcher.tick() == {"reminded": [], "escalated": []}
    async with crm_db.session() as session:
        task = await session.get(Task, late)
        assert task is not None
        assert (task.assignee_id, task.priority) == (boss, TaskPriority.URGENT)
    escalated = [e for e in seen if isinstance(e, TaskEscalated)]
    assert [(e.task_id, e.previous_assignee_id, e.assignee_id) for e in escalated] == [
        (late, agent, boss)]
    assert [e.task_id for e in seen if isinstance(e, TaskReminderDue)] == [late]
    await tasks.set_status(soon, TaskStatus.DONE)
    later = now + timedelta(hours=2)
    assert await tasks.escalate_overdue(later) == []
    with pytest.raises(ConflictError):
        await tasks.set_status(soon, TaskStatus.IN_PROGRESS)
    await tasks.set_status(soon, TaskStatus.OPEN)


async def test_watcher_runs_and_stops(crm_db: Database) -> None:
    tasks = TaskService(crm_db)
    async with TaskWatcher(tasks, interval_s=0.01) as watcher:
        assert watcher._runner is not None and not watcher._runner.done()
    assert watcher._runner.done()


async def test_campaign_outcome_and_callback(
    crm_db: Database, contacts: ContactService
) -> None:
    tasks = TaskService(crm_db)
    router = Router(crm_db, contacts, tasks, create_unknown=False)
    when = datetime(2026, 5, 1, 15, tzinfo=UTC)
    result = await router.record(
        InboundContact(kind=InteractionKind.CALL, direction=Direction.OUTBOUND,
                       channel=Channel.CALL, remote_address="+49 30 5550000"),
        FollowUp(outcome="human", callback_at=when),
    )
    assert result.contact_id is None  # unknown and not created
    async with crm_db.session() as session:
        task = await session.get(Task, result.task_ids[0])
        assert task is not None and task.source is TaskSource.CALLBACK and task.due_at == when


async def _until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll loop state (a health probe has no event to wait on), bounded in time."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def test_watcher_survives_a_locked_database_and_reports_it(
    crm_db: Database, tmp_path: Path
) -> None:
    tasks = TaskService(crm_db)
    now = utcnow()
    late = await tasks.create(NewTask(title="late", due_at=now - timedelta(minutes=5),
                                      remind_at=now - timedelta(minutes=30)))
    locker = sqlite3.connect(tmp_path / "test.db", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # as an import holds the write lock
    async with TaskWatcher(tasks, interval_s=0.05) as watcher:
        try:
            await _until(lambda: not watcher.state.healthy)
            assert watcher.state.probe().status == "degraded"
            assert "locked" in watcher.state.last_error
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await _until(lambda: watcher.state.healthy)
        assert watcher._runner is not None and not watcher._runner.done()
    async with crm_db.session() as session:
        task = await session.get(Task, late)
        assert task is not None and task.escalated_at is not None
