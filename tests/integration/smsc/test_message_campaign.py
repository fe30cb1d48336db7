"""SMS campaigns against the real SMSC peer: quiet hours hold a message until the contact's
window opens in their own zone, an opt-out is skipped with the reason stored, and each
decision and message is on the contact's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from contactd.config import Settings
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.crm.timeline import timeline
from contactd.db.models import ChannelDecision, Consent, Contact, Interaction, OutboxMessage
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.enums import (
    CampaignMode,
    CampaignStatus,
    Channel,
    ConsentStatus,
    InteractionKind,
    MessageState,
)
from contactd.events import EventBus
from contactd.messaging.campaigns import (
    CANCELLED,
    MessageCampaigns,
    MessageCampaignSpec,
    message_progress,
)
from contactd.messaging.service import MessagingService
from tests.peers.smsc import SmscPeer

pytestmark = pytest.mark.smsc

HOLD_S = 6.0  # how far in the future the held contact's window opens
# Pairs of zones without DST, the second 15-30 minutes ahead of the first.
ZONE_PAIRS = [("Asia/Tokyo", "Australia/Darwin"), ("Asia/Kolkata", "Asia/Kathmandu")]


def _zones(now: datetime) -> tuple[str, str]:
    """A pair whose first zone is far enough from midnight for a 40-minute window."""
    for held, open_ in ZONE_PAIRS:
        local = now.astimezone(ZoneInfo(held)).time()
        if time(0, 1) <= local <= time(22, 50):
            return held, open_
    raise AssertionError("no zone pair away from midnight")  # the two pairs are 3.5 h apart


async def _contact(
    contacts: ContactService, db: Database, name: str, phone: str, zone: str, sms: ConsentStatus
) -> int:
    contact_id = await contacts.create_contact(ContactInput(first_name=name, phones=[phone]))
    async with db.transaction() as session:
        await session.execute(update(Contact).where(Contact.id == contact_id).values(timezone=zone))
        session.add(Consent(contact_id=contact_id, channel=Channel.SMS, status=sms, source="test"))
    return contact_id


async def test_quiet_hours_hold_the_message_and_an_opt_out_is_skipped_with_its_reason(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    now = datetime.now(UTC)
    held_zone, open_zone = _zones(now)
    opens = now + timedelta(seconds=HOLD_S)
    start = opens.astimezone(ZoneInfo(held_zone)).time().replace(microsecond=0)
    end = (datetime.combine(opens.date(), start) + timedelta(minutes=40)).time()
    templates = settings.general.data_dir / "templates"
    templates.mkdir()
    (templates / "spring.en.sms.j2").write_text(
        "Hi {{ contact.first_name }}, spring offer. Reply STOP to opt out."
    )
    configured = settings.model_copy(
        update={
            "smpp": smsc.settings(),
            "dialer": settings.dialer.model_copy(update={"window_start": start, "window_end": end}),
        }
    )
    bus = EventBus()
    contacts = ContactService(db, default_region="DE")
    tasks = TaskService(db, bus=bus)
    router = Router(db, contacts, tasks, bus=bus)
    messaging = MessagingService(
        configured, db, bus, router=router, smpp_options={"wait_connected_s": 2.0}
    )
    campaigns = MessageCampaigns(configured, db, router, messaging.outbox, messaging.templates, bus)
    awake = await _contact(contacts, db, "Ada", "+61 412 345 678", open_zone, ConsentStatus.GRANTED)
    asleep = await _contact(
        contacts, db, "Kenji", "+81 90 1234 5678", held_zone, ConsentStatus.GRANTED
    )
    stopped = await _contact(
        contacts, db, "Olle", "+49 170 7654321", open_zone, ConsentStatus.REVOKED
    )
    async with messaging:
        created = await campaigns.create(
            MessageCampaignSpec("spring-sms", CampaignMode.SMS, "spring"),
            contacts=[awake, asleep, stopped],
            now=now,
        )
        assert (created.queued, created.held) == (1, 1)
        assert created.skipped == [(f"contact {stopped}", "sms_opted_out")]
        await messaging.outbox.wait_for(lambda s: s.delivered >= 1, 30)
        first = await smsc.submits()
        if datetime.now(UTC) < opens:  # still quiet hours for Kenji: only Ada has hers
            assert [s["destination_addr"] for s in first] == ["61412345678"]
            async with db.session() as session:
                progress = await message_progress(
                    session, await session.get_one(Campaign, created.campaign_id)
                )
            assert progress.held == 1 and progress.skip_reasons == {"sms_opted_out": 1}
        await messaging.outbox.wait_for(lambda s: s.delivered >= 2, HOLD_S + 30)
    submits = await smsc.submits()
    assert [s["destination_addr"] for s in submits] == ["61412345678", "819012345678"]
    assert submits[1]["text"] == "Hi Kenji, spring offer. Reply STOP to opt out."
    async with db.session() as session:
        rows = {m.contact_id: m for m in await session.scalars(select(OutboxMessage))}
        decisions = {d.contact_id: d for d in await session.scalars(select(ChannelDecision))}
        progress = await message_progress(
            session, await session.get_one(Campaign, created.campaign_id)
        )
    assert set(rows) == {awake, asleep}  # nothing for the opted-out contact
    held = rows[asleep]
    assert held.sent_at is not None and held.sent_at >= opens.replace(microsecond=0)
    assert held.state is MessageState.DELIVERED
    assert (decisions[stopped].channel, decisions[stopped].reason) == (
        Channel.NONE,
        "sms_opted_out",
    )
    assert decisions[asleep].reason == "quiet_hours"
    assert (progress.delivered, progress.held, progress.skipped) == (2, 0, 1)
    # The reason is on the skipped contact's timeline; the message on the other's, delivered.
    skipped_history = await timeline(db, stopped)
    assert any("sms_opted_out" in entry.title for entry in skipped_history)
    async with db.session() as session:
        message_row = await session.get_one(Interaction, held.interaction_id)
    assert message_row.kind is InteractionKind.SMS and message_row.contact_id == asleep
    assert message_row.outcome == MessageState.DELIVERED.value


async def test_a_draft_sends_nothing_and_a_pause_cancels_what_is_still_queued(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    """Drafted: the audience and a sample, nothing decided or queued. Started, paused after
    the first message: the queued ones are cancelled (outbox row and timeline say so); started
    again, they are sent, so each contact gets exactly one message."""
    templates = settings.general.data_dir / "templates"
    templates.mkdir()
    (templates / "autumn.en.sms.j2").write_text("Hi {{ contact.first_name }}, autumn offer.")
    configured = settings.model_copy(
        update={
            "smpp": smsc.settings(),
            "dialer": settings.dialer.model_copy(
                update={
                    "window_start": time(0, 0),
                    "window_end": time(23, 59, 59),
                    "campaign_messages_per_second": 0.1,  # 10 s apart: a pause catches two
                }
            ),
        }
    )
    bus = EventBus()
    contacts = ContactService(db, default_region="DE")
    router = Router(db, contacts, TaskService(db, bus=bus), bus=bus)
    messaging = MessagingService(
        configured, db, bus, router=router, smpp_options={"wait_connected_s": 2.0}
    )
    campaigns = MessageCampaigns(configured, db, router, messaging.outbox, messaging.templates, bus)
    people = [
        await _contact(contacts, db, name, phone, "Europe/Berlin", ConsentStatus.GRANTED)
        for name, phone in (
            ("Ana", "+49 170 1111111"),
            ("Ben", "+49 170 2222222"),
            ("Cem", "+49 170 3333333"),
        )
    ]
    async with messaging:
        drafted = await campaigns.draft(
            MessageCampaignSpec("autumn-sms", CampaignMode.SMS, "autumn"), contacts=people
        )
        assert (drafted.audience, drafted.sample_body) == (3, "Hi Ana, autumn offer.")
        async with db.session() as session:
            assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
            campaign = await session.get_one(Campaign, drafted.campaign_id)
            assert campaign.status is CampaignStatus.DRAFT
        started = await campaigns.start(drafted.campaign_id)
        assert (started.queued, started.held, started.skipped) == (3, 0, [])
        await messaging.outbox.wait_for(lambda s: s.delivered >= 1, 30)
        cancelled = await campaigns.pause(drafted.campaign_id)
        assert cancelled >= 1
        async with db.session() as session:
            progress = await message_progress(
                session, await session.get_one(Campaign, drafted.campaign_id)
            )
            stopped = list(
                await session.scalars(
                    select(Interaction)
                    .join(OutboxMessage, OutboxMessage.interaction_id == Interaction.id)
                    .where(OutboxMessage.error == CANCELLED)
                )
            )
        assert (progress.status, progress.cancelled, progress.queued) == ("paused", cancelled, 0)
        assert len(stopped) == cancelled and {r.outcome for r in stopped} == {"cancelled"}
        resumed = await campaigns.start(drafted.campaign_id)
        assert resumed.queued == cancelled
        await messaging.outbox.wait_for(lambda s: s.delivered >= 3, 60)
    submits = await smsc.submits()
    assert sorted(s["destination_addr"] for s in submits) == [
        "491701111111",
        "491702222222",
        "491703333333",
    ]
