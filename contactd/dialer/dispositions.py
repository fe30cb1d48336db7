"""What an agent says a call came to, and what that does to the lead.

A disposition either ends the lead, sends it back through the campaign's retry rules as the
call outcome it names (busy, no answer, machine: the same delays and attempt limit as the
dialer's own outcomes), schedules a callback at the time the agent gave, or puts the number
on the do-not-call list. `decide` is pure; `apply_disposition` stores the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.config import DialerSettings, DispositionName
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import DoNotCall
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.explain import retry_rules_for
from contactd.dialer.policy import LeadDecision, RetryRules, after_outcome, schedule_callback
from contactd.enums import CallOutcome, LeadStatus
from contactd.errors import ConflictError, NotFoundError, ValidationError

KNOWN: Final[tuple[str, ...]] = get_args(DispositionName)


class Effect(StrEnum):
    FINAL = "final"  # the lead is done
    RETRY = "retry"  # the campaign's retry rule for `outcome`
    CALLBACK = "callback"  # due again at the agent's time
    DO_NOT_CALL = "do_not_call"


@dataclass(frozen=True)
class Disposition:
    name: str
    effect: Effect
    outcome: CallOutcome | None = None  # the retry rule a RETRY disposition follows


TABLE: Final[dict[str, Disposition]] = {
    d.name: d for d in (
        Disposition("sale", Effect.FINAL),
        Disposition("not_interested", Effect.FINAL),
        Disposition("wrong_number", Effect.FINAL),
        Disposition("callback", Effect.CALLBACK),
        Disposition("no_answer", Effect.RETRY, CallOutcome.NO_ANSWER),
        Disposition("busy", Effect.RETRY, CallOutcome.BUSY),
        Disposition("machine", Effect.RETRY, CallOutcome.MACHINE),
        Disposition("do_not_call", Effect.DO_NOT_CALL),
    )
}
assert set(TABLE) == set(KNOWN), "config.DispositionName and TABLE must name the same set"


def campaign_dispositions(campaign: Campaign, dialer: DialerSettings) -> list[Disposition]:
    """The campaign's buttons, in its order; [dialer] dispositions when it names none."""
    names = campaign.dispositions or list(dialer.dispositions)
    return [TABLE[name] for name in names if name in TABLE]


def decide(
    disposition: Disposition, attempts: int, rules: RetryRules, now: datetime,
    callback_at: datetime | None,
) -> LeadDecision:
    if disposition.effect is Effect.CALLBACK:
        if callback_at is None:
            raise ValidationError("a callback needs a date and time", field="callback_at")
        if callback_at.tzinfo is None:
            raise ValidationError("the callback time needs a time zone", field="callback_at")
        return schedule_callback(callback_at, now)
    if disposition.effect is Effect.RETRY and disposition.outcome is not None:
        return after_outcome(disposition.outcome, attempts, rules, now)
    if disposition.effect is Effect.DO_NOT_CALL:
        return LeadDecision(LeadStatus.DNC)
    return LeadDecision(LeadStatus.DONE)


@dataclass(frozen=True)
class Disposed:
    lead_id: int
    status: LeadStatus
    next_attempt_at: datetime | None


async def apply_disposition(
    db: Database, dialer: DialerSettings, attempt_id: str, name: str, *, user_id: int | None,
    now: datetime, callback_at: datetime | None = None,
) -> Disposed:
    """Store the agent's disposition on the attempt and move its lead accordingly."""
    async with db.transaction() as session:
        attempt = await session.get(CallAttempt, attempt_id)
        if attempt is None or attempt.lead_id is None:
            raise NotFoundError(f"no campaign call {attempt_id}", code="attempt_not_found")
        lead = await session.get(Lead, attempt.lead_id)
        campaign = await session.get(Campaign, lead.campaign_id) if lead else None
        if lead is None or campaign is None:
            raise NotFoundError(f"the lead of call {attempt_id} is gone", code="lead_not_found")
        allowed = {d.name: d for d in campaign_dispositions(campaign, dialer)}
        if name not in allowed:
            raise ValidationError(
                f"{name!r} is not a disposition of campaign {campaign.name}; "
                f"choose one of {', '.join(allowed)}", field="disposition")
        if lead.status is LeadStatus.DIALING:
            raise ConflictError("the call has not ended yet", code="call_not_ended")
        decision = decide(allowed[name], lead.attempts, retry_rules_for(campaign, dialer), now,
                          callback_at)
        _store(attempt, lead, name, decision, user_id)
        if decision.status is LeadStatus.DNC:
            await _never_again(session, lead.phone_e164)
        return Disposed(lead.id, lead.status, lead.next_attempt_at)


def _store(attempt: CallAttempt, lead: Lead, name: str, decision: LeadDecision,
           user_id: int | None) -> None:
    attempt.disposition = name
    if attempt.agent_id is None:
        attempt.agent_id = user_id
    lead.status = decision.status
    lead.next_attempt_at = decision.next_attempt_at
    if decision.status is LeadStatus.CALLBACK:
        lead.callback_at = decision.next_attempt_at
        lead.callback_user_id = user_id


async def _never_again(session: AsyncSession, e164: str) -> None:
    """The person asked not to be called: the number goes on the global do-not-call list."""
    listed = await session.scalar(select(DoNotCall.id).where(
        DoNotCall.e164 == e164, DoNotCall.campaign_id.is_(None)))
    if listed is None:
        session.add(DoNotCall(e164=e164, campaign_id=None, reason="asked an agent",
                              source="agent-disposition"))
