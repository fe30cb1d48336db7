"""Messaging campaigns: one template sent by SMS or e-mail to a list of contacts.

Every recipient goes through the same choice as `reach` (`ChannelService.decide` with the
campaign's channel requested, so messaging/policy.choose_channel): an opt-out, missing consent,
a number on the DNC list or no address skips the contact; quiet hours (outside the window in
the contact's local time) keep the message but hold it until the window opens. Each decision
and its reason is an interaction on the contact's timeline, each message another one, both
through the Router. Messages are stored in the outbox with the time they may leave
(`not_before`), spaced at `[dialer] campaign_messages_per_second`; the daemon's outbox sends
them, so the CLI and the panel only have to call `create`.

A campaign can also be drafted first (`draft`: stored with its audience as leads, a sample
rendered, nothing decided or sent), then started (`start`: the above for every lead not done
yet), paused (`pause`: its queued, not-yet-sent messages are cancelled, each recorded as such
on the outbox row and on its timeline entry, their leads back to new) and started again.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.config import Settings
from contactd.crm.routing import InboundContact, Router
from contactd.db.models.crm import (
    ChannelDecision,
    Contact,
    ContactPhone,
    Interaction,
    Organisation,
)
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.enums import (
    MESSAGE_CAMPAIGN_MODES,
    CampaignMode,
    CampaignStatus,
    Channel,
    Direction,
    InteractionKind,
    LeadStatus,
    MessageState,
)
from contactd.errors import ConflictError, NotFoundError, ValidationError
from contactd.events import EventBus
from contactd.messaging.channels import ChannelService, window_check, window_opens
from contactd.messaging.errors import TemplateError
from contactd.messaging.outbox import OutboundMessage, Outbox
from contactd.messaging.policy import Decision, Reason
from contactd.messaging.templates import TemplateStore, campaign_fields, contact_fields

log = logging.getLogger(__name__)

# The same names call campaigns take (dialer/dialvalues.py), so a name works in every command.
NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")

CHANNEL_OF = {CampaignMode.SMS: Channel.SMS, CampaignMode.EMAIL: Channel.EMAIL}
KIND_OF = {Channel.SMS: InteractionKind.SMS, Channel.EMAIL: InteractionKind.EMAIL}
# The template parts a channel needs: an SMS its text, an e-mail a subject and a text.
NEEDED_PARTS = {Channel.SMS: ({"sms", "txt"}, 1), Channel.EMAIL: ({"subject", "txt"}, 2)}
# The error of an outbox row a pause cancelled (queued -> failed, never sent), and the outcome
# of its message on the timeline.
CANCELLED: Final = "cancelled: campaign paused"
CANCELLED_OUTCOME: Final = "cancelled"
STARTABLE: Final = (CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.RUNNING)


@dataclass(frozen=True)
class MessageCampaignSpec:
    name: str
    mode: CampaignMode  # SMS or EMAIL
    template: str


@dataclass
class CreatedMessageCampaign:
    campaign_id: int
    name: str
    queued: int  # messages leaving as soon as the outbox can send them
    held: int  # messages held until the contact's window opens (quiet hours)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)


@dataclass
class DraftedMessageCampaign:
    """A stored draft: who it would reach and what the first of them would get."""

    campaign_id: int
    name: str
    audience: int  # contacts it is for (each decided for only when it starts)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # entries matching no one
    sample_for: str = ""  # "contact N" the sample was rendered for
    sample_subject: str = ""
    sample_body: str = ""
    sample_error: str = ""  # the template cannot be rendered for that contact


@dataclass
class MessageProgress:
    """Where a messaging campaign stands: for `dialer stats`, `campaign status`, the panel."""

    campaign_id: int
    name: str
    mode: str
    status: str
    template: str
    decided: int = 0  # contacts a decision was made for
    skipped: int = 0  # of which left alone
    skip_reasons: dict[str, int] = field(default_factory=dict)
    held: int = 0  # queued, waiting for a window to open (or their turn at the rate)
    queued: int = 0  # queued and due
    sending: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0  # queued when a pause cancelled them (never sent)
    next_release: str | None = None  # ISO time the next held message may leave

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [
            f"campaign {self.name} ({self.mode}, template {self.template}): {self.status}",
            f"  contacts {self.decided}: {self.decided - self.skipped} messaged, "
            f"{self.skipped} skipped",
            f"  messages: {self.held} held, {self.queued} queued, {self.sending} sending, "
            f"{self.sent} sent, {self.delivered} delivered, {self.failed} failed, "
            f"{self.expired} expired, {self.cancelled} cancelled",
        ]
        if self.next_release:
            out.append(f"  next held message leaves at {self.next_release}")
        out += [f"  skipped ({reason}): {n}" for reason, n in sorted(self.skip_reasons.items())]
        return out


def entries_from_text(text: str, mode: CampaignMode) -> list[tuple[str, str]]:
    """(where, address) per entry of a recipient file: a CSV with a `phone` (SMS) or `email`
    (e-mail) column, or one address per line (the first cell). Blank lines are not entries."""
    rows = list(csv.reader(io.StringIO(text)))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    wanted = "phone" if mode is CampaignMode.SMS else "email"
    column, start = (header.index(wanted), 1) if wanted in header else (0, 0)
    out = []
    for i, row in enumerate(rows[start:], start=start + 1):
        if not row or not "".join(row).strip():
            continue
        out.append((f"line {i}", (row[column] if column < len(row) else "").strip()))
    return out


class MessageCampaigns:
    """Create messaging campaigns and report their progress."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        router: Router,
        outbox: Outbox,
        templates: TemplateStore,
        bus: EventBus | None = None,
    ) -> None:
        self._db = db
        self._router = router
        self._outbox = outbox
        self._templates = templates
        zone = settings.general.timezone
        self._channels = ChannelService(db, window_check(settings.dialer, zone), bus)
        self._opens = window_opens(settings.dialer, zone)
        self._spacing = timedelta(seconds=1 / settings.dialer.campaign_messages_per_second)

    def check(self, spec: MessageCampaignSpec) -> Channel:
        """Every field checked; returns the channel. ValidationError names the wrong field."""
        if spec.mode not in MESSAGE_CAMPAIGN_MODES:
            raise ValidationError(f"mode {spec.mode.value!r} is not sms or email", field="mode")
        if not NAME.fullmatch(spec.name):
            raise ValidationError(
                f"name {spec.name!r} is not allowed; allowed: letters, digits, "
                "'_', '.', '-' (1 to 100)",
                field="name",
            )
        channel = CHANNEL_OF[spec.mode]
        languages = self._templates.catalogue().get(spec.template)
        if not languages:
            known = ", ".join(sorted(self._templates.catalogue())) or "none"
            raise ValidationError(
                f"no message template named {spec.template!r} (known: {known})", field="template"
            )
        parts, needed = NEEDED_PARTS[channel]
        if not any(len(have & parts) >= needed for have in languages.values()):
            raise ValidationError(
                f"template {spec.template!r} has no {' and '.join(sorted(parts))} part "
                f"for {channel.value}",
                field="template",
            )
        return channel

    async def create(
        self,
        spec: MessageCampaignSpec,
        *,
        entries: Sequence[tuple[str, str]] = (),
        contacts: Sequence[int] = (),
        now: datetime | None = None,
    ) -> CreatedMessageCampaign:
        """Draft the campaign and start it at once: decide for every recipient, queue the
        messages.

        `entries`: (where, phone or address) from a file, each matched to the contact holding
        it; `contacts`: contact ids (a segment). Unmatched entries are skipped and listed.
        """
        drafted = await self.draft(spec, entries=entries, contacts=contacts, now=now, sample=False)
        started = await self.start(drafted.campaign_id, now=now)
        started.skipped[:0] = drafted.skipped
        return started

    async def draft(
        self,
        spec: MessageCampaignSpec,
        *,
        entries: Sequence[tuple[str, str]] = (),
        contacts: Sequence[int] = (),
        now: datetime | None = None,
        sample: bool = True,
    ) -> DraftedMessageCampaign:
        """Store the campaign as a draft with its audience (one lead per contact); nothing is
        decided or sent. With `sample`, the message the first contact would get is rendered."""
        channel = self.check(spec)
        skipped: list[tuple[str, str]] = []
        ordered: dict[int, str] = {}
        for contact_id in contacts:
            ordered.setdefault(contact_id, f"contact {contact_id}")
        for where, raw in entries:
            match = await self._router.find_sender(raw) if raw else None
            if match is None:
                skipped.append((where, f"no contact holds {raw!r}" if raw else "empty"))
            else:
                ordered.setdefault(match.contact_id, where)
        campaign_id = await self._store(spec, channel, list(ordered))
        drafted = DraftedMessageCampaign(campaign_id, spec.name, len(ordered), skipped)
        if sample and ordered:
            first = next(iter(ordered))
            drafted.sample_for = f"contact {first}"
            try:
                subject, body, _, _ = await self._render(spec, campaign_id, first, channel)
            except TemplateError as exc:
                drafted.sample_error = exc.message
            else:
                drafted.sample_subject, drafted.sample_body = subject, body
        log.info(
            "messaging campaign drafted",
            extra={
                "campaign_id": campaign_id,
                "channel": channel.value,
                "audience": len(ordered),
                "skipped": len(skipped),
            },
        )
        return drafted

    async def start(
        self, campaign_id: int, *, now: datetime | None = None
    ) -> CreatedMessageCampaign:
        """Run a draft (or a paused campaign again): decide for every lead not done yet and
        queue its message; ConflictError for a stopped or finished campaign."""
        now = now or datetime.now(UTC)
        async with self._db.transaction() as session:
            campaign = await self._campaign(session, campaign_id)
            if campaign.status not in STARTABLE:
                raise ConflictError(
                    f"campaign {campaign.name!r} is {campaign.status.value}: only a draft or "
                    "a paused campaign starts",
                    field="status",
                )
            campaign.status = CampaignStatus.RUNNING
            campaign.started_at = campaign.started_at or now
            spec = MessageCampaignSpec(
                campaign.name, campaign.mode, campaign.fallback_template or ""
            )
            leads: list[tuple[int, int]] = [
                (lead_id, contact_id)
                for lead_id, contact_id in await session.execute(
                    select(Lead.id, Lead.contact_id)
                    .where(
                        Lead.campaign_id == campaign_id,
                        Lead.status == LeadStatus.NEW,
                        Lead.contact_id.is_not(None),
                    )
                    .order_by(Lead.id)
                )
                if contact_id is not None
            ]
            # A contact whose message a pause cancelled gets a new one (a new idempotency key).
            rounds: dict[int, int] = {
                c: n
                for c, n in await session.execute(
                    select(OutboxMessage.contact_id, func.count())
                    .where(
                        OutboxMessage.campaign_id == campaign_id,
                        OutboxMessage.error == CANCELLED,
                    )
                    .group_by(OutboxMessage.contact_id)
                )
                if c is not None
            }
        channel = CHANNEL_OF[spec.mode]
        skipped: list[tuple[str, str]] = []
        decided: list[tuple[int, Decision, datetime]] = []
        for _, contact_id in leads:
            decision = await self._channels.decide(
                contact_id, campaign_id=campaign_id, now=now, requested=channel
            )
            if decision.channel is Channel.NONE or decision.address is None:
                skipped.append((f"contact {contact_id}", decision.reason.value))
                await self._note(spec, campaign_id, contact_id, decision, now, None, None)
                continue
            opens = now
            if decision.reason is Reason.QUIET_HOURS:
                opens = await self._window_opens(contact_id, campaign_id, now)
            decided.append((contact_id, decision, opens))
        queued = held = 0
        release = now - self._spacing
        # Spaced at the configured rate in the order their windows open.
        for contact_id, decision, opens in sorted(decided, key=lambda d: d[2]):
            release = max(opens, release + self._spacing)
            message_id = await self._send(
                spec,
                channel,
                campaign_id,
                contact_id,
                decision,
                release,
                now,
                again=rounds.get(contact_id, 0),
            )
            if message_id is None:
                skipped.append((f"contact {contact_id}", "template_error"))
                continue
            if opens > now:
                held += 1
            else:
                queued += 1
        if leads:
            async with self._db.transaction() as session:
                await session.execute(
                    update(Lead)
                    .where(Lead.id.in_([lead_id for lead_id, _ in leads]))
                    .values(status=LeadStatus.DONE, updated_at=now),
                    execution_options={"synchronize_session": False},
                )
        log.info(
            "messaging campaign started",
            extra={
                "campaign_id": campaign_id,
                "channel": channel.value,
                "queued": queued,
                "held": held,
                "skipped": len(skipped),
            },
        )
        return CreatedMessageCampaign(campaign_id, spec.name, queued, held, skipped)

    async def pause(self, campaign_id: int, *, now: datetime | None = None) -> int:
        """Pause a running campaign: its queued messages (not yet handed to the SMSC or the
        mail server) are cancelled, on the outbox row and on the timeline, and their leads are
        new again, so `start` sends them later. Returns how many were cancelled."""
        now = now or datetime.now(UTC)
        outbox = OutboxMessage.__table__
        assert isinstance(outbox, Table)
        async with self._db.transaction() as session:
            campaign = await self._campaign(session, campaign_id)
            if campaign.status is not CampaignStatus.RUNNING:
                raise ConflictError(
                    f"campaign {campaign.name!r} is {campaign.status.value}: only a running "
                    "campaign pauses",
                    field="status",
                )
            campaign.status = CampaignStatus.PAUSED
            # The dispatcher claims with `state = queued` too: each row is sent or cancelled.
            cancelled = list(
                await session.execute(
                    update(outbox)
                    .where(
                        outbox.c.campaign_id == campaign_id,
                        outbox.c.state == MessageState.QUEUED,
                    )
                    .values(state=MessageState.FAILED, error=CANCELLED, next_attempt_at=None)
                    .returning(outbox.c.contact_id, outbox.c.interaction_id)
                )
            )
            contacts = [c for c, _ in cancelled if c is not None]
            interactions = [i for _, i in cancelled if i is not None]
            if contacts:
                await session.execute(
                    update(Lead)
                    .where(Lead.campaign_id == campaign_id, Lead.contact_id.in_(contacts))
                    .values(status=LeadStatus.NEW, updated_at=now),
                    execution_options={"synchronize_session": False},
                )
            if interactions:
                await session.execute(
                    update(Interaction)
                    .where(Interaction.id.in_(interactions))
                    .values(outcome=CANCELLED_OUTCOME, ended_at=now),
                    execution_options={"synchronize_session": False},
                )
        log.info(
            "messaging campaign paused",
            extra={"campaign_id": campaign_id, "cancelled": len(cancelled)},
        )
        return len(cancelled)

    @staticmethod
    async def _campaign(session: AsyncSession, campaign_id: int) -> Campaign:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFoundError(f"no campaign {campaign_id}", code="campaign_not_found")
        if campaign.mode not in MESSAGE_CAMPAIGN_MODES:
            raise ValidationError(
                f"campaign {campaign.name!r} is a {campaign.mode.value} campaign, not sms or "
                "email: the dialer starts and pauses it",
                field="mode",
            )
        return campaign

    async def _store(self, spec: MessageCampaignSpec, channel: Channel, audience: list[int]) -> int:
        async with self._db.transaction() as session:
            if await session.scalar(select(Campaign.id).where(Campaign.name == spec.name)):
                raise ConflictError(f"a campaign named {spec.name!r} exists already", field="name")
            campaign = Campaign(
                name=spec.name,
                mode=spec.mode,
                status=CampaignStatus.DRAFT,
                fallback_channel=channel,
                fallback_template=spec.template,
            )
            session.add(campaign)
            await session.flush()
            # The audience, one lead per contact (the dialer never takes a messaging
            # campaign's leads: dialer/repo.running_campaign_ids leaves these modes out).
            session.add_all(
                Lead(
                    campaign_id=campaign.id,
                    contact_id=contact_id,
                    phone_e164="",
                    status=LeadStatus.NEW,
                )
                for contact_id in audience
            )
            return campaign.id

    async def _window_opens(self, contact_id: int, campaign_id: int, now: datetime) -> datetime:
        async with self._db.session() as session:
            contact = await session.get(Contact, contact_id)
            if contact is None:
                raise NotFoundError(f"no contact {contact_id}", contact_id=contact_id)
            phone = await session.scalar(
                select(ContactPhone)
                .where(ContactPhone.contact_id == contact_id)
                .order_by(ContactPhone.is_primary.desc(), ContactPhone.id)
                .limit(1)
            )
            campaign = await session.get(Campaign, campaign_id)
        return self._opens(contact, phone, campaign, now)

    async def _send(
        self,
        spec: MessageCampaignSpec,
        channel: Channel,
        campaign_id: int,
        contact_id: int,
        decision: Decision,
        release: datetime,
        now: datetime,
        *,
        again: int = 0,
    ) -> int | None:
        """Render, put the message on the timeline through the Router, queue it; None when the
        template cannot be rendered for this contact (the reason is on the timeline)."""
        assert decision.address is not None
        try:
            subject, body, html, language = await self._render(
                spec, campaign_id, contact_id, channel
            )
        except TemplateError as exc:
            await self._note(
                spec, campaign_id, contact_id, decision, now, None, None, error=exc.message
            )
            return None
        routed = await self._router.record(
            InboundContact(
                kind=KIND_OF[channel],
                direction=Direction.OUTBOUND,
                channel=channel,
                remote_address=decision.address,
                contact_id=contact_id,
                campaign_id=campaign_id,
                subject=subject,
                body=body,
                outcome=MessageState.QUEUED.value,
                started_at=now,
                data={
                    "campaign": spec.name,
                    "template": spec.template,
                    "not_before": release.isoformat(),
                },
            )
        )
        message_id = await self._outbox.enqueue(
            OutboundMessage(
                idempotency_key=f"campaign:{campaign_id}:{contact_id}"
                + (f":{again}" if again else ""),
                channel=channel,
                to=decision.address,
                body=body,
                subject=subject,
                html_body=html,
                contact_id=contact_id,
                campaign_id=campaign_id,
                interaction_id=routed.interaction_id,
                template=spec.template,
                language=language,
                not_before=release if release > now else None,
            )
        )
        await self._note(spec, campaign_id, contact_id, decision, now, message_id, release)
        return message_id

    async def _render(
        self, spec: MessageCampaignSpec, campaign_id: int, contact_id: int, channel: Channel
    ) -> tuple[str, str, str | None, str]:
        async with self._db.session() as session:
            contact = await session.get(Contact, contact_id)
            if contact is None:
                raise NotFoundError(f"no contact {contact_id}", contact_id=contact_id)
            organisation = ""
            if contact.organisation_id is not None:
                organisation = (
                    await session.scalar(
                        select(Organisation.name).where(Organisation.id == contact.organisation_id)
                    )
                    or ""
                )
            campaign = await session.get(Campaign, campaign_id)
        rendered = self._templates.render(
            spec.template,
            contact.language,
            contact=contact_fields(contact, organisation),
            campaign=campaign_fields(campaign),
        )
        if channel is Channel.SMS:
            return "", rendered.sms or rendered.text, None, rendered.language
        return rendered.subject, rendered.text, rendered.html, rendered.language

    async def _note(
        self,
        spec: MessageCampaignSpec,
        campaign_id: int,
        contact_id: int,
        decision: Decision,
        now: datetime,
        message_id: int | None,
        release: datetime | None,
        *,
        error: str = "",
    ) -> None:
        """The decision and its reason on the contact's timeline (as `reach` leaves it)."""
        if message_id is not None:
            action = "message_held" if release is not None and release > now else "message_queued"
        else:
            action = "template_error" if error else "left_alone"
        await self._router.record(
            InboundContact(
                kind=InteractionKind.NOTE,
                direction=Direction.INTERNAL,
                channel=decision.channel,
                contact_id=contact_id,
                campaign_id=campaign_id,
                started_at=now,
                subject=f"{spec.name}: {decision.channel.value} ({decision.reason.value})",
                outcome=action,
                data={
                    "purpose": f"campaign {spec.name}",
                    "reason": decision.reason.value,
                    "channel": decision.channel.value,
                    "address": decision.address,
                    "details": decision.details,
                    "message_id": message_id,
                    "not_before": release.isoformat() if release is not None else None,
                    **({"error": error} if error else {}),
                },
            )
        )


