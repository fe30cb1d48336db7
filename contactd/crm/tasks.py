"""Tasks: created by hand or by routing, assigned by the pure policy in `assign`, reminded
before they are due and escalated when overdue. `TaskWatcher` runs the clock-driven part."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.auth import audit
from contactd.auth.audit import Actor
from contactd.background import LoopState, run_resilient
from contactd.crm.assign import Agent, AssignPolicy, AssignRequest, choose, escalation_target
from contactd.crm.events import TaskCreated, TaskEscalated, TaskReminderDue
from contactd.crm.task_load import task_load
from contactd.db.base import utcnow
from contactd.db.models import Contact, Task, TaskComment, User
from contactd.db.session import Database
from contactd.enums import Role, TaskPriority, TaskSource, TaskStatus
from contactd.errors import ConflictError, NotFoundError, ValidationError
from contactd.events import DomainEvent, EventBus

log = logging.getLogger(__name__)

OPEN_STATES: Final = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)
# Allowed status changes; anything else is a ConflictError.
TRANSITIONS: Final[dict[TaskStatus, frozenset[TaskStatus]]] = {
    TaskStatus.OPEN: frozenset({TaskStatus.IN_PROGRESS, TaskStatus.DONE, TaskStatus.CANCELLED}),
    TaskStatus.IN_PROGRESS: frozenset({TaskStatus.OPEN, TaskStatus.DONE, TaskStatus.CANCELLED}),
    TaskStatus.DONE: frozenset({TaskStatus.OPEN}),
    TaskStatus.CANCELLED: frozenset({TaskStatus.OPEN}),
}
WATCH_INTERVAL_S: Final = 30.0


@dataclass(frozen=True)
class NewTask:
    title: str
    source: TaskSource = TaskSource.MANUAL
    contact_id: int | None = None
    interaction_id: int | None = None
    description: str = ""
    due_at: datetime | None = None
    remind_at: datetime | None = None
    priority: TaskPriority = TaskPriority.NORMAL
    team: str | None = None
    skill: str | None = None
    assignee_id: int | None = None  # given: no policy runs
    created_by_id: int | None = None


async def agent_snapshot(session: AsyncSession) -> list[Agent]:
    """Active agents and supervisors with their open-task counts: the policy's input. The
    counts come from `task_load` while they are fresh (counting is a scan of every open
    task)."""
    load = task_load(session)
    counts = load.current()
    if counts is None:
        counts = await open_task_counts(session)
        load.read(counts)
    rows = await session.execute(
        select(User.id, User.team, User.skills)
        .where(User.active.is_(True), User.role.in_([Role.AGENT, Role.SUPERVISOR]))
    )
    return [Agent(uid, team, frozenset(skills or ()), counts.get(uid, 0))
            for uid, team, skills in rows]


async def open_task_counts(session: AsyncSession) -> dict[int, int]:
    """Open tasks per assignee, read from the database."""
    rows = await session.execute(
        select(Task.assignee_id, func.count())
        .where(Task.status.in_(OPEN_STATES), Task.assignee_id.is_not(None))
        .group_by(Task.assignee_id)
    )
    return {int(uid): int(n) for uid, n in rows if uid is not None}


class TaskService:
    def __init__(
        self, db: Database, *, bus: EventBus | None = None,
        policy: AssignPolicy = AssignPolicy.LEAST_LOADED, keep_owner: bool = True,
    ) -> None:
        self.db = db
        self.bus = bus
        self.policy = policy
        self.keep_owner = keep_owner

    async def create(self, new: NewTask, *, actor: Actor | None = None) -> int:
        """Store and assign one task in its own transaction, then announce it."""
        async with self.db.transaction() as session:
            task_id, assignee, source = await self.create_in(session, new)
            if actor is not None:
                audit.record(session, actor, "task.create", "task", task_id, None,
                             {"title": new.title, "assignee_id": assignee,
                              "contact_id": new.contact_id})
        await self._publish(TaskCreated(task_id=task_id, assignee_id=assignee, source=source))
        return task_id

    async def create_in(
        self, session: AsyncSession, new: NewTask
    ) -> tuple[int, int | None, str]:
        """Inside the caller's transaction; the caller announces (id, assignee, source)."""
        task = await self._create(session, new)
        return task.id, task.assignee_id, task.source.value

    async def _create(self, session: AsyncSession, new: NewTask) -> Task:
        assignee = new.assignee_id
        if assignee is None:
            assignee = await self._choose(session, new)
        task = Task(
            title=new.title[:300], description=new.description, contact_id=new.contact_id,
            interaction_id=new.interaction_id, assignee_id=assignee,
            created_by_id=new.created_by_id, team=new.team, skill=new.skill,
            status=TaskStatus.OPEN, priority=new.priority, source=new.source, due_at=new.due_at,
            remind_at=new.remind_at,
        )
        session.add(task)
        await session.flush()
        task_load(session).gave([assignee])
        return task

    async def _choose(self, session: AsyncSession, new: NewTask) -> int | None:
        owner = None
        if new.contact_id is not None:
            owner = await session.scalar(
                select(Contact.owner_id).where(Contact.id == new.contact_id)
            )
        last = None
        if self.policy is AssignPolicy.ROUND_ROBIN:  # the only policy that reads it
            last = await session.scalar(
                select(Task.assignee_id)
                .where(Task.assignee_id.is_not(None),
                       Task.team.is_(None) if new.team is None else Task.team == new.team)
                .order_by(Task.id.desc()).limit(1)
            )
        request = AssignRequest(
            team=new.team, skill=new.skill, owner_id=owner, keep_owner=self.keep_owner,
            policy=self.policy, last_assignee_id=last,
        )
        return choose(await agent_snapshot(session), request)

    async def set_status(
        self, task_id: int, status: TaskStatus, *, actor: Actor | None = None
    ) -> None:
        async with self.db.transaction() as session:
            task = await session.get(Task, task_id)
            if task is None:
                raise NotFoundError(f"no task {task_id}")
            if status not in TRANSITIONS[task.status]:
                raise ConflictError(
                    f"task {task_id} cannot go from {task.status.value} to {status.value}",
                    code="task_transition_invalid",
                )
            if actor is not None:
                audit.record(session, actor, "task.status", "task", task_id,
                             {"status": task.status.value}, {"status": status.value})
            task.status = status
            task.completed_at = utcnow() if status is TaskStatus.DONE else None
            task_load(session).forget()

    async def assign(
        self, task_id: int, user_id: int | None, *, actor: Actor | None = None
    ) -> None:
        async with self.db.transaction() as session:
            task = await session.get(Task, task_id)
            if task is None:
                raise NotFoundError(f"no task {task_id}")
            if actor is not None:
                audit.record(session, actor, "task.assign", "task", task_id,
                             {"assignee_id": task.assignee_id}, {"assignee_id": user_id})
            task.assignee_id = user_id
            task_load(session).forget()

    async def assign_by_policy(self, task_id: int, *, actor: Actor | None = None) -> int | None:
        """Run the assignment policy again (e.g. the assignee left); returns who got it."""
        async with self.db.transaction() as session:
            task = await session.get(Task, task_id)
            if task is None:
                raise NotFoundError(f"no task {task_id}")
            chosen = await self._choose(session, NewTask(
                title=task.title, contact_id=task.contact_id, team=task.team, skill=task.skill))
            if actor is not None:
                audit.record(session, actor, "task.assign", "task", task_id,
                             {"assignee_id": task.assignee_id}, {"assignee_id": chosen})
            task.assignee_id = chosen
            task_load(session).forget()
            return chosen

    async def comment(self, task_id: int, body: str, *, actor: Actor) -> int:
        text = body.strip()
        if not text or len(text) > 10_000:
            raise ValidationError("a comment is 1 to 10000 characters", field="body")
        async with self.db.transaction() as session:
            if await session.get(Task, task_id) is None:
                raise NotFoundError(f"no task {task_id}")
            row = TaskComment(task_id=task_id, user_id=actor.user_id, body=text)
            session.add(row)
            await session.flush()
            audit.record(session, actor, "task.comment", "task", task_id, None,
                         {"comment_id": row.id})
            return row.id

    async def open_tasks(self, *, assignee_id: int | None = None, team: str | None = None,
                         limit: int = 100) -> list[Task]:
        stmt = select(Task).where(Task.status.in_(OPEN_STATES))
        if assignee_id is not None:
            stmt = stmt.where(Task.assignee_id == assignee_id)
        if team is not None:
            stmt = stmt.where(Task.team == team)
        stmt = stmt.order_by(Task.due_at.is_(None), Task.due_at, Task.id).limit(limit)
        async with self.db.session() as session:
            return list(await session.scalars(stmt))

    async def send_reminders(self, now: datetime | None = None) -> list[int]:
        """Mark and announce tasks whose reminder time has come (each reminded once)."""
        now = now or utcnow()
        events: list[DomainEvent] = []
        async with self.db.transaction() as session:
            due = await session.scalars(
                select(Task).where(Task.status.in_(OPEN_STATES), Task.remind_at <= now,
                                   Task.reminded_at.is_(None))
            )
            for task in due:
                task.reminded_at = now
                events.append(TaskReminderDue(task_id=task.id, assignee_id=task.assignee_id))
        for event in events:
            await self._publish(event)
        return [e.task_id for e in events if isinstance(e, TaskReminderDue)]

    async def escalate_overdue(self, now: datetime | None = None) -> list[int]:
        """Overdue open tasks go to a supervisor once, with urgent priority."""
        now = now or utcnow()
        events: list[TaskEscalated] = []
        async with self.db.transaction() as session:
            overdue = list(await session.scalars(
                select(Task).where(Task.status.in_(OPEN_STATES), Task.due_at < now,
                                   Task.escalated_at.is_(None))
            ))
            if not overdue:
                return []
            agents = await agent_snapshot(session)
            supervisors = set((await session.scalars(
                select(User.id).where(User.role == Role.SUPERVISOR, User.active.is_(True))
            )).all())
            for task in overdue:
                target = escalation_target(agents, team=task.team, current_id=task.assignee_id,
                                           supervisors=supervisors)
                events.append(TaskEscalated(task_id=task.id, previous_assignee_id=task.assignee_id,
                                            assignee_id=target or task.assignee_id))
                task.escalated_at = now
                task.priority = TaskPriority.URGENT
                if target is not None:
                    task.assignee_id = target
            task_load(session).forget()
        for event in events:
            await self._publish(event)
        return [e.task_id for e in events]

    async def _publish(self, event: DomainEvent) -> None:
        if self.bus is not None:
            await self.bus.publish(event)


class TaskWatcher:
    """Runs reminders and escalation every `interval_s`; an async context manager."""

    def __init__(
        self, tasks: TaskService, *, interval_s: float = WATCH_INTERVAL_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.tasks = tasks
        self.interval_s = interval_s
        self.clock = clock
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        # Survives a failed pass (a locked database), backs off and says so in health.
        self.state = LoopState("task reminders")

    async def __aenter__(self) -> TaskWatcher:
        self._runner = asyncio.create_task(
            run_resilient(self._step, self.state, logger=log, until=self._stop),
            name="crm-task-watcher",
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._runner is not None:
            await self._runner

    async def tick(self) -> dict[str, Any]:
        now = self.clock()
        return {"reminded": await self.tasks.send_reminders(now),
                "escalated": await self.tasks.escalate_overdue(now)}

    async def _step(self) -> None:
        await self.tick()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
