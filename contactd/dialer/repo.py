"""Database reads and writes the dialer needs; adapters only, every decision is in policy.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.calls.machine import OPEN_STATES
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import Consent, Contact, DoNotCall
from contactd.db.models.dialer import Campaign, DialRefusal, Lead
from contactd.dialer.policy import SELECTION_ORDER, Refusal
from contactd.enums import (
    MESSAGE_CAMPAIGN_MODES,
    CampaignStatus,
    Channel,
    ConsentStatus,
    LeadStatus,
)
from contactd.errors import ContactdError, NotFoundError


class LeadMark(NamedTuple):
    """What `mark_dialing` changed on a lead, to put it back."""

    status: LeadStatus
    attempts: int
    next_attempt_at: datetime | None


class CampaignUnreadable(ContactdError):
    """A campaign row holds a value this version does not know (e.g. a mode written by hand
    or by a newer version): it is set aside, never dialed, and named with the value."""

    code = "campaign_unreadable"


def unreadable(name: str, exc: Exception) -> CampaignUnreadable:
    return CampaignUnreadable(
        f"campaign {name!r} cannot be used: {exc} (fix the row, e.g. its mode)", name=name)


async def campaign_by_name(session: AsyncSession, name: str) -> Campaign:
    try:
        campaign = await session.scalar(select(Campaign).where(Campaign.name == name))
    except LookupError as exc:  # an enum column holds a value the code does not define
        raise unreadable(name, exc) from None
    if campaign is None:
        raise NotFoundError(f"no campaign named {name!r}", name=name)
    return campaign


async def campaign_by_id(session: AsyncSession, campaign_id: int) -> Campaign | None:
    """The campaign, or CampaignUnreadable when a column holds an unknown value."""
    try:
        return await session.get(Campaign, campaign_id)
    except LookupError as exc:
        name = await session.scalar(select(Campaign.name).where(Campaign.id == campaign_id))
        raise unreadable(str(name), exc) from None


async def dnc_flags(
    session: AsyncSession, e164: str, campaign_id: int | None
) -> tuple[bool, bool]:
    """(on the global list, on this campaign's list), checked at dial time."""
    flags = await dnc_flags_many(session, [e164], campaign_id)
    return flags.get(e164, (False, False))


async def opted_out(session: AsyncSession, contact_id: int | None) -> bool:
    """The newest call-consent row of the contact says revoked."""
    if contact_id is None:
        return False
    return contact_id in await opted_out_many(session, {contact_id})


async def contact_zone(session: AsyncSession, contact_id: int | None) -> str | None:
    if contact_id is None:
        return None
    return (await contact_zones(session, {contact_id})).get(contact_id)


async def due_leads(
    session: AsyncSession, campaign_id: int, now: datetime, limit: int
) -> Sequence[Lead]:
    """Leads ready to dial: callbacks due first, then fresh, then recycled; by priority."""
    rank = case(
        *((Lead.status == status, i) for i, status in enumerate(SELECTION_ORDER)),
        else_=len(SELECTION_ORDER),
    )
    query = (
        select(Lead)
        .where(
            Lead.campaign_id == campaign_id,
            Lead.status.in_(SELECTION_ORDER),
            or_(Lead.next_attempt_at.is_(None), Lead.next_attempt_at <= now),
        )
        # NULLS FIRST said explicitly: SQLite sorts NULL first, PostgreSQL last by default.
        .order_by(rank, Lead.priority.desc(), Lead.next_attempt_at.asc().nulls_first(),
                  Lead.id)
        .limit(limit)
    )
    return (await session.execute(query)).scalars().all()


async def totals(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Leads per status and the attempts made: what the campaign log lines report."""
    out = {status.value: int(n) for status, n in (await session.execute(
        select(Lead.status, func.count(Lead.id)).where(Lead.campaign_id == campaign_id)
        .group_by(Lead.status))).all()}
    out["attempts"] = int(await session.scalar(
        select(func.count(CallAttempt.id)).where(CallAttempt.campaign_id == campaign_id)) or 0)
    return out


async def leads_left(session: AsyncSession, campaign_id: int) -> int:
    """Leads that may still be dialed some day (not final)."""
    count = await session.scalar(
        select(func.count(Lead.id)).where(
            Lead.campaign_id == campaign_id,
            Lead.status.in_((*SELECTION_ORDER, LeadStatus.DIALING)),
        )
    )
    return int(count or 0)


async def record_refusals(
    session: AsyncSession,
    campaign_id: int | None,
    lead_id: int | None,
    e164: str,
    refusals: Sequence[Refusal],
    at: datetime,
) -> None:
    for refusal in refusals:
        session.add(
            DialRefusal(
                campaign_id=campaign_id,
                lead_id=lead_id,
                phone_e164=e164,
                reason=refusal.code.value,
                detail=refusal.message[:300],
                at=at,
            )
        )


# Open attempts by the states they can be in, not `!= ended`: an IN list is read from the
# state index, so the count costs the calls in progress, not every attempt the campaign made.
_OPEN: Final = sorted(OPEN_STATES)


async def active_calls(session: AsyncSession, campaign_id: int | None) -> int:
    query = select(func.count(CallAttempt.id)).where(CallAttempt.state.in_(_OPEN))
    if campaign_id is not None:
        query = query.where(CallAttempt.campaign_id == campaign_id)
    return int(await session.scalar(query) or 0)


async def recent_dials(
    session: AsyncSession, campaign_id: int | None, now: datetime, seconds: float
) -> list[datetime]:
    query = select(CallAttempt.created_at).where(
        CallAttempt.created_at > now - timedelta(seconds=seconds)
    )
    if campaign_id is not None:
        query = query.where(CallAttempt.campaign_id == campaign_id)
    return list((await session.execute(query)).scalars().all())


async def lead_for_number(
    session: AsyncSession, campaign_id: int, e164: str
) -> Lead | None:
    lead: Lead | None = await session.scalar(
        select(Lead)
        .where(Lead.campaign_id == campaign_id, Lead.phone_e164 == e164)
        .order_by(Lead.id)
        .limit(1)
    )
    return lead


async def running_campaign_ids(session: AsyncSession) -> Sequence[int]:
    return (await session.execute(
        select(Campaign.id).where(Campaign.status == CampaignStatus.RUNNING,
                                  Campaign.mode.not_in(MESSAGE_CAMPAIGN_MODES))
    )).scalars().all()


async def campaign_status(session: AsyncSession, campaign_id: int) -> CampaignStatus | None:
    """The campaign's status; None when it was deleted."""
    status: CampaignStatus | None = await session.scalar(
        select(Campaign.status).where(Campaign.id == campaign_id))
    return status


async def dialable_leads(session: AsyncSession, lead_ids: Sequence[int]) -> list[Lead]:
    """The leads, read afresh, that may still be dialed (another path may have moved them),
    in the order asked: one statement for a tick's claim.

    On PostgreSQL the rows are locked until the transaction ends, and a row another daemon has
    locked is skipped (`FOR UPDATE SKIP LOCKED`): of two daemons reaching for one lead, one
    claims it and the other moves on; once the claim commits the lead is `dialing` and no
    longer matches. SQLite has one writer at a time and ignores the clause."""
    if not lead_ids:
        return []
    found = {lead.id: lead for lead in (await session.scalars(
        select(Lead).where(Lead.id.in_(lead_ids), Lead.status.in_(SELECTION_ORDER))
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True))).all()}
    return [found[i] for i in lead_ids if i in found]


async def dnc_flags_many(
    session: AsyncSession, numbers: Sequence[str], campaign_id: int | None
) -> dict[str, tuple[bool, bool]]:
    """`dnc_flags` of several numbers in one statement; a number on no list is absent."""
    flags: dict[str, tuple[bool, bool]] = {}
    if not numbers:
        return flags
    rows = await session.execute(select(DoNotCall.e164, DoNotCall.campaign_id)
                                 .where(DoNotCall.e164.in_(set(numbers))))
    for e164, listed_for in rows:
        on_global, on_campaign = flags.get(e164, (False, False))
        flags[e164] = (on_global or listed_for is None,
                       on_campaign or (campaign_id is not None and listed_for == campaign_id))
    return flags


async def contact_zones(session: AsyncSession, contact_ids: set[int]) -> dict[int, str | None]:
    if not contact_ids:
        return {}
    rows = await session.execute(
        select(Contact.id, Contact.timezone).where(Contact.id.in_(contact_ids)))
    return {contact_id: zone for contact_id, zone in rows}


async def opted_out_many(session: AsyncSession, contact_ids: set[int]) -> set[int]:
    """The contacts whose newest call-consent row says revoked (`opted_out` for several)."""
    if not contact_ids:
        return set()
    rows = await session.execute(
        select(Consent.contact_id, Consent.status)
        .where(Consent.contact_id.in_(contact_ids), Consent.channel == Channel.CALL)
        .order_by(Consent.contact_id, Consent.recorded_at.desc(), Consent.id.desc()))
    newest: dict[int, ConsentStatus] = {}
    for contact_id, status in rows:
        newest.setdefault(contact_id, status)
    return {c for c, status in newest.items() if status is ConsentStatus.REVOKED}


def mark_dialing(lead: Lead, not_before: datetime, node: str | None = None) -> LeadMark:
    """Mark the lead `dialing` by `node` with one more attempt, out of reach until
    `not_before`: stored before the Originate, so a restart can never re-dial it early.
    Returns what it was."""
    previous = LeadMark(lead.status, lead.attempts, lead.next_attempt_at)
    lead.status = LeadStatus.DIALING
    lead.attempts += 1
    lead.next_attempt_at = not_before
    lead.dialing_node = node
    return previous


async def joint_calls(session: AsyncSession, campaign_id: int) -> int:
    """The campaign's leads being dialled by any daemon, counted under a lock on the campaign
    row (PostgreSQL) that is held until this claim commits: two daemons claiming at once are
    counted one after the other, so together they never pass the campaign's cap. A lead is
    `dialing` from its claim (before the Originate) until its call is settled."""
    await session.execute(
        select(Campaign.id).where(Campaign.id == campaign_id).with_for_update())
    count = await session.scalar(select(func.count(Lead.id)).where(
        Lead.campaign_id == campaign_id, Lead.status == LeadStatus.DIALING))
    return int(count or 0)


async def node_load(
    session: AsyncSession, campaign_id: int, node: str, since: datetime
) -> tuple[int, int, int]:
    """A campaign's calls still open as stored, this node's and other daemons', and the calls
    other daemons started since `since` (the rate window)."""
    per_node = (await session.execute(
        select(CallAttempt.node, func.count(CallAttempt.id))
        .where(CallAttempt.campaign_id == campaign_id, CallAttempt.state.in_(_OPEN),
               CallAttempt.node.is_not(None))
        .group_by(CallAttempt.node))).tuples().all()
    own = sum(n for name, n in per_node if name == node)
    others = sum(n for name, n in per_node if name != node)
    started = await session.scalar(
        select(func.count(CallAttempt.id)).where(
            CallAttempt.campaign_id == campaign_id, CallAttempt.created_at > since,
            CallAttempt.node != node))
    return int(own or 0), int(others or 0), int(started or 0)


async def unmark_dialing(session: AsyncSession, lead_id: int, previous: LeadMark) -> None:
    """Put a lead back as it was before `mark_dialing` (nothing left the building)."""
    lead = await session.get(Lead, lead_id)
    if lead is not None:
        lead.status, lead.attempts, lead.next_attempt_at = previous


async def set_callback(
    session: AsyncSession, lead_id: int, status: LeadStatus, at: datetime | None,
    user_id: int | None,
) -> None:
    lead = await session.get(Lead, lead_id)
    if lead is None:
        raise NotFoundError(f"no lead {lead_id}", lead_id=lead_id)
    lead.status = status
    lead.callback_at = at
    lead.next_attempt_at = at
    lead.callback_user_id = user_id
