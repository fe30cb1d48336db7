"""CallAbandoned from UserEvent ContactdAbandon (contactd-abandon): found by the channel or the
Attempt header, once per attempt, after CallAnswered and before CallEnded; stray ones ignored."""

from __future__ import annotations

from typing import Any

from contactd.calls.events import CallAbandoned, CallAnswered, CallEnded, CallEvent
from contactd.calls.tracker import CallTracker
from contactd.enums import CallOutcome

A = "att-ab-1"
P1 = "Local/20012@contactd-test-world-00000001;1"


def ev(name: str, **headers: Any) -> dict[str, str]:
    return {"Event": name, **{k: str(v) for k, v in headers.items()}}


def chan(uid: str = A, state: int = 6, name: str = P1, linkedid: str = A) -> dict[str, Any]:
    return {"Channel": name, "Uniqueid": uid, "Linkedid": linkedid, "ChannelState": state}


def user(name: str, **headers: Any) -> dict[str, str]:
    return ev("UserEvent", UserEvent=name, **headers)


def answered() -> list[dict[str, str]]:
    return [
        ev("Newchannel", **chan(state=0)),
        ev("Newstate", **chan(state=6)),
        ev("OriginateResponse", ActionID=A, Response="Success", Reason=4, Uniqueid=A),
        user("ContactdAnswered", Attempt=A, **chan()),
        user("ContactdAMD", Attempt=A, Status="HUMAN", Cause="HUMAN-801-800", **chan()),
    ]


def ended() -> list[dict[str, str]]:
    return [
        user("ContactdHangup", Attempt=A, Cause=16, Amd="HUMAN", **chan()),
        ev("Hangup", Cause=16, **chan()),
    ]


def run(events: list[dict[str, Any]], *, expect_amd: bool = True) -> list[CallEvent]:
    tracker = CallTracker()
    tracker.watch(A, started=100.0, expect_amd=expect_amd)
    out: list[CallEvent] = []
    for i, event in enumerate(events):
        out += tracker.feed(event, 100.0 + i)
    assert tracker.malformed == 0
    return out


def kinds(events: list[CallEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_queue_timeout_abandon_comes_between_answer_and_end() -> None:
    abandon = user("ContactdAbandon", Attempt=A, Status="SUCCESS", **chan())
    out = run([*answered(), abandon, *ended()])
    assert kinds(out) == ["CallAnswered", "CallAbandoned", "CallEnded"]
    event = out[1]
    assert isinstance(event, CallAbandoned)
    assert (event.attempt_id, event.prompt_status) == (A, "SUCCESS")
    end = out[2]
    # The call layer still reports what happened on the line: a person, hung up normally.
    assert isinstance(end, CallEnded) and (end.outcome, end.cause) == (CallOutcome.HUMAN, 16)


def test_found_by_the_attempt_header_alone() -> None:
    # A channel contactd does not know (no Uniqueid/Linkedid link), but the Attempt header.
    abandon = user("ContactdAbandon", Attempt=A, Status="FAILED",
                   **chan(uid="x-9", linkedid="x-9", name="PJSIP/other-00000009"))
    out = run([*answered(), abandon, *ended()])
    assert kinds(out) == ["CallAnswered", "CallAbandoned", "CallEnded"]
    assert isinstance(out[1], CallAbandoned) and out[1].prompt_status == "FAILED"


def test_found_by_the_linkedid_without_an_attempt_header() -> None:
    abandon = user("ContactdAbandon", **chan(uid="other-half", name="Local/x;2"))
    out = run([*answered(), abandon, *ended()])
    assert kinds(out) == ["CallAnswered", "CallAbandoned", "CallEnded"]
    assert isinstance(out[1], CallAbandoned) and out[1].prompt_status == ""


def test_at_most_once_per_attempt() -> None:
    abandon = user("ContactdAbandon", Attempt=A, Status="SUCCESS", **chan())
    out = run([*answered(), abandon, dict(abandon), abandon, *ended()])
    assert kinds(out) == ["CallAnswered", "CallAbandoned", "CallEnded"]


def test_abandon_before_any_answer_event_still_reports_the_answer_first() -> None:
    # Out of order (AMD verdict and Up state not seen yet): the abandon proves the answer.
    abandon = user("ContactdAbandon", Attempt=A, Status="SUCCESS", **chan())
    out = run([ev("Newchannel", **chan(state=0)), abandon, *ended()])
    assert kinds(out) == ["CallAnswered", "CallAbandoned", "CallEnded"]
    assert isinstance(out[0], CallAnswered)
    end = out[2]
    assert isinstance(end, CallEnded) and end.outcome is CallOutcome.HUMAN


def test_unknown_malformed_and_late_abandons_are_ignored() -> None:
    stray: list[dict[str, Any]] = [
        user("ContactdAbandon", Attempt="not-watched", Status="SUCCESS",
             **chan(uid="u-7", linkedid="u-7")),
        user("ContactdAbandon"),  # no channel, no attempt
        {"Event": "UserEvent", "UserEvent": "ContactdAbandon", "Attempt": ["a", "b"]},
        {"Event": "UserEvent", "UserEvent": "ContactdAbandon", "Uniqueid": 42, "Linkedid": None},
        user("ContactdAbandonX", Attempt=A, **chan()),  # another name
    ]
    out = run([*answered(), *stray, *ended()])
    assert kinds(out) == ["CallAnswered", "CallEnded"]
    # After CallEnded the attempt is finished: a late abandon produces nothing.
    tracker = CallTracker()
    tracker.watch(A, started=100.0, expect_amd=True)
    for i, event in enumerate([*answered(), *ended()]):
        tracker.feed(event, 100.0 + i)
    late = user("ContactdAbandon", Attempt=A, Status="SUCCESS", **chan())
    assert tracker.feed(late, 120.0) == []
    assert tracker.malformed == 0


def test_without_amd_the_answer_is_unknown_then_abandoned() -> None:
    events = [e for e in answered() if e.get("UserEvent") != "ContactdAMD"]
    abandon = user("ContactdAbandon", Attempt=A, Status="SUCCESS", **chan())
    out = run([*events, abandon, *ended()], expect_amd=False)
    assert kinds(out) == ["CallAnswered", "CallAbandoned", "CallEnded"]
