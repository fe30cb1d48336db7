"""The channel service: gathers a contact's facts, asks the pure policy, stores the decision.

Each decision is a ChannelDecision row (contact_id, reason, details), which the contact's
timeline lists beside interactions, and a ChannelChosen event for live views.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.config import DialerSettings
from contactd.db.models.crm import (
    ChannelDecision,
    Consent,
    Contact,
    ContactEmail,
    ContactPhone,
    DoNotCall,
)
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.enums import CallOutcome, Channel, ConsentStatus, PhoneType
from contactd.errors import NotFoundError
from contactd.events import EventBus
from contactd.messaging.events import ChannelChosen
from contactd.messaging.policy import ContactFacts, Decision, Situation, choose_channel

WindowCheck = Callable[[Contact, ContactPhone | None, Campaign | None, datetime], bool]
WindowOpens = Callable[[Contact, ContactPhone | None, Campaign | None, datetime], datetime]


def _zone(contact: Contact, phone: ContactPhone | None, fallback: str) -> ZoneInfo:
    for name in (contact.timezone, *(phone.time_zones.split() if phone else ()), fallback):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def window_check(settings: DialerSettings, default_zone: str = "UTC") -> WindowCheck:
    """The calling window in the callee's local time; the narrower of campaign and settings."""

    def is_open(
        contact: Contact, phone: ContactPhone | None, campaign: Campaign | None, now: datetime
    ) -> bool:
        start, end = _window(settings, campaign)
        local = now.astimezone(_zone(contact, phone, default_zone)).time()
        return start <= local < end

    return is_open


def _window(settings: DialerSettings, campaign: Campaign | None) -> tuple[time, time]:
    start: time = settings.window_start
    end: time = settings.window_end
    if campaign is not None and campaign.window_start is not None:
        start = max(start, campaign.window_start)
    if campaign is not None and campaign.window_end is not None:
        end = min(end, campaign.window_end)
    return start, end


def window_opens(settings: DialerSettings, default_zone: str = "UTC") -> WindowOpens:
    """When the window (as `window_check` judges it) next opens in the callee's local time;
    `now` itself when it is open."""

    def opens(
        contact: Contact, phone: ContactPhone | None, campaign: Campaign | None, now: datetime
    ) -> datetime:
        start, end = _window(settings, campaign)
        zone = _zone(contact, phone, default_zone)
        local = now.astimezone(zone)
        if start <= local.time() < end:
            return now
        day = local.date() if local.time() < start else local.date() + timedelta(days=1)
        return datetime.combine(day, start, tzinfo=zone).astimezone(UTC)

    return opens


