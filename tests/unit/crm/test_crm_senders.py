"""A sender matching several contacts is linked to the best match (most recent interaction,
else the oldest record) and flagged for review, never split silently."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from contactd.crm.message_records import InboundMessageRecorder
from contactd.crm.routing import InboundContact, Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.base import utcnow
from contactd.db.models import Interaction, PossibleDuplicate, Task
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind, Role, TaskSource
from contactd.events import EventBus
from contactd.messaging.inbound import InboundSms
from contactd.messaging.smpp import DeliverSm
from tests.unit.crm.conftest import AddUser

NUMBER = "+4930123456"


def sms(text: str, sender: str = NUMBER) -> InboundContact:
    return InboundContact(kind=InteractionKind.SMS, direction=Direction.INBOUND,
                          channel=Channel.SMS, remote_address=sender, body=text)


async def _shared(contacts: ContactService) -> tuple[int, int]:
    first = await contacts.create_contact(ContactInput(first_name="Jo", last_name="Lee",
                                                       phones=[NUMBER]))
    second = await contacts.create_contact(ContactInput(first_name="Sam", last_name="Ortiz",
                                                        phones=[NUMBER]), allow_duplicate=True)
    return first, second


async def test_the_contact_with_the_latest_interaction_wins_and_a_supervisor_reviews(
    crm_db: Database, contacts: ContactService, add_user: AddUser
) -> None:
    await add_user("agent")
    boss = await add_user("boss", role=Role.SUPERVISOR)
    first, second = await _shared(contacts)
    async with crm_db.transaction() as session:  # the second was in touch last week
        session.add(Interaction(contact_id=second, kind=InteractionKind.NOTE,
                                direction=Direction.INTERNAL, channel=Channel.NONE,
                                started_at=utcnow() - timedelta(days=7)))
        session.add(Interaction(contact_id=first, kind=InteractionKind.NOTE,
                                direction=Direction.INTERNAL, channel=Channel.NONE,
                                started_at=utcnow() - timedelta(days=30)))
    router = Router(crm_db, contacts, TaskService(crm_db), bus=EventBus())
    routed = await router.record(sms("Is my order ready?"))
    assert routed.contact_id == second
    async with crm_db.session() as session:
        row = await session.get(Interaction, routed.interaction_id)
        assert row is not None
        assert row.data["review"] == {"reason": "ambiguous_sender", "address": NUMBER,
                                      "candidates": [second, first]}
        [pair] = list(await session.scalars(select(PossibleDuplicate)))
        tasks = {t.source: t for t in await session.scalars(select(Task))}
    assert (pair.contact_id, pair.other_id, pair.reason) == (first, second, "ambiguous_sender")
    review = tasks[TaskSource.REVIEW]
    assert review.assignee_id == boss and review.interaction_id == routed.interaction_id
    assert review.title == f"Review: {NUMBER} matches 2 contacts"
    assert tasks[TaskSource.MESSAGE].contact_id == second  # the reply is not held back


async def test_without_history_the_oldest_record_wins_and_pairs_are_listed_once(
    crm_db: Database, contacts: ContactService
) -> None:
    first, _ = await _shared(contacts)
    router = Router(crm_db, contacts, TaskService(crm_db))
    assert (await router.record(sms("hello"))).contact_id == first
    # Now the first has the latest interaction: it stays the best match.
    assert (await router.record(sms("again"))).contact_id == first
    async with crm_db.session() as session:
        assert len(list(await session.scalars(select(PossibleDuplicate)))) == 1
        reviews = list(await session.scalars(select(Task).where(
            Task.source == TaskSource.REVIEW)))
    assert len(reviews) == 2  # each ambiguous interaction is reviewed


async def test_a_single_match_is_not_flagged(
    crm_db: Database, contacts: ContactService
) -> None:
    only = await contacts.create_contact(ContactInput(first_name="Jo", emails=["jo@x.org"]))
    router = Router(crm_db, contacts, TaskService(crm_db))
    routed = await router.record(sms("hi", sender="JO@x.org"))
    assert routed.contact_id == only
    async with crm_db.session() as session:
        row = await session.get(Interaction, routed.interaction_id)
        assert row is not None and "review" not in row.data
        assert list(await session.scalars(select(PossibleDuplicate))) == []


async def test_an_sms_the_messaging_layer_matched_itself_is_still_flagged(
    crm_db: Database, contacts: ContactService
) -> None:
    first, second = await _shared(contacts)
    bus = EventBus()
    router = Router(crm_db, contacts, TaskService(crm_db, bus=bus), bus=bus)
    async with InboundMessageRecorder(crm_db, router, bus):
        interaction_id = await InboundSms(crm_db, router, bus, default_region="DE").handle(
            DeliverSm("+4930123456", "5555", "Hallo", source_ton=1))
    async with crm_db.session() as session:
        row = await session.get(Interaction, interaction_id)
        assert row is not None and row.contact_id == first  # the channel's own choice
        assert row.data["review"]["candidates"] == [first, second]
        reviews = list(await session.scalars(select(Task).where(
            Task.source == TaskSource.REVIEW)))
    assert len(reviews) == 1
