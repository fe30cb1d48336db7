"""A ringing call contactd hangs up (CallTracker.end_unanswered): only while unanswered; its
end, in the order Asterisk 22 sent it (Hangup Cause 19 on ;1, OriginateResponse Reason 0,
Hangup on ;2), is NO_ANSWER with why in `detail`; an answer in the instant before is said."""

from __future__ import annotations

from typing import Any

from contactd.calls.events import CallEnded, CallEvent
from contactd.calls.tracker import CallTracker
from contactd.enums import CallOutcome

A = "att-sh-1"
P1 = "Local/+4930500301@contactd-test-world-00000000;1"
P2 = "Local/+4930500301@contactd-test-world-00000000;2"
WHY = "the answers coming outnumbered free agents"


def ev(name: str, **headers: Any) -> dict[str, str]:
    return {"Event": name, **{k: str(v) for k, v in headers.items()}}


def chan(state: int, *, second: bool = False) -> dict[str, Any]:
    return {"Channel": P2 if second else P1, "Uniqueid": A + ("-2" if second else ""),
            "Linkedid": A, "ChannelState": state}


def ringing(tracker: CallTracker) -> list[CallEvent]:
    tracker.watch(A, started=100.0, expect_amd=True)
    out = tracker.feed(ev("Newchannel", **chan(0)), 100.0)
    out += tracker.feed(ev("Newchannel", **chan(4, second=True)), 100.0)
    out += tracker.feed(ev("Newstate", **chan(5)), 100.1)
    return out


def hung_up(tracker: CallTracker, at: float) -> list[CallEvent]:
    """What Asterisk 22 sent after AMI Hangup(Cause: 19) of the ringing ;1 channel."""
    out = tracker.feed(ev("Hangup", Cause=19, **chan(5)), at)
    out += tracker.feed(ev("OriginateResponse", ActionID=A, Response="Failure", Reason=0,
                           Uniqueid=A, Channel="Local/+4930500301@contactd-test-world"), at)
    out += tracker.feed(ev("Hangup", Cause=19, **chan(4, second=True)), at)
    return out


def test_a_ringing_call_ends_no_answer_with_why() -> None:
    tracker = CallTracker()
    assert [type(e).__name__ for e in ringing(tracker)] == ["CallRinging"]
    assert tracker.end_unanswered(A, WHY, 116.0) == P1
    out = hung_up(tracker, 116.05)
    assert [type(e).__name__ for e in out] == ["CallEnded"]
    end = out[0]
    assert isinstance(end, CallEnded)
    assert (end.outcome, end.cause, end.originate_reason) == (CallOutcome.NO_ANSWER, 19, 0)
    assert end.detail == f"ended unanswered after 16 s of ringing: {WHY}"


def test_an_answered_call_or_one_without_a_channel_is_left_alone() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=100.0, expect_amd=True)
    assert tracker.end_unanswered(A, WHY, 101.0) is None  # no channel yet
    ringing(tracker)
    tracker.feed(ev("Newstate", **chan(6)), 110.0)  # Up: AMD listens, no CallAnswered yet
    assert tracker.end_unanswered(A, WHY, 116.0) is None
    assert tracker.end_unanswered("unknown", WHY, 116.0) is None


def test_an_answer_just_before_the_hang_up_is_said() -> None:
    tracker = CallTracker()
    ringing(tracker)
    assert tracker.end_unanswered(A, WHY, 116.0) == P1
    tracker.feed(ev("Newstate", **chan(6)), 116.01)  # answered as the hang-up travelled
    out = tracker.feed(ev("Hangup", Cause=19, **chan(6)), 116.05)
    end = out[-1]
    assert isinstance(end, CallEnded)
    # Cut during AMD: who answered is unknown, and why it was cut is told.
    assert end.outcome is CallOutcome.LOST
    assert end.detail == ("answered, cut before the AMD verdict; answered just as contactd "
                          f"hung it up ({WHY})")


def test_a_hang_up_that_found_the_channel_gone_leaves_no_reason() -> None:
    tracker = CallTracker()
    ringing(tracker)
    assert tracker.end_unanswered(A, WHY, 116.0) == P1
    tracker.keep_ringing(A)
    out = tracker.feed(ev("Hangup", Cause=19, **chan(5)), 125.0)
    out += tracker.feed(ev("OriginateResponse", ActionID=A, Response="Failure", Reason=3,
                           Uniqueid=A), 125.0)
    end = out[-1]
    assert isinstance(end, CallEnded) and end.outcome is CallOutcome.NO_ANSWER
    assert end.detail == ""
