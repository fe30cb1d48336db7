"""Inbound e-mail becomes work: the sender's contact (a new lead when unknown), threaded onto
what it answers, attachments as documents, one reply task; exactly once across a crash
between storing and routing; hostile mail refused with its raw copy kept."""

from __future__ import annotations

import asyncio
import stat
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from contactd.crm.documents import DocumentService
from contactd.crm.mail_records import MailIntake
from contactd.crm.routing import NEW_LEAD_TAG, Router
from contactd.crm.search import ContactSearch, Filters
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Contact, Document, Interaction, OutboxMessage, Task
from contactd.db.session import Database
from contactd.enums import Channel, DocumentKind, MessageState
from contactd.events import EventBus
from contactd.messaging.mail_in import MailLimits

LIMITS = MailLimits(max_bytes=256 * 1024, max_depth=8, max_parts=50)


def _intake(db: Database, contacts: ContactService, data_dir: Path) -> MailIntake:
    bus = EventBus()
    router = Router(db, contacts, TaskService(db, bus=bus), bus=bus)
    return MailIntake(db, router, DocumentService(db, data_dir), LIMITS, data_dir)


def mail(
    sender: str,
    text: str,
    *,
    message_id: str,
    in_reply_to: str | None = None,
    attach: bytes | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "service@contactd.test"
    message["Subject"] = "Re: your offer" if in_reply_to else "A question"
    message["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
        message["References"] = f"<{in_reply_to}>"
    message.set_content(text)
    if attach is not None:
        message.add_attachment(attach, maintype="application", subtype="pdf", filename="quote.pdf")
    return message.as_bytes()


async def _count(db: Database, model: type[Task] | type[Interaction]) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_unknown_sender_becomes_a_lead_with_a_task_and_the_attachment_a_document(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    async with _intake(crm_db, contacts, tmp_path) as intake:
        got = await intake.receive(
            mail(
                "Grace <grace@example.mw>",
                "Please call me",
                message_id="q1@example.mw",
                attach=b"%PDF-1 quote",
            ),
            "smtp",
        )
    assert got.status == "stored" and got.interaction_id is not None
    async with crm_db.session() as session:
        row = await session.get(Interaction, got.interaction_id)
        assert row is not None and row.contact_id is not None
        assert row.data["route"] == "done" and row.data["thread_id"] == "q1@example.mw"
        assert row.body.strip() == "Please call me" and row.remote_address == "grace@example.mw"
        lead = await session.scalar(
            select(Contact).where(Contact.id == row.contact_id).options(selectinload(Contact.tags))
        )
        assert lead is not None and [t.name for t in lead.tags] == [NEW_LEAD_TAG]
        [doc] = list(await session.scalars(select(Document)))
        [task] = list(await session.scalars(select(Task)))
    assert doc.kind is DocumentKind.ATTACHMENT and doc.contact_id == row.contact_id
    assert doc.title == "quote.pdf" and doc.mime_type == "application/pdf"
    stored = tmp_path / doc.storage_path
    assert stored.read_bytes() == b"%PDF-1 quote"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert task.interaction_id == row.id and task.contact_id == row.contact_id
    assert task.title == "Reply to email from grace@example.mw"


async def test_a_reply_threads_onto_the_mail_contactd_sent_and_the_next_onto_that_thread(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    owner = await contacts.create_contact(
        ContactInput(first_name="Tionge", last_name="Phiri", emails=["tionge@example.mw"])
    )
    async with crm_db.transaction() as session:
        session.add(
            OutboxMessage(
                idempotency_key="offer-1",
                channel=Channel.EMAIL,
                state=MessageState.SENT,
                contact_id=owner,
                to_address="tionge@example.mw",
                provider_id="offer1@contactd.test",
            )
        )
    async with _intake(crm_db, contacts, tmp_path) as intake:
        # A colleague answers from another address: the thread, not the sender, decides.
        first = await intake.receive(
            mail(
                "desk@office.example.mw",
                "Yes please",
                message_id="r1@office.example.mw",
                in_reply_to="offer1@contactd.test",
            ),
            "imap",
        )
        second = await intake.receive(
            mail(
                "desk@office.example.mw",
                "And one more thing",
                message_id="r2@office.example.mw",
                in_reply_to="r1@office.example.mw",
            ),
            "imap",
        )
    async with crm_db.session() as session:
        rows = [
            await session.get(Interaction, i.interaction_id)
            for i in (first, second)
            if i.interaction_id is not None
        ]
    assert [(r.contact_id, r.data["thread_id"]) for r in rows if r is not None] == [
        (owner, "offer1@contactd.test"),
        (owner, "offer1@contactd.test"),
    ]
    assert await _count(crm_db, Task) == 2


async def test_a_redelivered_mail_is_stored_once(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    raw = mail("grace@example.mw", "Hello", message_id="same@example.mw")
    async with _intake(crm_db, contacts, tmp_path) as intake:
        first = await intake.receive(raw, "imap")
        again = await intake.receive(b"Received: from elsewhere\r\n" + raw, "smtp")
    assert (first.status, again.status) == ("stored", "duplicate")
    assert again.interaction_id == first.interaction_id
    assert await _count(crm_db, Interaction) == 1 and await _count(crm_db, Task) == 1


async def test_a_crash_between_storing_and_routing_routes_exactly_once_at_restart(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    before = _intake(crm_db, contacts, tmp_path)
    stored = await before.store(
        mail("grace@example.mw", "Hello", message_id="c1@example.mw", attach=b"PDF"), "smtp"
    )  # the process dies here
    assert stored.interaction_id is not None and await _count(crm_db, Task) == 0
    async with _intake(crm_db, contacts, tmp_path) as after:  # the sweep at start
        assert not await after.route(stored.interaction_id)
    async with _intake(crm_db, contacts, tmp_path) as again:
        assert await again.sweep() == 0
    async with crm_db.session() as session:
        row = await session.get(Interaction, stored.interaction_id)
        [doc] = list(await session.scalars(select(Document)))
    assert row is not None and row.data["route"] == "done" and row.contact_id is not None
    assert doc.contact_id == row.contact_id
    assert await _count(crm_db, Task) == 1


async def test_hostile_mail_is_refused_and_kept_owner_only(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    raw = b"Subject: no sender here\r\n\r\nbody\r\n"
    async with _intake(crm_db, contacts, tmp_path) as intake:
        got = await intake.receive(raw, "smtp")
    assert got.status == "refused" and got.code == "mail_no_sender"
    assert got.kept_at is not None and got.kept_at.read_bytes() == raw
    assert got.kept_at.is_relative_to(tmp_path / "mail" / "refused")
    assert stat.S_IMODE(got.kept_at.stat().st_mode) == 0o600
    assert await _count(crm_db, Interaction) == 0


async def test_a_known_sender_keeps_their_contact(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    known = await contacts.create_contact(
        ContactInput(first_name="Grace", last_name="Mbewe", emails=["Grace@Example.mw"])
    )
    async with _intake(crm_db, contacts, tmp_path) as intake:
        got = await intake.receive(mail("grace@example.mw", "Hi", message_id="k@x.mw"), "smtp")
    async with crm_db.session() as session:
        row = await session.get(Interaction, got.interaction_id)
    assert row is not None and row.contact_id == known
    assert await _count(crm_db, Task) == 1


async def test_a_mail_in_an_unknown_charset_is_stored_with_its_defect_logged(
    crm_db: Database,
    contacts: ContactService,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = (
        b"From: kwame@example.gh\r\nSubject: hi\r\nMessage-ID: <cs@example.gh>\r\n"
        b"Content-Type: text/plain; charset=x-unknown-8\r\n\r\nAkwaaba \xe9\r\n"
    )
    async with _intake(crm_db, contacts, tmp_path) as intake:
        got = await intake.receive(raw, "smtp")
    async with crm_db.session() as session:
        row = await session.get(Interaction, got.interaction_id)
    assert row is not None and row.body.startswith("Akwaaba \ufffd")
    assert row.data["defects"] == ["unknown charset 'x-unknown-8'"]
    [record] = [r for r in caplog.records if r.getMessage() == "inbound mail had defects"]
    assert record.__dict__["defects"] == ["unknown charset 'x-unknown-8'"]


async def test_a_mail_past_the_inline_parse_size_is_stored_whole(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    payload = bytes(range(256)) * 400  # 100 KiB: past the inline-parse size
    async with _intake(crm_db, contacts, tmp_path) as intake:
        got = await intake.receive(
            mail("kojo@example.gh", "Scans attached", message_id="big@example.gh", attach=payload),
            "imap",
        )
    assert got.status == "stored"
    async with crm_db.session() as session:
        [doc] = list(await session.scalars(select(Document)))
    assert doc.size_bytes == len(payload) and (tmp_path / doc.storage_path).read_bytes() == payload


async def test_mails_arriving_together_are_stored_and_routed_together_each_once(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    """Concurrent deliveries share a store transaction and a routing batch: two unknown
    senders become one lead each, a reply in the same group threads onto its mail, and the
    same mail delivered twice at once is stored once (the other answer says duplicate)."""
    first = mail("Ama <ama@example.gh>", "One", message_id="t1@example.gh")
    raws = [
        first,
        b"Received: from relay2\r\n" + first,
        mail("ama@example.gh", "Two", message_id="t2@example.gh", in_reply_to="t1@example.gh"),
        mail("kofi@example.gh", "Three", message_id="t3@example.gh", attach=b"%PDF-1 k"),
        mail("kofi@example.gh", "Four", message_id="t4@example.gh"),
    ]
    async with _intake(crm_db, contacts, tmp_path) as intake:
        got = await asyncio.gather(*(intake.receive(raw, "smtp") for raw in raws))
        batches = intake.batches
    assert sorted(g.status for g in got) == ["duplicate"] + ["stored"] * 4
    assert got[0].interaction_id == got[1].interaction_id
    assert batches < 4  # routed together, not one batch per mail
    async with crm_db.session() as session:
        rows = {r.id: r for r in await session.scalars(select(Interaction))}
        leads = list(await session.scalars(select(Contact).options(selectinload(Contact.tags))))
        [doc] = list(await session.scalars(select(Document)))
    assert len(rows) == 4 and all(r.data["route"] == "done" for r in rows.values())
    assert len(leads) == 2
    assert all([t.name for t in c.tags] == [NEW_LEAD_TAG] for c in leads)
    by_sender: dict[str, set[int | None]] = {}
    for row in rows.values():
        by_sender.setdefault(row.remote_address or "", set()).add(row.contact_id)
    assert {k: len(v) for k, v in by_sender.items()} == {"ama@example.gh": 1, "kofi@example.gh": 1}
    assert by_sender["ama@example.gh"] != by_sender["kofi@example.gh"]
    reply = next(r for r in rows.values() if r.data["message_id"] == "t2@example.gh")
    assert reply.data["thread_id"] == "t1@example.gh"
    assert doc.contact_id in by_sender["kofi@example.gh"]
    assert await _count(crm_db, Task) == 4
    # The leads the batch made are found by their address, as one made one by one is.
    hits = (await ContactSearch(crm_db).search(Filters(query="kofi@example.gh"))).hits
    assert [h.contact_id for h in hits] == list(by_sender["kofi@example.gh"])
