"""Reminders and escalations reach the person: each `TaskReminderDue` / `TaskEscalated` becomes
an e-mail to the task's assignee, queued in the durable outbox.

The outbox key names the task and the moment it was reminded (or escalated), so a second
event, a restart or the start-up sweep never sends the same reminder twice, while a task that
is reminded again later gets a new mail. The sweep at start catches events published while
this subscriber was not yet listening, or lost in a crash after the task was marked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Final, Literal

from sqlalchemy import or_, select

from contactd.crm.events import TaskEscalated, TaskReminderDue
from contactd.db.base import utcnow
from contactd.db.models import Contact, Task, User
from contactd.db.session import Database
from contactd.enums import Channel
from contactd.events import EventBus
from contactd.messaging.outbox_store import OutboundMessage

log = logging.getLogger(__name__)

SWEEP_LOOKBACK: Final = timedelta(days=1)
Kind = Literal["reminder", "escalation"]
Send = Callable[[OutboundMessage], Awaitable[int]]


def mail_key(kind: Kind, task_id: int, at: datetime) -> str:
    return f"task-{kind}:{task_id}:{at:%Y%m%dT%H%M%S}"


class ReminderMailer:
    def __init__(
        self, db: Database, send: Send, bus: EventBus, *,
        lookback: timedelta = SWEEP_LOOKBACK, clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.send = send
        self.bus = bus
        self.lookback = lookback
        self.clock = clock

    async def __aenter__(self) -> ReminderMailer:
        self.bus.subscribe(TaskReminderDue, self._on_reminder)
        self.bus.subscribe(TaskEscalated, self._on_escalated)
        await self.sweep()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bus.unsubscribe(TaskReminderDue, self._on_reminder)
        self.bus.unsubscribe(TaskEscalated, self._on_escalated)

    async def _on_reminder(self, event: TaskReminderDue) -> None:
        await self._safely(event.task_id, "reminder")

    async def _on_escalated(self, event: TaskEscalated) -> None:
        await self._safely(event.task_id, "escalation")

    async def _safely(self, task_id: int, kind: Kind) -> None:
        try:
            await self.mail(task_id, kind)
        except Exception:  # the task is marked; the sweep at next start queues the mail
            log.exception("task mail not queued", extra={"task_id": task_id, "kind": kind})

    async def mail(self, task_id: int, kind: Kind) -> int | None:
        """Queue the mail for one reminded or escalated task; its outbox id, or None when
        the assignee has no e-mail address (or is inactive, or there is none)."""
        async with self.db.session() as session:
            found = (await session.execute(
                select(Task, User.email, User.display_name, User.active)
                .join(User, User.id == Task.assignee_id).where(Task.id == task_id)
            )).first()
            if found is None:
                log.info("task mail skipped: no assignee", extra={"task_id": task_id})
                return None
            task, address, name, active = found
            at = task.reminded_at if kind == "reminder" else task.escalated_at
            who = ""
            if task.contact_id is not None:
                contact = await session.get(Contact, task.contact_id)
                who = contact.display_name if contact is not None else ""
        if at is None or not address or not active:
            log.info("task mail skipped: no address",
                     extra={"task_id": task_id, "user_id": task.assignee_id})
            return None
        subject = ("Reminder: " if kind == "reminder" else "Escalated to you: ") + task.title
        lines = [f"Hello {name}," if name else "Hello,", "",
                 f"{'This task is due soon' if kind == 'reminder' else 'This task is overdue'}"
                 f" and assigned to you: {task.title}"]
        if task.due_at is not None:
            lines.append(f"Due: {task.due_at:%Y-%m-%d %H:%M} UTC")
        if who:
            lines.append(f"Contact: {who}")
        if task.description:
            lines += ["", task.description[:2000]]
        outbox_id = await self.send(OutboundMessage(
            idempotency_key=mail_key(kind, task.id, at), channel=Channel.EMAIL, to=address,
            subject=subject[:300], body="\n".join(lines) + "\n",
            meta={"task_id": task.id, "kind": kind},
        ))
        log.info("task mail queued", extra={"task_id": task.id, "user_id": task.assignee_id,
                                             "message_id": outbox_id, "kind": kind})
        return outbox_id

    async def sweep(self) -> int:
        since = self.clock() - self.lookback
        async with self.db.session() as session:
            rows = list(await session.execute(
                select(Task.id, Task.reminded_at, Task.escalated_at)
                .where(Task.assignee_id.is_not(None),
                       or_(Task.reminded_at >= since, Task.escalated_at >= since))
                .order_by(Task.id)
            ))
        queued = 0
        for task_id, reminded_at, escalated_at in rows:
            if reminded_at is not None and reminded_at >= since:
                queued += await self.mail(task_id, "reminder") is not None
            if escalated_at is not None and escalated_at >= since:
                queued += await self.mail(task_id, "escalation") is not None
        return queued
