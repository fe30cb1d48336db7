from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contactd.crm.policy import InteractionFacts, follow_ups
from contactd.enums import Direction, InteractionKind, TaskPriority, TaskSource

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def facts(**kw: object) -> InteractionFacts:
    base: dict[str, object] = {"kind": InteractionKind.CALL, "direction": Direction.INBOUND,
                               "outcome": "answered"}
    base.update(kw)
    return InteractionFacts(**base)  # type: ignore[arg-type]


def test_missed_inbound_call_asks_for_a_call_back() -> None:
    [task] = follow_ups(facts(outcome="missed"), NOW, "Ann")
    assert task.source is TaskSource.MISSED_CALL and task.priority is TaskPriority.HIGH
    assert task.due_at == NOW + timedelta(hours=1) and task.remind_at is not None
    assert follow_ups(facts(outcome="answered"), NOW, "Ann") == []


def test_requested_callback_is_due_when_asked() -> None:
    at = NOW + timedelta(days=1)
    [task] = follow_ups(facts(callback_at=at, skill="fr"), NOW, "Ann")
    assert task.source is TaskSource.CALLBACK and task.due_at == at and task.skill == "fr"


def test_ivr_intake_with_a_request_makes_a_task() -> None:
    [task] = follow_ups(facts(kind=InteractionKind.IVR_SESSION, subject="invoice question"),
                        NOW, "Ann")
    assert task.source is TaskSource.IVR_INTAKE and "invoice question" in task.title
    assert follow_ups(facts(kind=InteractionKind.IVR_SESSION), NOW, "Ann") == []


def test_a_caller_who_hung_up_in_the_ivr_is_a_missed_call_not_a_request() -> None:
    [task] = follow_ups(facts(kind=InteractionKind.IVR_SESSION, subject="IVR intake",
                              outcome="abandoned"), NOW, "Ann")
    assert task.source is TaskSource.MISSED_CALL and task.title == "Missed call from Ann"
    assert task.priority is TaskPriority.HIGH


def test_campaign_outcomes() -> None:
    outbound = {"direction": Direction.OUTBOUND, "campaign_id": 7}
    [task] = follow_ups(facts(outcome="interested", **outbound), NOW, "Ann")
    assert task.source is TaskSource.CAMPAIGN
    assert follow_ups(facts(outcome="machine", **outbound), NOW, "Ann") == []


def test_inbound_messages_need_a_reply() -> None:
    [task] = follow_ups(facts(kind=InteractionKind.SMS), NOW, "+4930123")
    assert task.source is TaskSource.MESSAGE and "+4930123" in task.title
