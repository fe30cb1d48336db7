"""Inbound e-mail on PostgreSQL: stored, swept after a crash and routed once, threaded, and a
re-delivery kept out by the unique dedup key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from contactd.crm.documents import DocumentService
from contactd.crm.fts import create_fts
from contactd.crm.mail_records import MailIntake
from contactd.crm.routing import Router
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Base, Interaction, Task
from contactd.db.session import Database
from contactd.messaging.mail_in import MailLimits

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Database]:
    db = Database(postgres_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(create_fts)
    async with db:
        yield db


def _mail(message_id: str, sender: str, reply_to: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "service@contactd.test"
    message["Subject"] = "Invoice"
    message["Message-ID"] = f"<{message_id}>"
    if reply_to:
        message["In-Reply-To"] = f"<{reply_to}>"
    message.set_content("Please resend the invoice.")
    return message.as_bytes()


def _intake(db: Database, folder: Path) -> MailIntake:
    router = Router(db, ContactService(db, default_region="DE"), TaskService(db))
    return MailIntake(db, router, DocumentService(db, folder),
                      MailLimits(max_bytes=100_000, max_depth=8, max_parts=50), folder)


async def test_mail_is_stored_swept_once_and_threaded_on_postgres(
    pg: Database, tmp_path: Path
) -> None:
    first = await _intake(pg, tmp_path).store(_mail("p1@example.de", "anna@example.de"),
                                              "smtp")  # the process dies before routing
    async with _intake(pg, tmp_path) as intake:  # the restart sweeps it
        reply = await intake.receive(_mail("p2@example.de", "office@example.de",
                                           reply_to="p1@example.de"), "imap")
        again = await intake.receive(_mail("p2@example.de", "office@example.de",
                                           reply_to="p1@example.de"), "smtp")
        assert await intake.sweep() == 0
    assert again.status == "duplicate" and again.interaction_id == reply.interaction_id
    async with pg.session() as session:
        rows = list(await session.scalars(select(Interaction).order_by(Interaction.id)))
        tasks = await session.scalar(select(func.count()).select_from(Task))
    assert [r.id for r in rows] == [first.interaction_id, reply.interaction_id]
    assert all(r.data["route"] == "done" for r in rows)
    assert rows[1].contact_id == rows[0].contact_id is not None
    assert rows[1].data["thread_id"] == "p1@example.de" and tasks == 2
