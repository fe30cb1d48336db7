"""What the tracker knows about one call, and the pure rule that turns it into CallEnded."""

from __future__ import annotations

from dataclasses import dataclass, field

from contactd.calls import outcome
from contactd.calls.events import AnsweredBy, CallEnded
from contactd.enums import AttemptState, CallOutcome


@dataclass(slots=True)
class CallState:
    attempt_id: str
    started: float
    expect_amd: bool
    state: AttemptState = AttemptState.DIALING
    channel: str | None = None
    primary_seen: bool = False
    primary_gone: bool = False
    answered_at: float | None = None
    answered_by: AnsweredBy | None = None
    amd_status: str | None = None
    amd_cause: str | None = None
    classified: bool = False
    cause: int | None = None
    leg_cause: int | None = None
    reason: int | None = None
    uniqueids: set[str] = field(default_factory=set)
    linkedids: set[str] = field(default_factory=set)


def ended_event(call: CallState, now: float, *, lost: bool = False) -> CallEnded:
    """The final event: a specific cause (own, then a leg's, then the Reason's) decides an
    unanswered call; an answered one ends human or machine; an end never seen is LOST."""
    cause = call.cause
    if call.answered_at is not None:
        result = outcome.answered_outcome(call.answered_by)
    else:
        if not outcome.is_specific(cause) and outcome.is_specific(call.leg_cause):
            cause = call.leg_cause
        reason_cause = outcome.REASON_CAUSE.get(call.reason) if call.reason is not None else None
        if not outcome.is_specific(cause) and reason_cause is not None:
            cause = reason_cause
        result = outcome.unanswered_outcome(cause, call.reason)
    if lost and (call.answered_at is not None or call.reason is None):
        # Its end was never seen: LOST (answered_by still tells who had picked up).
        result = CallOutcome.LOST
    end_ring = call.answered_at if call.answered_at is not None else now
    return CallEnded(
        attempt_id=call.attempt_id,
        outcome=result,
        cause=cause,
        cause_text=outcome.cause_text(cause),
        originate_reason=call.reason,
        ring_s=round(max(0.0, end_ring - call.started), 3),
        talk_s=round(max(0.0, now - call.answered_at), 3) if call.answered_at else 0.0,
        answered_by=call.answered_by,
        lost=result is CallOutcome.LOST,
    )
