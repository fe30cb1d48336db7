"""The lead settler: a call's end moves its lead by the retry rules, and may send a fallback.

Only a lead still `dialing` moves, one settlement at a time: the CallEnded handler and the
recovery sweep may both reach the same lead, and only the first one settles it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from contactd.calls.events import CallEnded
from contactd.config import DialerSettings
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.abandons import AbandonAccountant
from contactd.dialer.agents import AgentBoard
from contactd.dialer.explain import retry_rules_for
from contactd.dialer.policy import after_outcome
from contactd.dialer.runtime import Runtimes
from contactd.enums import CallOutcome, LeadStatus

log = logging.getLogger(__name__)


class FallbackSender(Protocol):
    async def fallback(
        self,
        contact_id: int,
        *,
        idempotency_key: str,
        campaign_id: int | None = None,
        failed_call_attempts: int = 0,
        last_outcome: CallOutcome | None = None,
    ) -> Any: ...


class LeadSettler:
    def __init__(
        self,
        db: Database,
        dialer: DialerSettings,
        runtimes: Runtimes,
        agents: AgentBoard,
        accountant: AbandonAccountant,
        fallback: FallbackSender | None,
        *,
        clock: Callable[[], float],
        wake: Callable[[], None],
    ) -> None:
        self.db, self.dialer, self.runtimes, self.agents = db, dialer, runtimes, agents
        self.accountant, self.fallback, self.clock = accountant, fallback, clock
        self._wake = wake
        self._settling = asyncio.Lock()  # one lead settlement at a time: exactly once

    async def on_ended(self, event: CallEnded) -> None:
        now_s = self.clock()
        attempt_id = event.attempt_id
        rt = self.runtimes.of_attempt(attempt_id)
        abandoned = self.accountant.abandoned_elsewhere(attempt_id)
        if rt is not None:
            abandoned = await self.accountant.call_ended(rt, attempt_id, now_s)
        else:
            self.runtimes.ended_early(attempt_id, now_s)
        self.agents.call_ended(attempt_id, now_s)
        if event.detail and event.answered_by is not None:
            # An answered call ended FAILED (message not played) or unknown, or answered as
            # the dialer hung it up. (An unanswered one's detail is stored, nothing to warn.)
            log.warning("answered call not completed", extra={
                "attempt_id": attempt_id, "outcome": event.outcome.value,
                "reason": event.detail, "message_status": event.message_status})
        await self.settle_lead(attempt_id, CallOutcome.ABANDONED if abandoned else event.outcome)
        self._wake()

    async def settle_lead(self, attempt_id: str, outcome: CallOutcome) -> None:
        """Apply the retry rules to the attempt's lead; queue a fallback message if they say so."""
        async with self._settling:
            await self._settle_lead(attempt_id, outcome)

    async def _settle_lead(self, attempt_id: str, outcome: CallOutcome) -> None:
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            attempt = await session.get(CallAttempt, attempt_id)
            if attempt is None or attempt.lead_id is None:
                return
            lead = await session.get(Lead, attempt.lead_id)
            campaign = await session.get(Campaign, lead.campaign_id) if lead else None
            if lead is None or campaign is None or lead.status is not LeadStatus.DIALING:
                return
            rules = retry_rules_for(campaign, self.dialer)
            # Without a contact there is no address to fall back to.
            fallback = campaign.fallback_channel if lead.contact_id is not None else None
            decision = after_outcome(outcome, lead.attempts, rules, now, fallback)
            lead.status = decision.status
            lead.last_outcome = outcome
            lead.next_attempt_at = decision.next_attempt_at
            lead_id, contact_id, attempts = lead.id, lead.contact_id, lead.attempts
            campaign_id = campaign.id
        if decision.fallback is not None and contact_id is not None and self.fallback:
            try:
                await self.fallback.fallback(
                    contact_id, idempotency_key=f"dialer-fallback:{lead_id}:{attempts}",
                    campaign_id=campaign_id, failed_call_attempts=attempts, last_outcome=outcome,
                )
            except Exception:
                log.exception("fallback message failed", extra={
                    "lead_id": lead_id, "contact_id": contact_id, "campaign_id": campaign_id,
                    "attempt_id": attempt_id})
