"""Outcome mapping: a specific Q.850 cause wins, then the Originate Reason."""

from __future__ import annotations

import pytest

from contactd.calls import outcome
from contactd.calls.events import AnsweredBy
from contactd.enums import CallOutcome as O


@pytest.mark.parametrize(
    ("cause", "reason", "expected"),
    [
        (17, 5, O.BUSY),
        (None, 5, O.BUSY),
        (16, 3, O.NO_ANSWER),
        (19, None, O.NO_ANSWER),
        (1, 0, O.UNALLOCATED),
        (34, 8, O.CONGESTION),
        (0, 8, O.CONGESTION),
        (21, 1, O.REJECTED),
        (16, 1, O.REJECTED),
        (27, 0, O.FAILED),
        (None, None, O.FAILED),
        (16, 0, O.FAILED),
    ],
)
def test_unanswered(cause: int | None, reason: int | None, expected: O) -> None:
    assert outcome.unanswered_outcome(cause, reason) is expected


def test_answered_and_amd() -> None:
    assert outcome.answered_outcome(AnsweredBy.MACHINE) is O.MACHINE
    assert outcome.answered_outcome(AnsweredBy.UNKNOWN) is O.HUMAN
    assert outcome.answered_outcome(None) is O.HUMAN
    assert outcome.amd_verdict(" machine ") is AnsweredBy.MACHINE
    assert outcome.amd_verdict("HUMAN") is AnsweredBy.HUMAN
    assert outcome.amd_verdict("HANGUP") is AnsweredBy.UNKNOWN
    assert outcome.cause_text(17) == "user busy" and outcome.cause_text(99) == "cause 99"
    assert not outcome.is_specific(16) and outcome.is_specific(17)
