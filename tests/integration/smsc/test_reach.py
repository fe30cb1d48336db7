"""Channel chosen before contact, against the real SMSC peer: outside the calling window a
contact with SMS consent gets an SMS and no call, and the reason is on the timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from contactd.config import Settings
from contactd.crm.fts import create_fts
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.crm.timeline import timeline
from contactd.db.models import CallAttempt, ChannelDecision, Consent, Interaction, Task
from contactd.db.session import Database
from contactd.enums import Channel, ConsentStatus, TaskSource
from contactd.events import EventBus
from contactd.messaging.events import ChannelChosen
from contactd.messaging.reach import Action, ReachService
from contactd.messaging.service import MessagingService
from tests.peers.smsc import SmscPeer

pytestmark = pytest.mark.smsc

# 23:30 in Berlin: outside the default 08:00-21:00 window; 10:30 is inside it.
LATE = datetime(2026, 12, 4, 22, 30, tzinfo=UTC)
MORNING = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


async def _setup(settings: Settings, smsc: SmscPeer, db: Database, bus: EventBus
                 ) -> tuple[MessagingService, ReachService, int]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    configured = settings.model_copy(update={"smpp": smsc.settings()})
    messaging = MessagingService(configured, db, bus,
                                 smpp_options={"wait_connected_s": 2.0})
    contacts = ContactService(db, default_region="DE")
    tasks = TaskService(db, bus=bus)
    contact_id = await contacts.create_contact(ContactInput(
        first_name="Lena", last_name="Vogel", phones=["+49 170 1234567"]))
    async with db.transaction() as session:
        session.add(Consent(contact_id=contact_id, channel=Channel.SMS,
                            status=ConsentStatus.GRANTED, source="web form"))
    reach = ReachService(db, messaging, Router(db, contacts, tasks, bus=bus), tasks)
    return messaging, reach, contact_id


async def test_outside_the_window_sms_consent_means_an_sms_and_no_call_with_the_reason(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    bus = EventBus()
    chosen: list[ChannelChosen] = []
    bus.subscribe(ChannelChosen, chosen.append)
    messaging, reach, contact_id = await _setup(settings, smsc, db, bus)
    async with messaging:
        result = await reach.reach(contact_id, "renewal reminder", now=LATE)
        await messaging.outbox.wait_for(lambda s: s.delivered == 1, 30)
    assert result.decision.channel is Channel.SMS and result.action is Action.QUEUED
    assert result.decision.reason.value == "outside_calling_window"
    [submit] = await smsc.submits()
    assert submit["destination_addr"] == "491701234567"
    assert [(e.channel, e.reason) for e in chosen] == [(Channel.SMS, "outside_calling_window")]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(CallAttempt)) == 0
        assert await session.scalar(select(func.count()).select_from(Task)) == 0
        [decision] = list(await session.scalars(select(ChannelDecision)))
        assert decision.reason == "outside_calling_window" and decision.channel is Channel.SMS
        row = await session.get(Interaction, result.interaction_id)
        assert row is not None and row.contact_id == contact_id
        assert row.data["reason"] == "outside_calling_window"
        assert row.data["message_id"] == result.message_id
    history = await timeline(db, contact_id)
    assert any("outside_calling_window" in entry.title for entry in history)


async def test_inside_the_window_without_a_campaign_a_person_is_asked_to_call(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    messaging, reach, contact_id = await _setup(settings, smsc, db, EventBus())
    async with messaging:  # connected: had anything been queued, the SMSC would have it
        result = await reach.reach(contact_id, "renewal reminder", now=MORNING)
        assert messaging.outbox.stats.enqueued == 0
    assert result.decision.channel is Channel.CALL and result.action is Action.CALL_TASK
    async with db.session() as session:
        [task] = list(await session.scalars(select(Task)))
    assert task.source is TaskSource.CALLBACK and task.contact_id == contact_id
    assert task.title == "Call +491701234567: renewal reminder"
    assert result.message_id is None and await smsc.submits() == []
