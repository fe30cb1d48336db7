"""Polling a real IMAP mailbox (dovecot): the daemon takes unseen mail in from configuration
alone, threads a reply onto the first mail's contact, stores attachments, and marks each mail
\\Seen only once stored; a failure before that leaves it unseen, and the next pass takes it
without doubling it. Oversized mail is refused with a bounded copy and not fetched again."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from contactd.config import EmailInboundSettings, Settings, load_settings
from contactd.crm.documents import DocumentService
from contactd.crm.mail_records import MailIntake
from contactd.crm.routing import Router
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.daemon import Components, run_daemon
from contactd.db.models import Document, Interaction, Task
from contactd.db.session import Database
from contactd.messaging.errors import ImapError
from contactd.messaging.imap_poll import ImapPoller
from contactd.messaging.mail_in import Intake, MailLimits
from tests.peers.dovecot import DovecotServer

pytestmark = pytest.mark.dovecot


def _mail(sender: str, message_id: str, *, reply_to: str | None = None,
          attach: bytes | None = None, text: str = "Hello") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "service@contactd.test"
    message["Subject"] = "Delivery date"
    message["Message-ID"] = f"<{message_id}>"
    if reply_to:
        message["In-Reply-To"] = f"<{reply_to}>"
    message.set_content(text)
    if attach is not None:
        message.add_attachment(attach, maintype="image", subtype="jpeg", filename="door.jpg")
    return message.as_bytes()


def _env(dovecot: DovecotServer, tmp_path: Path) -> dict[str, str]:
    return {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_AMI__ENABLED": "false",
        "CONTACTD_WEB__ENABLED": "false",
        "CONTACTD_AUDIOSOCKET__ENABLED": "false",
        "CONTACTD_EMAIL_INBOUND__IMAP_ENABLED": "true",
        "CONTACTD_EMAIL_INBOUND__IMAP_HOST": dovecot.host,
        "CONTACTD_EMAIL_INBOUND__IMAP_PORT": str(dovecot.port),
        "CONTACTD_EMAIL_INBOUND__IMAP_SECURITY": "none",
        "CONTACTD_EMAIL_INBOUND__IMAP_USERNAME": dovecot.user,
        "CONTACTD_EMAIL_INBOUND__IMAP_PASSWORD": dovecot.password,
        "CONTACTD_EMAIL_INBOUND__IMAP_POLL_S": "30",
        "CONTACTD_EMAIL_INBOUND__MAX_BYTES": "20000",
    }


async def test_the_daemon_polls_the_mailbox_threads_a_reply_and_marks_mail_seen(
    dovecot: DovecotServer, tmp_path: Path
) -> None:
    await asyncio.to_thread(dovecot.append, _mail("Ama <ama@example.gh>", "m1@example.gh",
                                                  attach=b"\xff\xd8jpeg"))
    await asyncio.to_thread(dovecot.append, _mail("frontdesk@example.gh", "m2@example.gh",
                                                  reply_to="m1@example.gh"))
    settings: Settings = load_settings(None, _env(dovecot, tmp_path))
    stop = asyncio.Event()
    seen: dict[str, Any] = {}

    async def ready(components: Components) -> None:
        try:
            assert components.mail_inbound is not None
            poller = components.mail_inbound.imap
            assert poller is not None
            await asyncio.wait_for(poller.wait_polls(1), 30)
            async with components.db.session() as session:
                seen["rows"] = list(await session.scalars(select(Interaction)
                                                          .order_by(Interaction.id)))
                seen["docs"] = list(await session.scalars(select(Document)))
                seen["tasks"] = await session.scalar(select(func.count()).select_from(Task))
        finally:
            stop.set()

    await asyncio.wait_for(run_daemon(settings, stop=stop, on_ready=ready), 60)
    first, second = seen["rows"]
    assert first.remote_address == "ama@example.gh" and first.contact_id is not None
    assert second.contact_id == first.contact_id  # the thread, not the new sender
    assert second.data["thread_id"] == first.data["thread_id"] == "m1@example.gh"
    [doc] = seen["docs"]
    assert doc.contact_id == first.contact_id and doc.title == "door.jpg"
    assert (tmp_path / doc.storage_path).read_bytes() == b"\xff\xd8jpeg"
    assert seen["tasks"] == 2
    flags = await asyncio.to_thread(dovecot.flags)
    assert len(flags) == 2 and all("\\Seen" in f for f in flags)


def _intake(db: Database, data_dir: Path) -> MailIntake:
    tasks = TaskService(db)
    router = Router(db, ContactService(db, default_region="GH"), tasks)
    return MailIntake(db, router, DocumentService(db, data_dir),
                      MailLimits(max_bytes=20000, max_depth=8, max_parts=50), data_dir)


async def test_a_failure_before_marking_seen_leaves_the_mail_to_the_next_pass_once(
    dovecot: DovecotServer, db: Database, tmp_path: Path
) -> None:
    await asyncio.to_thread(dovecot.append, _mail("ama@example.gh", "crash@example.gh"))
    conf = EmailInboundSettings.model_validate({
        k.removeprefix("CONTACTD_EMAIL_INBOUND__").lower(): v
        for k, v in _env(dovecot, tmp_path).items() if k.startswith("CONTACTD_EMAIL_INBOUND__")
    })
    intake = _intake(db, tmp_path)

    def dies_after_storing(raw: bytes, source: str) -> Coroutine[Any, Any, Intake]:
        async def run() -> Intake:
            await intake.store(raw, source)
            raise RuntimeError("process died before \\Seen")
        return run()

    with pytest.raises(RuntimeError):
        await ImapPoller(conf, dies_after_storing).poll_once()
    assert all("\\Seen" not in f for f in await asyncio.to_thread(dovecot.flags))

    async with intake:  # the restart: its sweep routes what was stored
        assert await ImapPoller(conf, intake.receive).poll_once() == 1
    async with db.session() as session:
        [row] = list(await session.scalars(select(Interaction)))
        tasks = await session.scalar(select(func.count()).select_from(Task))
    assert row.data["route"] == "done" and tasks == 1
    [flags] = await asyncio.to_thread(dovecot.flags)
    assert "\\Seen" in flags


async def test_oversized_mail_is_refused_with_a_bounded_copy_and_marked_seen(
    dovecot: DovecotServer, db: Database, tmp_path: Path
) -> None:
    await asyncio.to_thread(dovecot.append, _mail("ama@example.gh", "big@example.gh",
                                                  text="y" * 60000))
    conf = EmailInboundSettings(imap_enabled=True, imap_host=dovecot.host,
                                imap_port=dovecot.port, imap_security="none",
                                imap_username=dovecot.user, imap_password=dovecot.password,
                                max_bytes=20000)
    results: list[Intake] = []
    intake = _intake(db, tmp_path)

    async def receive(raw: bytes, source: str) -> Intake:
        results.append(await intake.receive(raw, source))
        return results[-1]

    assert await ImapPoller(conf, receive).poll_once() == 1
    [refused] = results
    assert refused.status == "refused" and refused.code == "mail_too_large"
    assert refused.kept_at is not None and refused.kept_at.stat().st_size == 20001
    assert await ImapPoller(conf, receive).poll_once() == 0  # seen: not fetched again


async def test_a_wrong_password_is_an_imap_error(dovecot: DovecotServer, tmp_path: Path) -> None:
    conf = EmailInboundSettings(imap_enabled=True, imap_host=dovecot.host,
                                imap_port=dovecot.port, imap_security="none",
                                imap_username=dovecot.user, imap_password="wrong")

    async def never(raw: bytes, source: str) -> Intake:
        raise AssertionError("nothing to receive")

    with pytest.raises(ImapError) as caught:
        await ImapPoller(conf, never).poll_once()
    assert caught.value.code == "imap_failed" and "login" in caught.value.message
