"""Campaign state changes and crash recovery: what survives a restart lives in the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

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


async def recover_leads(db: Database, settle: Settle, *, before: datetime) -> bool:
    """Settle leads left `dialing` by an earlier process from their attempts' stored fate.

    Only attempts created before `before` (this process's start) are looked at: the calls this
    process dials are settled by its own CallEnded handler. It does not depend on having seen
    the earlier process's CallEnded events: the call layer may reconcile (and publish) before
    the dialer subscribes, so the stored attempt row is the truth. Called again until it
    returns False (no lead of an earlier process is left `dialing`): an attempt still open now
    is ended by reconciliation later, and the next call settles it.
    """
    async with db.session() as session:
        stuck = (await session.execute(
            select(Lead.id).where(Lead.status == LeadStatus.DIALING,
                                  Lead.updated_at < before)
        )).scalars().all()
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
            # Crashed between marking the lead and writing the attempt: nothing was dialed.
            # It stays out of reach until the next_attempt_at set before the crash.
            async with db.transaction() as session:
                lead = await session.get(Lead, lead_id)
                if lead is not None and lead.status is LeadStatus.DIALING:
                    lead.status = LeadStatus.RETRY
        else:
            pending = True  # still open: the call layer's reconciliation will end it
    return pending


async def seed_governor(db: Database, campaign_id: int, governor: AbandonGovernor) -> None:
    """Rebuild the rolling abandon windows from stored live answers after a restart."""
    since = datetime.now(UTC) - timedelta(seconds=max(governor.windows_s))
    async with db.session() as session:
        rows = (await session.execute(
            select(LiveAnswer.at, LiveAnswer.abandoned)
            .where(LiveAnswer.campaign_id == campaign_id, LiveAnswer.at >= since)
            .order_by(LiveAnswer.at)
        )).all()
    for at, abandoned in rows:
        governor.record(at.timestamp(), abandoned=abandoned)
