"""Inbound SMS become work: the sender's contact (a new lead when unknown) and a reply task,
exactly once, also when the process died between storing and routing."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from contactd.crm.message_records import InboundMessageRecorder
from contactd.crm.routing import NEW_LEAD_TAG, Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Contact, Interaction, Task
from contactd.db.session import Database
from contactd.events import EventBus
from contactd.messaging.inbound import InboundSms
from contactd.messaging.smpp import DeliverSm


def _router(db: Database, contacts: ContactService, bus: EventBus | None) -> Router:
    return Router(db, contacts, TaskService(db, bus=bus), bus=bus)


def _recorder(db: Database, contacts: ContactService, bus: EventBus) -> InboundMessageRecorder:
    return InboundMessageRecorder(db, _router(db, contacts, bus), bus)


async def _tasks(db: Database) -> list[Task]:
    async with db.session() as session:
        return list(await session.scalars(select(Task).order_by(Task.id)))


async def test_an_sms_from_an_unknown_number_becomes_a_lead_and_a_task(
    crm_db: Database, contacts: ContactService
) -> None:
    bus = EventBus()
    async with _recorder(crm_db, contacts, bus):
        inbound = InboundSms(crm_db, _router(crm_db, contacts, bus), bus, default_region="MW")
        interaction_id = await inbound.handle(
            DeliverSm("0888123456", "5555", "Ndimafuna mtengo wa inshuwaransi", source_ton=2))
    async with crm_db.session() as session:
        row = await session.get(Interaction, interaction_id)
        assert row is not None and row.contact_id is not None
        assert row.data["route"] == "done" and row.ended_at is not None
        lead = await session.scalar(select(Contact).where(Contact.id == row.contact_id)
                                    .options(selectinload(Contact.tags),
                                             selectinload(Contact.phones)))
        assert lead is not None
        assert [p.e164 for p in lead.phones] == ["+265888123456"]
        assert [t.name for t in lead.tags] == [NEW_LEAD_TAG]
    [task] = await _tasks(crm_db)
    assert task.contact_id == row.contact_id and task.interaction_id == interaction_id
    assert task.title == "Reply to sms from +265888123456"


async def test_a_known_sender_keeps_their_contact_and_stop_makes_no_task(
    crm_db: Database, contacts: ContactService
) -> None:
    known = await contacts.create_contact(ContactInput(first_name="Tionge", last_name="Phiri",
                                                       phones=["+265 999 111 222"]))
    bus = EventBus()
    async with _recorder(crm_db, contacts, bus):
        inbound = InboundSms(crm_db, _router(crm_db, contacts, bus), bus, default_region="MW")
        await inbound.handle(DeliverSm("265999111222", "5555", "Zikomo", source_ton=1))
        await inbound.handle(DeliverSm("265999111222", "5555", "STOP", source_ton=1))
    tasks = await _tasks(crm_db)
    assert [(t.contact_id, t.title) for t in tasks] == [(known, "Reply to sms from Tionge Phiri")]
    async with crm_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 1


async def test_messages_stored_before_a_crash_are_routed_once_at_start(
    crm_db: Database, contacts: ContactService
) -> None:
    # Stored with nobody listening: the process died before the router saw them.
    inbound = InboundSms(crm_db, _router(crm_db, contacts, None), None, default_region="MW")
    first = await inbound.handle(DeliverSm("+265888000111", "5555", "Moni", source_ton=1))
    await inbound.handle(DeliverSm("+265888000222", "5555", "Moni", source_ton=1))
    async with crm_db.session() as session:
        # The sender is found (here: made a new lead) once, by the router, as it is stored.
        stored = (await session.scalars(select(Interaction).order_by(Interaction.id))).all()
        assert all(row.contact_id is not None for row in stored) and len(stored) == 2
    async with _recorder(crm_db, contacts, EventBus()) as recorder:
        assert await recorder.route(first) is False  # the start already routed it
    assert len(await _tasks(crm_db)) == 2
    async with _recorder(crm_db, contacts, EventBus()):  # a second restart adds nothing
        pass
    assert len(await _tasks(crm_db)) == 2


async def test_messages_arriving_together_are_routed_together_each_exactly_once(
    crm_db: Database, contacts: ContactService
) -> None:
    known = [await contacts.create_contact(ContactInput(
        first_name=f"Known{i}", phones=[f"+265 999 111 {i:03d}"])) for i in range(20)]
    bus = EventBus()
    recorder = _recorder(crm_db, contacts, bus)
    async with recorder:
        inbound = InboundSms(crm_db, _router(crm_db, contacts, bus), bus, default_region="MW")
        senders = [f"265999111{i:03d}" for i in range(20)] + ["265888777666"]  # one unknown
        ids = await asyncio.gather(*(inbound.handle(DeliverSm(s, "5555", "Moni", source_ton=1))
                                     for s in senders))
        batcher = recorder._batcher
        assert batcher is not None and batcher.batches < len(senders)  # not one per message
        assert await recorder.route(ids[0]) is False  # routed already
    tasks = await _tasks(crm_db)
    assert sorted(t.interaction_id for t in tasks) == sorted(ids)
    by_interaction = {t.interaction_id: t for t in tasks}
    assert [by_interaction[i].contact_id for i in ids[:20]] == known
    assert by_interaction[ids[0]].title == "Reply to sms from Known0"
    async with crm_db.session() as session:
        rows = list(await session.scalars(select(Interaction).where(Interaction.id.in_(ids))))
        assert {r.data["route"] for r in rows} == {"done"}
        assert await session.scalar(select(func.count()).select_from(Contact)) == 21


async def test_texts_arriving_together_from_one_unknown_number_make_one_lead(
    crm_db: Database, contacts: ContactService
) -> None:
    """Routed together (one batch) or not, one lead per new address, never one per text."""
    bus = EventBus()
    async with _recorder(crm_db, contacts, bus):
        inbound = InboundSms(crm_db, _router(crm_db, contacts, bus), bus, default_region="MW")
        ids = await asyncio.gather(*(
            inbound.handle(DeliverSm(number, "5555", f"text {i}", source_ton=2))
            for i, number in enumerate(["0888123456", "0888123456", "0999765432"])
        ))
    async with crm_db.session() as session:
        rows = [await session.get(Interaction, i) for i in ids]
        owners = [r.contact_id for r in rows if r is not None]
        leads = await session.scalar(select(func.count()).select_from(Contact))
    assert len(owners) == 3 and None not in owners
    assert owners[0] == owners[1] != owners[2]
    assert leads == 2
    assert len(await _tasks(crm_db)) == 3
