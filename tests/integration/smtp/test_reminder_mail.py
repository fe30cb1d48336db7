"""Reminders and escalations reach the person by e-mail (aiosmtpd as the SMTP server): one mail
per reminder to the assignee's address, none again after a restart, and the escalated task's
new assignee is told too."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from contactd.config import Settings, load_settings
from contactd.crm.fts import create_fts
from contactd.crm.reminder_mail import ReminderMailer
from contactd.crm.tasks import NewTask, TaskService
from contactd.daemon import Components, run_daemon
from contactd.db.base import utcnow
from contactd.db.bootstrap import open_database
from contactd.db.models import OutboxMessage, User
from contactd.db.session import Database
from contactd.enums import Role
from contactd.events import EventBus
from contactd.messaging.events import MessageSent
from contactd.messaging.service import MessagingService
from tests.peers.smtp import SmtpPeer

pytestmark = pytest.mark.smtp


async def _user(db: Database, name: str, role: Role, email: str | None) -> int:
    async with db.transaction() as session:
        user = User(username=name, display_name=name.title(), email=email, password_hash="x",
                    role=role)
        session.add(user)
        await session.flush()
        return user.id


async def _outbox(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def test_a_reminder_is_mailed_to_the_assignee_once_across_a_restart(
    settings: Settings, db: Database, smtp: SmtpPeer
) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    agent = await _user(db, "chisomo", Role.AGENT, "chisomo@contactd.test")
    bus = EventBus()
    tasks = TaskService(db, bus=bus)
    now = utcnow()
    task_id = await tasks.create(NewTask(title="Call back Grace", assignee_id=agent,
                                         due_at=now + timedelta(minutes=10),
                                         remind_at=now - timedelta(minutes=1)))
    configured = settings.model_copy(update={"email": smtp.settings()})
    sent = asyncio.Event()
    bus.subscribe(MessageSent, lambda _: sent.set())
    async with (MessagingService(configured, db, bus) as messaging,
                ReminderMailer(db, messaging.send, bus)):
        assert await tasks.send_reminders(now) == [task_id]
        [received] = await smtp.wait_for(1)
        # Stopped only once the outbox has recorded the send (before that, a restart would
        # send again: the outbox is at-least-once for a send whose answer it did not store).
        await asyncio.wait_for(sent.wait(), 10)
    message = received.parsed()
    assert received.rcpt_tos == ["chisomo@contactd.test"]
    assert message["Subject"] == "Reminder: Call back Grace"
    body = message.get_body()
    assert body is not None and "Hello Chisomo," in body.get_content()
    # A restart: the start-up sweep sees the reminded task, and the outbox key holds it once.
    async with (MessagingService(configured, db, bus) as messaging,
                ReminderMailer(db, messaging.send, bus) as again):
        assert await again.sweep() == 1  # queued means "found its one row"
    assert await _outbox(db) == 1 and len(smtp.messages) == 1


async def test_an_escalation_is_mailed_to_the_supervisor_and_no_address_means_no_mail(
    settings: Settings, db: Database, smtp: SmtpPeer
) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    agent = await _user(db, "kofi", Role.AGENT, None)  # no address: nothing to send
    await _user(db, "abena", Role.SUPERVISOR, "abena@contactd.test")
    bus = EventBus()
    tasks = TaskService(db, bus=bus)
    now = utcnow()
    await tasks.create(NewTask(title="Reply to Ama", assignee_id=agent,
                               due_at=now - timedelta(hours=1),
                               remind_at=now - timedelta(hours=2)))
    configured = settings.model_copy(update={"email": smtp.settings()})
    async with (MessagingService(configured, db, bus) as messaging,
                ReminderMailer(db, messaging.send, bus)):
        assert len(await tasks.send_reminders(now)) == 1
        assert await _outbox(db) == 0
        assert len(await tasks.escalate_overdue(now)) == 1
        [received] = await smtp.wait_for(1)
    assert received.rcpt_tos == ["abena@contactd.test"]
    assert received.parsed()["Subject"] == "Escalated to you: Reply to Ama"


async def test_the_daemon_mails_a_reminder_that_fell_due_while_it_was_down(
    tmp_path: Path, smtp: SmtpPeer
) -> None:
    settings = load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_AMI__ENABLED": "false",
        "CONTACTD_WEB__ENABLED": "false",
        "CONTACTD_AUDIOSOCKET__ENABLED": "false",
        "CONTACTD_EMAIL__ENABLED": "true",
        "CONTACTD_EMAIL__HOST": smtp.host,
        "CONTACTD_EMAIL__PORT": str(smtp.port),
        "CONTACTD_EMAIL__FROM_ADDRESS": "contactd@contactd.test",
    })
    async with await open_database(settings) as db:
        agent = await _user(db, "thandiwe", Role.AGENT, "thandiwe@contactd.test")
        now = utcnow()
        await TaskService(db).create(NewTask(title="Send the contract", assignee_id=agent,
                                             due_at=now + timedelta(hours=1),
                                             remind_at=now - timedelta(minutes=5)))
    stop = asyncio.Event()

    async def ready(components: Components) -> None:
        try:
            await smtp.wait_for(1, timeout_s=20)
        finally:
            stop.set()

    await asyncio.wait_for(run_daemon(settings, stop=stop, on_ready=ready), 60)
    [received] = smtp.messages
    assert received.rcpt_tos == ["thandiwe@contactd.test"]
    assert received.parsed()["Subject"] == "Reminder: Send the contract"
