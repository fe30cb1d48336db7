"""Ended call attempts land on the contact's timeline exactly once, live or after a restart."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from contactd.calls.events import CallEnded
from contactd.crm.call_records import CallRecorder
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.crm.timeline import timeline
from contactd.db.base import utcnow
from contactd.db.models import Interaction, Task
from contactd.db.models.calls import CallAttempt
from contactd.db.session import Database
from contactd.enums import AttemptState, CallOutcome
from contactd.events import EventBus


async def _attempt(db: Database, contact_id: int, *, ended: bool) -> str:
    attempt_id = str(uuid.uuid4())
    async with db.transaction() as session:
        session.add(
            CallAttempt(
                id=attempt_id,
                contact_id=contact_id,
                phone_e164="+4930123456",
                state=AttemptState.ENDED if ended else AttemptState.RINGING,
                outcome=CallOutcome.BUSY if ended else None,
                ring_s=4.0 if ended else None,
                ended_at=utcnow() if ended else None,
            )
        )
    return attempt_id


def _recorder(db: Database, contacts: ContactService, bus: EventBus) -> CallRecorder:
    router = Router(db, contacts, TaskService(db, bus=bus), bus=bus)
    return CallRecorder(db, router, bus)


async def _count(db: Database, model: type[object]) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_an_ended_call_is_one_interaction_linked_to_its_attempt(
    crm_db: Database, contacts: ContactService
) -> None:
    contact = await contacts.create_contact(ContactInput(last_name="Banda", phones=["030 123456"]))
    attempt_id = await _attempt(crm_db, contact, ended=False)
    bus = EventBus()
    async with _recorder(crm_db, contacts, bus):
        ended = CallEnded(
            attempt_id=attempt_id, outcome=CallOutcome.NO_ANSWER, cause=19, ring_s=25.0
        )
        await bus.publish(ended)
        await bus.publish(ended)  # a repeated event adds nothing
    entries = await timeline(crm_db, contact)
    calls = [e for e in entries if e.detail.get("kind") == "call"]
    assert len(calls) == 1
    async with crm_db.session() as session:
        attempt = await session.get(CallAttempt, attempt_id)
        assert attempt is not None and attempt.interaction_id is not None
        row = await session.get(Interaction, attempt.interaction_id)
        assert row is not None and row.contact_id == contact
        assert row.outcome == "no_answer" and row.ended_at is not None
        assert row.data["ring_s"] == 25.0 and row.data["attempt_id"] == attempt_id


async def test_calls_that_ended_while_nobody_listened_are_recorded_at_start(
    crm_db: Database, contacts: ContactService
) -> None:
    contact = await contacts.create_contact(ContactInput(last_name="Phiri"))
    first = await _attempt(crm_db, contact, ended=True)
    second = await _attempt(crm_db, contact, ended=True)
    still_ringing = await _attempt(crm_db, contact, ended=False)
    async with _recorder(crm_db, contacts, EventBus()) as recorder:
        assert await recorder.sweep() == 0  # the start already took both
    assert await _count(crm_db, Interaction) == 2
    async with crm_db.session() as session:
        linked = {
            a: i
            for a, i in (await session.execute(select(CallAttempt.id, CallAttempt.interaction_id)))
        }
    assert linked[first] and linked[second] and linked[still_ringing] is None
    # a second start (a restart) records nothing again
    async with _recorder(crm_db, contacts, EventBus()):
        pass
    assert await _count(crm_db, Interaction) == 2


async def test_a_crash_between_link_and_follow_ups_is_finished_at_start(
    crm_db: Database, contacts: ContactService
) -> None:
    contact = await contacts.create_contact(ContactInput(last_name="Mwale"))
    attempt_id = await _attempt(crm_db, contact, ended=True)
    recorder = _recorder(crm_db, contacts, EventBus())
    interaction_id, fresh = await recorder._link(attempt_id, None)  # the crash: no finish
    assert fresh and interaction_id is not None
    async with _recorder(crm_db, contacts, EventBus()):
        pass
    async with crm_db.session() as session:
        row = await session.get(Interaction, interaction_id)
        assert row is not None and row.ended_at is not None and row.outcome == "busy"
    assert await _count(crm_db, Interaction) == 1
    assert await _count(crm_db, Task) == 0  # a busy outbound call needs no person


async def test_a_burst_of_ended_calls_is_recorded_in_batches_each_once(
    crm_db: Database, contacts: ContactService
) -> None:
    """A campaign's outcomes arriving together: one interaction per attempt, ended and marked
    done, in a few batches rather than one round of transactions per call."""
    contact = await contacts.create_contact(ContactInput(last_name="Tembo"))
    attempts = [await _attempt(crm_db, contact, ended=False) for _ in range(20)]
    bus = EventBus()
    async with _recorder(crm_db, contacts, bus) as recorder:
        for attempt_id in [*attempts, attempts[0]]:  # the first one's event comes twice
            await bus.publish(
                CallEnded(
                    attempt_id=attempt_id, outcome=CallOutcome.NO_ANSWER, cause=19, ring_s=30.0
                )
            )
    assert 1 <= recorder.batches < 5
    async with crm_db.session() as session:
        linked = {
            a: i
            for a, i in await session.execute(select(CallAttempt.id, CallAttempt.interaction_id))
        }
        rows = {r.id: r for r in await session.scalars(select(Interaction))}
    assert len(rows) == 20 and sorted(i or 0 for i in linked.values()) == sorted(rows)
    for attempt_id, interaction_id in linked.items():
        assert interaction_id is not None
        row = rows[interaction_id]
        assert row.data["attempt_id"] == attempt_id and row.data["call"] == "done"
        assert row.outcome == "no_answer" and row.ended_at is not None
        assert row.contact_id == contact and row.data["ring_s"] == 30.0


async def test_a_crash_between_a_batch_link_and_its_follow_ups_is_finished_once_at_start(
    crm_db: Database, contacts: ContactService
) -> None:
    contact = await contacts.create_contact(ContactInput(last_name="Zulu"))
    attempts = [await _attempt(crm_db, contact, ended=True) for _ in range(3)]
    linked = await _recorder(crm_db, contacts, EventBus())._link_many(
        [(a, None) for a in attempts]
    )  # the crash: linked, no follow-ups made
    assert len(linked) == 3
    async with _recorder(crm_db, contacts, EventBus()):
        pass
    async with _recorder(crm_db, contacts, EventBus()):  # and a second restart
        pass
    async with crm_db.session() as session:
        rows = list(await session.scalars(select(Interaction)))
    assert len(rows) == 3
    assert all(r.ended_at is not None and r.data["call"] == "done" for r in rows)
