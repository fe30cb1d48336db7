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
    # The message or flow the dialplan ran for the person (ContactdMessage, or AstDB after a
    # crash): SUCCESS, FAILED, STARTED (cut while playing), None (never told).
    message_status: str | None = None
    message_reason: str = ""
    last_seen: float | None = None  # the last event of this call (a lost call's talk ends here)
    # Set when contactd itself hung the call up while it rang (`CallService.end_unanswered`):
    # when, and why (the caller's words), for the outcome's detail.
    ended_unanswered_at: float | None = None
    ended_unanswered_why: str = ""
    uniqueids: set[str] = field(default_factory=set)
    linkedids: set[str] = field(default_factory=set)


def ended_event(call: CallState, now: float, *, lost: bool = False) -> CallEnded:
    """The final event: a specific cause (own, then a leg's, then the Reason's) decides an
    unanswered call; an answered one ends human or machine, or FAILED when its message did not
    play. What stays unknown is LOST: an end never seen (unless what was seen before decides:
    a machine, a message heard), or an answer whose expected AMD verdict never came."""
    cause = call.cause
    detail = ""
    if call.answered_at is not None:
        result = outcome.answered_outcome(call.answered_by)
        if call.expect_amd and call.amd_status is None:
            result = CallOutcome.LOST  # cut during AMD: nobody knows who answered
            detail = "answered, cut before the AMD verdict"
        elif result is CallOutcome.HUMAN and call.message_status == "FAILED":
            result = CallOutcome.FAILED
            detail = f"message not played: {call.message_reason or 'FAILED'}"
        if call.ended_unanswered_at is not None:
            # Answered in the instant before contactd's hang-up reached it: said, not hidden.
            detail = "; ".join(filter(None, (detail, "answered just as contactd hung it up "
                                                     f"({call.ended_unanswered_why})")))
    else:
        if not outcome.is_specific(cause) and outcome.is_specific(call.leg_cause):
            cause = call.leg_cause
        reason_cause = outcome.REASON_CAUSE.get(call.reason) if call.reason is not None else None
        if not outcome.is_specific(cause) and reason_cause is not None:
            cause = reason_cause
        result = outcome.unanswered_outcome(cause, call.reason)
        if call.ended_unanswered_at is not None:
            rang = call.ended_unanswered_at - call.started
            detail = f"ended unanswered after {rang:.0f} s of ringing: {call.ended_unanswered_why}"
    heard = call.message_status in ("SUCCESS", "STARTED")
    if lost and call.answered_at is None and call.reason is None:
        result = CallOutcome.LOST
    elif lost and result is CallOutcome.HUMAN and not heard:
        # Its end was never seen and nothing says the person heard anything: unknown.
        result = CallOutcome.LOST
        detail = detail or "answered, end never seen, message not known to have played"
    end_ring = call.answered_at if call.answered_at is not None else now
    # A lost call's talk ends at its last event seen, not at reconciliation (unknown: 0).
    end_talk = (call.last_seen or 0.0) if lost else now
    return CallEnded(
        attempt_id=call.attempt_id,
        outcome=result,
        cause=cause,
        cause_text=outcome.cause_text(cause),
        originate_reason=call.reason,
        ring_s=round(max(0.0, end_ring - call.started), 3),
        talk_s=round(max(0.0, end_talk - call.answered_at), 3) if call.answered_at else 0.0,
        answered_by=call.answered_by,
        lost=lost or result is CallOutcome.LOST,
        message_status=call.message_status,
        detail=detail,
    )