def _callable(e164: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return False


class ChannelService:
    def __init__(self, db: Database, is_window_open: WindowCheck, bus: EventBus | None = None):
        self._db = db
        self._is_window_open = is_window_open
        self._bus = bus

    async def decide(
        self,
        contact_id: int,
        *,
        campaign_id: int | None = None,
        failed_call_attempts: int = 0,
        last_outcome: CallOutcome | None = None,
        now: datetime | None = None,
        requested: Channel | None = None,
    ) -> Decision:
        """Choose, store and announce; the caller acts on the returned decision
        (`requested`: a messaging campaign's one channel, see messaging/policy.py)."""
        now = now or datetime.now(UTC)
        async with self._db.transaction() as session:
            contact = await session.get(Contact, contact_id)
            if contact is None:
                raise NotFoundError(f"no contact {contact_id}", contact_id=contact_id)
            campaign = await session.get(Campaign, campaign_id) if campaign_id else None
            phone = await self._call_phone(session, contact_id)
            facts = await self._facts(session, contact, phone, campaign_id)
            situation = Situation(
                window_open=self._is_window_open(contact, phone, campaign, now),
                failed_call_attempts=failed_call_attempts,
                last_outcome=last_outcome,
                max_call_attempts=campaign.max_attempts if campaign else 3,
                fallback_channel=campaign.fallback_channel if campaign else Channel.SMS,
                requested=requested,
            )
            decision = choose_channel(facts, situation)
            details = {**decision.details, "address": decision.address or ""}
            if last_outcome is not None:
                details["last_outcome"] = last_outcome.value
            session.add(
                ChannelDecision(
                    contact_id=contact_id,
                    campaign_id=campaign_id,
                    decided_at=now,
                    channel=decision.channel,
                    reason=decision.reason.value,
                    details=details,
                )
            )
        if self._bus is not None:
            await self._bus.publish(
                ChannelChosen(
                    contact_id=contact_id,
                    campaign_id=campaign_id,
                    channel=decision.channel,
                    reason=decision.reason.value,
                )
            )
        return decision

    @staticmethod
    async def _call_phone(session: AsyncSession, contact_id: int) -> ContactPhone | None:
        phone: ContactPhone | None = await session.scalar(
            select(ContactPhone)
            .where(ContactPhone.contact_id == contact_id)
            .order_by(ContactPhone.is_primary.desc(), ContactPhone.id)
            .limit(1)
        )
        return phone

    async def _facts(
        self,
        session: AsyncSession,
        contact: Contact,
        phone: ContactPhone | None,
        campaign_id: int | None,
    ) -> ContactFacts:
        consents = await self._consents(session, contact.id)
        on_dnc = False
        if phone is not None:
            on_dnc = (
                await session.scalar(
                    select(DoNotCall.id)
                    .where(
                        DoNotCall.e164 == phone.e164,
                        or_(DoNotCall.campaign_id.is_(None), DoNotCall.campaign_id == campaign_id),
                    )
                    .limit(1)
                )
            ) is not None
        any_mobile: str | None = await session.scalar(
            select(ContactPhone.e164)
            .where(ContactPhone.contact_id == contact.id, ContactPhone.type == PhoneType.MOBILE)
            .order_by(ContactPhone.is_primary.desc(), ContactPhone.id)
            .limit(1)
        )
        mobile = any_mobile if consents.get(Channel.SMS) is ConsentStatus.GRANTED else None
        mobile_on_dnc = False
        if any_mobile is not None:
            mobile_on_dnc = (
                await session.scalar(
                    select(DoNotCall.id)
                    .where(
                        DoNotCall.e164 == any_mobile,
                        or_(DoNotCall.campaign_id.is_(None), DoNotCall.campaign_id == campaign_id),
                    )
                    .limit(1)
                )
            ) is not None
        email: str | None = None
        if consents.get(Channel.EMAIL) is not ConsentStatus.REVOKED:
            email = await session.scalar(
                select(ContactEmail.address)
                .where(ContactEmail.contact_id == contact.id)
                .order_by(ContactEmail.is_primary.desc(), ContactEmail.id)
                .limit(1)
            )
        return ContactFacts(
            callable_number=phone.e164 if phone is not None and _callable(phone.e164) else None,
            number_on_dnc=on_dnc,
            call_consent_revoked=consents.get(Channel.CALL) is ConsentStatus.REVOKED,
            sms_number=mobile,
            email_address=email,
            preferred_channel=contact.preferred_channel,
            mobile_number=any_mobile,
            sms_opted_out=consents.get(Channel.SMS) is ConsentStatus.REVOKED,
            mobile_on_dnc=mobile_on_dnc,
            email_opted_out=consents.get(Channel.EMAIL) is ConsentStatus.REVOKED,
        )

    @staticmethod
    async def _consents(session: AsyncSession, contact_id: int) -> dict[Channel, ConsentStatus]:
        """The newest consent row per channel is the one in force."""
        rows = await session.execute(
            select(Consent.channel, Consent.status)
            .where(Consent.contact_id == contact_id)
            .order_by(Consent.recorded_at, Consent.id)
        )
        return {channel: status for channel, status in rows}
