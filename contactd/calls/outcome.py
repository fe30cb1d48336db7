"""Pure mapping from what Asterisk said (Q.850 cause, OriginateResponse Reason, AMD) to outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from contactd.calls.events import AnsweredBy
from contactd.enums import CallOutcome

OC = CallOutcome

# OriginateResponse Reason (Asterisk's AST_CONTROL_* numbers).
REASON_TEXT: Final[Mapping[int, str]] = {
    0: "failed",
    1: "hung up",
    3: "no answer",
    4: "answered",
    5: "busy",
    8: "congestion",
}
REASON_ANSWERED: Final = 4

CAUSE_TEXT: Final[Mapping[int, str]] = {
    0: "not defined",
    1: "unallocated number",
    3: "no route to destination",
    16: "normal clearing",
    17: "user busy",
    18: "no user responding",
    19: "no answer",
    20: "subscriber absent",
    21: "call rejected",
    22: "number changed",
    27: "destination out of order",
    28: "invalid number format",
    34: "no circuit available",
    38: "network out of order",
    41: "temporary failure",
    42: "switching equipment congestion",
    44: "requested channel not available",
    127: "interworking",
}

_CAUSE_OUTCOME: Final[Mapping[int, CallOutcome]] = {
    1: OC.UNALLOCATED,
    3: OC.UNALLOCATED,
    22: OC.UNALLOCATED,
    28: OC.UNALLOCATED,
    17: OC.BUSY,
    18: OC.NO_ANSWER,
    19: OC.NO_ANSWER,
    20: OC.NO_ANSWER,
    21: OC.REJECTED,
    27: OC.FAILED,
    34: OC.CONGESTION,
    38: OC.CONGESTION,
    41: OC.CONGESTION,
    42: OC.CONGESTION,
    44: OC.CONGESTION,
}

_REASON_OUTCOME: Final[Mapping[int, CallOutcome]] = {
    0: OC.FAILED,
    1: OC.REJECTED,
    3: OC.NO_ANSWER,
    5: OC.BUSY,
    8: OC.CONGESTION,
}

# A cause that a Reason can stand in for when no specific Hangup cause was seen.
REASON_CAUSE: Final[Mapping[int, int]] = {3: 19, 5: 17, 8: 34}

# Dial() DIALSTATUS, as DialEnd reports it for a leg placed inside the call.
DIALSTATUS_CAUSE: Final[Mapping[str, int]] = {
    "BUSY": 17,
    "NOANSWER": 19,
    "CONGESTION": 34,
    "CHANUNAVAIL": 27,
}

UNSPECIFIC_CAUSES: Final = frozenset({0, 16, 127})


def is_specific(cause: int | None) -> bool:
    return cause is not None and cause not in UNSPECIFIC_CAUSES


def cause_text(cause: int | None) -> str:
    if cause is None:
        return ""
    return CAUSE_TEXT.get(cause, f"cause {cause}")


def unanswered_outcome(cause: int | None, reason: int | None) -> CallOutcome:
    """A specific Q.850 cause wins; else the Originate Reason; else the call failed."""
    if cause is not None and cause in _CAUSE_OUTCOME:
        return _CAUSE_OUTCOME[cause]
    if reason is not None and reason in _REASON_OUTCOME:
        return _REASON_OUTCOME[reason]
    return OC.FAILED


def answered_outcome(answered_by: AnsweredBy | None) -> CallOutcome:
    # An unsure verdict counts as a person: the abandon rules must protect people first.
    return OC.MACHINE if answered_by is AnsweredBy.MACHINE else OC.HUMAN


def amd_verdict(status: str | None) -> AnsweredBy:
    normalized = (status or "").strip().upper()
    if normalized == "HUMAN":
        return AnsweredBy.HUMAN
    if normalized == "MACHINE":
        return AnsweredBy.MACHINE
    return AnsweredBy.UNKNOWN
