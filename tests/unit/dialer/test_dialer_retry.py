"""What a lead becomes after each outcome: retries by outcome, fallbacks, callbacks, order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contactd.dialer.policy import (
    MachineAction,
    RetryRules,
    after_outcome,
    schedule_callback,
)
from contactd.enums import CallOutcome, Channel, LeadStatus

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
RULES = RetryRules(busy_s=300, no_answer_s=3600, machine_s=7200, failed_s=900, max_attempts=3)


@pytest.mark.parametrize(
    ("outcome", "delay"),
    [
        (CallOutcome.BUSY, 300),
        (CallOutcome.NO_ANSWER, 3600),
        (CallOutcome.REJECTED, 3600),
        (CallOutcome.MACHINE, 7200),
        (CallOutcome.CONGESTION, 900),
        (CallOutcome.FAILED, 900),
        (CallOutcome.LOST, 3600),
        (CallOutcome.ABANDONED, 72 * 3600),
    ],
)
def test_retry_delay_per_outcome(outcome: CallOutcome, delay: int) -> None:
    decision = after_outcome(outcome, 1, RULES, NOW)
    assert decision.status is LeadStatus.RETRY
    assert decision.next_attempt_at == NOW + timedelta(seconds=delay)


def test_busy_comes_back_sooner_than_no_answer() -> None:
    busy = after_outcome(CallOutcome.BUSY, 1, RetryRules(), NOW).next_attempt_at
    silent = after_outcome(CallOutcome.NO_ANSWER, 1, RetryRules(), NOW).next_attempt_at
    assert busy is not None and silent is not None and busy < silent


def test_a_person_answering_finishes_the_lead() -> None:
    assert after_outcome(CallOutcome.HUMAN, 1, RULES, NOW).status is LeadStatus.DONE


def test_last_attempt_exhausts_or_falls_back() -> None:
    assert after_outcome(CallOutcome.NO_ANSWER, 3, RULES, NOW).status is LeadStatus.EXHAUSTED
    fb = after_outcome(CallOutcome.NO_ANSWER, 3, RULES, NOW, Channel.SMS)
    assert (fb.status, fb.fallback) == (LeadStatus.FALLBACK, Channel.SMS)


def test_machine_leaves_a_message_or_falls_back() -> None:
    leave = RetryRules(machine_action=MachineAction.LEAVE_MESSAGE)
    decision = after_outcome(CallOutcome.MACHINE, 1, leave, NOW)
    assert (decision.status, decision.leave_message) == (LeadStatus.DONE, True)
    fall = RetryRules(machine_action=MachineAction.FALLBACK)
    decision = after_outcome(CallOutcome.MACHINE, 1, fall, NOW, Channel.EMAIL)
    assert (decision.status, decision.fallback) == (LeadStatus.FALLBACK, Channel.EMAIL)
    # No usable channel: try again later for a person.
    assert after_outcome(CallOutcome.MACHINE, 1, fall, NOW, None).status is LeadStatus.RETRY


def test_unallocated_number_is_never_retried() -> None:
    assert after_outcome(CallOutcome.UNALLOCATED, 1, RULES, NOW).status is LeadStatus.EXHAUSTED


def test_stored_rules_overlay_the_defaults() -> None:
    rules = RetryRules.from_mapping({"busy": 60, "max_attempts": 5,
                                     "machine_action": "fallback"}, RULES)
    assert (rules.busy_s, rules.no_answer_s, rules.max_attempts) == (60, 3600, 5)
    assert rules.machine_action is MachineAction.FALLBACK


def test_callback_is_due_at_its_time() -> None:
    at = NOW + timedelta(hours=3)
    decision = schedule_callback(at, NOW)
    assert (decision.status, decision.next_attempt_at) == (LeadStatus.CALLBACK, at)
    with pytest.raises(ValueError):
        schedule_callback(datetime(2026, 6, 1, 15, 0), NOW)