async def message_progress(
    session: AsyncSession, campaign: Campaign, now: datetime | None = None
) -> MessageProgress:
    """Counts of decisions and outbox states for one messaging campaign."""
    now = now or datetime.now(UTC)
    out = MessageProgress(
        campaign.id,
        campaign.name,
        campaign.mode.value,
        campaign.status.value,
        campaign.fallback_template or "",
    )
    decisions = (
        await session.execute(
            select(ChannelDecision.channel, ChannelDecision.reason, func.count())
            .where(ChannelDecision.campaign_id == campaign.id)
            .group_by(ChannelDecision.channel, ChannelDecision.reason)
        )
    ).all()
    for channel, reason, n in decisions:
        out.decided += n
        if channel is Channel.NONE:
            out.skipped += n
            out.skip_reasons[reason] = out.skip_reasons.get(reason, 0) + n
    states = (
        await session.execute(
            select(OutboxMessage.state, OutboxMessage.next_attempt_at > now, func.count())
            .where(OutboxMessage.campaign_id == campaign.id)
            .group_by(OutboxMessage.state, OutboxMessage.next_attempt_at > now)
        )
    ).all()
    for state, later, n in states:
        if state is MessageState.QUEUED and later:
            out.held += n
        elif state is MessageState.QUEUED:
            out.queued += n
        elif state is MessageState.SENDING:
            out.sending += n
        elif state is MessageState.SENT:
            out.sent += n
        elif state is MessageState.DELIVERED:
            out.delivered += n
        elif state is MessageState.FAILED:
            out.failed += n
        elif state is MessageState.EXPIRED:
            out.expired += n
    # Of the failed, those a pause cancelled before they were sent.
    out.cancelled = int(
        await session.scalar(
            select(func.count()).where(
                OutboxMessage.campaign_id == campaign.id,
                OutboxMessage.state == MessageState.FAILED,
                OutboxMessage.error == CANCELLED,
            )
        )
        or 0
    )
    out.failed -= out.cancelled
    nxt = await session.scalar(
        select(func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.campaign_id == campaign.id,
            OutboxMessage.state == MessageState.QUEUED,
            OutboxMessage.next_attempt_at > now,
        )
    )
    if nxt is not None:
        if isinstance(nxt, str):  # SQLite hands an aggregate back as text
            nxt = datetime.fromisoformat(nxt)
        out.next_release = (nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)).isoformat()
    return out
