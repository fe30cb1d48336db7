"""Campaign state changes and crash recovery: what survives a restart lives in the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select

from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Lead, LiveAnswer
from contactd.db.session import Database
from contactd.dialer import repo
from contactd.dialer.campaigns import CampaignAction, next_status
from contactd.dialer.governor import AbandonGovernor
from contactd.enums import AttemptState, CallOutcome, CampaignStatus, LeadStatus

Settle = Callable[[str, CallOutcome], Awaitable[None]]


async def change_status(db: Database, name: str, action: CampaignAction) -> CampaignStatus:
    """Move a campaign along its state machine and store it; the dial loop follows the row."""
    async with db.transaction() as session:
        campaign = await repo.campaign_by_name(session, name)
        campaign.status = next_status(campaign.status, action)
        now = datetime.now(UTC)
        if campaign.status is CampaignStatus.RUNNING:
            campaign.started_at = campaign.started_at or now
        elif campaign.status in (CampaignStatus.STOPPED, CampaignStatus.FINISHED):
            campaign.stopped_at = now
        return campaign.status


async def recover_leads(
    db: Database, settle: Settle, *, before: datetime, node: str | None = None
) -> bool:
    """Settle leads left `dialing` by an earlier process from their attempts' stored fate.

    Only attempts created before `before` (this process's start) are looked at: the calls this
    process dials are settled by its own CallEnded handler. It does not depend on having seen
    the earlier process's CallEnded events: the call layer may reconcile (and publish) before
    the dialer subscribes, so the stored attempt row is the truth. Called again until it
    returns False (no lead of an earlier process is left `dialing`): an attempt still open now
    is ended by reconciliation later, and the next call settles it.

    `node`: only leads this daemon marked (or marked before nodes were named) are its to
    settle; another daemon's are settled by that daemon, whose Asterisk holds their calls.
    """
    query = select(Lead.id).where(Lead.status == LeadStatus.DIALING, Lead.updated_at < before)
    if node is not None:
        query = query.where(or_(Lead.dialing_node == node, Lead.dialing_node.is_(None)))
    async with db.session() as session:
        stuck = (await session.execute(query)).scalars().all()
    pending = False
    for lead_id in stuck:
        async with db.session() as session:
            attempt = await session.scalar(
                select(CallAttempt).where(CallAttempt.lead_id == lead_id)
                .order_by(CallAttempt.created_at.desc()).limit(1)
            )
            if attempt is not None and attempt.created_at >= before:
                continue  # dialed by this process: its CallEnded settles it
            abandoned = attempt is not None and bool(await session.scalar(
                select(LiveAnswer.abandoned).where(LiveAnswer.attempt_id == attempt.id)))
        if attempt is not None and attempt.state is AttemptState.ENDED:
            outcome = CallOutcome.ABANDONED if abandoned else (
                attempt.outcome or CallOutcome.LOST)
            await settle(attempt.id, outcome)
        elif attempt is None:
            # Crashed between marking the lead and writing the attempt: nothing was dialed
            # (the call layer stores the attempt before its Originate leaves), so the mark's
            # attempt is taken back; a lead charged for it would lose a real try, or be
            # counted as tried twice. It stays out of reach until the next_attempt_at set
            # before the crash.
            async with db.transaction() as session:
                lead = await session.get(Lead, lead_id)
                if lead is not None and lead.status is LeadStatus.DIALING:
                    lead.attempts = max(0, lead.attempts - 1)
                    lead.status = LeadStatus.RETRY if lead.attempts else LeadStatus.NEW
        else:
            pending = True  # still open: the call layer's reconciliation will end it
    return pending


PEER_LOOKBACK_S = 300.0  # another daemon's answer is stored well within this after it happened


async def seed_governor(
    db: Database, campaign_id: int, governor: AbandonGovernor
) -> dict[int, float]:
    """Rebuild the rolling abandon windows from stored live answers after a restart (every
    daemon's). Returns the rows of the last `PEER_LOOKBACK_S` (id -> time): counted already,
    so `fold_peer_answers` does not count them twice."""
    now = datetime.now(UTC)
    since = now - timedelta(seconds=max(governor.windows_s))
    async with db.session() as session:
        rows = (await session.execute(
            select(LiveAnswer.id, LiveAnswer.at, LiveAnswer.abandoned)
            .where(LiveAnswer.campaign_id == campaign_id, LiveAnswer.at >= since)
            .order_by(LiveAnswer.at)
        )).all()
    recent = now.timestamp() - PEER_LOOKBACK_S
    seen: dict[int, float] = {}
    for row_id, at, abandoned in rows:
        governor.record(at.timestamp(), abandoned=abandoned)
        if at.timestamp() >= recent:
            seen[row_id] = at.timestamp()
    return seen


async def fold_peer_answers(
    db: Database, campaign_id: int, governor: AbandonGovernor, node: str,
    seen: dict[int, float], now: float,
) -> None:
    """Count in the governor the live answers other daemons stored lately, so the abandon
    rate is held across every daemon dialling the campaign, as the regulation measures it.
    Rows are read back `PEER_LOOKBACK_S` and remembered in `seen`, so one committed late is
    still counted, and none twice. A row another daemon amends to abandoned after it was
    counted here keeps its first value in this governor until the next restart's seeding."""
    since = now - PEER_LOOKBACK_S
    async with db.session() as session:
        rows = (await session.execute(
            select(LiveAnswer.id, LiveAnswer.at, LiveAnswer.abandoned)
            .where(LiveAnswer.campaign_id == campaign_id, LiveAnswer.node != node,
                   LiveAnswer.at >= datetime.fromtimestamp(since, UTC))
        )).all()
    for row_id, at, abandoned in rows:
        if row_id not in seen:
            seen[row_id] = at.timestamp()
            governor.record(at.timestamp(), abandoned=abandoned)
    for row_id in [i for i, at in seen.items() if at < since]:
        del seen[row_id]
