from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from contactd.crm.documents import DocumentService
from contactd.crm.errors import MergeError
from contactd.crm.merge import merge_contacts
from contactd.crm.routing import FollowUp, InboundContact, Router
from contactd.crm.search import ContactSearch
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import NewTask, TaskService
from contactd.crm.timeline import EntryKind, timeline
from contactd.db.models import Campaign, Contact, ContactPhone, Interaction, Lead, Task
from contactd.db.session import Database
from contactd.enums import CampaignMode, Channel, Direction, InteractionKind


def call(contact_id: int, at: datetime, outcome: str = "answered") -> InboundContact:
    return InboundContact(kind=InteractionKind.CALL, direction=Direction.INBOUND,
                          channel=Channel.CALL, contact_id=contact_id, started_at=at,
                          outcome=outcome)


async def test_merge_keeps_every_interaction_task_document_and_lead(
    crm_db: Database, contacts: ContactService, tasks: TaskService, tmp_path: Path
) -> None:
    keep = await contacts.create_contact(ContactInput(
        first_name="Ann", last_name="Lee", phones=["030 1111111"], tags=["vip"]))
    dupe = await contacts.create_contact(ContactInput(
        last_name="Lee", job_title="CTO", phones=["030 1111111", "030 2222222"],
        emails=["ann@example.com"], tags=["vip", "tech"], notes="prefers e-mail"),
        allow_duplicate=True)
    router = Router(crm_db, contacts, tasks)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        await router.record(call(dupe, t0 + timedelta(hours=i)))
    await router.record(call(keep, t0 + timedelta(hours=5)))
    await tasks.create(NewTask(title="send offer", contact_id=dupe))
    docs = DocumentService(crm_db, tmp_path)
    await docs.install_defaults()
    await docs.generate("letter", dupe)
    async with crm_db.transaction() as session:
        campaign = Campaign(name="c1", mode=CampaignMode.PREVIEW)
        session.add(campaign)
        await session.flush()
        session.add(Lead(campaign_id=campaign.id, contact_id=dupe, phone_e164="+49302222222"))

    result = await merge_contacts(crm_db, keep, dupe)
    assert result.moved["interactions"] == 3 and result.moved["tasks"] == 1
    assert result.moved["documents"] == 1 and result.moved["leads"] == 1
    async with crm_db.session() as session:
        counts = dict((await session.execute(
            select(Interaction.contact_id, func.count()).group_by(Interaction.contact_id)
        )).all())
        assert counts == {keep: 4}
        assert set(await session.scalars(select(Task.contact_id))) == {keep}
        survivor = await session.get(Contact, keep)
        loser = await session.get(Contact, dupe)
        assert survivor is not None and loser is not None
        assert loser.merged_into_id == keep
        assert (survivor.first_name, survivor.job_title, survivor.notes) == (
            "Ann", "CTO", "prefers e-mail")
        numbers = list(await session.scalars(
            select(ContactPhone.e164).where(ContactPhone.contact_id == keep)
            .order_by(ContactPhone.e164)))
        assert numbers == ["+49301111111", "+49302222222"]
    match = await contacts.lookup_email("ann@example.com")
    assert match is not None and match.contact_id == keep
    hits = (await ContactSearch(crm_db).search("lee")).hits
    assert [h.contact_id for h in hits] == [keep]
    entries = await timeline(crm_db, keep)
    assert sum(e.kind is EntryKind.INTERACTION for e in entries) == 4
    with pytest.raises(MergeError):
        await merge_contacts(crm_db, keep, dupe)
    with pytest.raises(MergeError):
        await merge_contacts(crm_db, keep, keep)


async def test_timeline_is_in_time_order_across_sources(
    crm_db: Database, contacts: ContactService, tasks: TaskService, tmp_path: Path
) -> None:
    cid = await contacts.create_contact(ContactInput(last_name="Time", phones=["030 9999999"]))
    router = Router(crm_db, contacts, tasks)
    t0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
    await router.record(call(cid, t0, outcome="missed"))  # creates a missed-call task
    await router.record(InboundContact(
        kind=InteractionKind.SMS, direction=Direction.OUTBOUND, channel=Channel.SMS,
        contact_id=cid, body="Your appointment", started_at=t0 + timedelta(minutes=5)))
    await router.record_decision(cid, Channel.SMS, "outside_calling_window")
    docs = DocumentService(crm_db, tmp_path)
    await docs.install_defaults()
    await docs.generate("letter", cid, extra={"subject": "Welcome"})
    entries = await timeline(crm_db, cid, newest_first=False)
    kinds = [e.kind for e in entries]
    assert kinds[:2] == [EntryKind.INTERACTION, EntryKind.INTERACTION]
    assert set(kinds) == set(EntryKind)
    stamps = [e.at for e in entries]
    assert stamps == sorted(stamps)
    assert entries[0].detail["outcome"] == "missed"
    newest = await timeline(crm_db, cid, limit=2)
    assert [e.at for e in newest] == sorted(stamps, reverse=True)[:2]


async def test_ivr_session_is_stored_first_then_completed(
    crm_db: Database, contacts: ContactService, tasks: TaskService
) -> None:
    router = Router(crm_db, contacts, tasks)
    started = await router.start(InboundContact(
        kind=InteractionKind.IVR_SESSION, direction=Direction.INBOUND, channel=Channel.CALL,
        remote_address="+49 30 7777777"))
    assert started.created_contact and started.contact_id is not None
    await router.update(started.interaction_id, transcript="my invoice is wrong",
                        data={"menu": "billing"})
    # A hang-up here would still leave the row with what was said.
    async with crm_db.session() as session:
        row = await session.get(Interaction, started.interaction_id)
        assert row is not None and row.transcript == "my invoice is wrong"
    done = await router.finish(started.interaction_id,
                               FollowUp(outcome="completed", wants_agent=True, team="billing"))
    assert len(done.task_ids) == 1
    async with crm_db.session() as session:
        task = await session.get(Task, done.task_ids[0])
        assert task is not None and task.team == "billing"
        assert task.description == "my invoice is wrong"
    again = await router.record(InboundContact(
        kind=InteractionKind.CALL, direction=Direction.INBOUND, channel=Channel.CALL,
        remote_address="0307777777", outcome="answered"))
    assert again.contact_id == started.contact_id and not again.created_contact


async def test_period_report_counts_by_day_channel_and_outcome(
    crm_db: Database, contacts: ContactService, tasks: TaskService
) -> None:
    from contactd.crm.reports import period_report

    cid = await contacts.create_contact(ContactInput(last_name="Rep"))
    router = Router(crm_db, contacts, tasks)
    t0 = datetime(2026, 2, 1, 23, 30, tzinfo=UTC)
    for i, outcome in enumerate(["answered", "missed", "answered"]):
        await router.record(call(cid, t0 + timedelta(hours=i), outcome=outcome))
    await router.record(call(cid, t0 + timedelta(days=40)))  # outside the window
    report = await period_report(crm_db, t0, t0 + timedelta(days=30))
    assert report.total == 3
    assert report.by_outcome == {"answered": 2, "missed": 1}
    assert report.by_channel == {"call": 3}
    assert list(report.by_day.values()) == [1, 2]  # 23:30 on the 1st, then the 2nd
