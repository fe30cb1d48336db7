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


async def recover_leads(db: Database, settle: Settle) -> None:
    """Settle leads left `dialing` by a previous run from their attempts' stored fate."""
    async with db.session() as session:
        stuck = (await session.execute(
            select(Lead.id).where(Lead.status == LeadStatus.DIALING)
        )).scalars().all()
    for lead_id in stuck:
        async with db.session() as session:
            attempt = await session.scalar(
                select(CallAttempt).where(CallAttempt.lead_id == lead_id)
                .order_by(CallAttempt.created_at.desc()).limit(1)
            )
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
                if lead is not None:
                    lead.status = LeadStatus.RETRY
        # An open attempt: the call layer's reconciliation publishes its CallEnded.


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
