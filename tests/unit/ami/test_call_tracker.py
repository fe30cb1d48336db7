"""The pure call tracker on hand-written event sequences: halves, order, duplicates, faults."""

from __future__ import annotations

from typing import Any

from contactd.calls.events import (
    AnsweredBy,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallEvent,
    CallRinging,
)
from contactd.calls.tracker import CallTracker
from contactd.enums import AttemptState, CallOutcome

A = "att-1"


def ev(name: str, **headers: Any) -> dict[str, str]:
    out = {"Event": name}
    out.update({k: str(v) for k, v in headers.items()})
    return out


def chan(uid: str, state: int = 0, name: str = "Local/1@w-01;1", **more: Any) -> dict[str, Any]:
    return {"Channel": name, "Uniqueid": uid, "Linkedid": A, "ChannelState": state, **more}


def run(
    tracker: CallTracker, events: list[dict[str, str]], start: float = 100.0
) -> list[CallEvent]:
    out: list[CallEvent] = []
    for i, event in enumerate(events):
        out += tracker.feed(event, start + i)
    return out


def kinds(events: list[CallEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def answered_call(amd: str | None) -> list[dict[str, str]]:
    events = [
        ev("Newchannel", **chan(A)),
        ev("Newchannel", **chan(A + "-2", 4, "Local/1@w-01;2")),
        ev("Newstate", **chan(A, 5)),
        ev("Newstate", **chan(A + "-2", 6, "Local/1@w-01;2")),
        ev("Newstate", **chan(A, 6)),
        ev("OriginateResponse", ActionID=A, Response="Success", Reason=4, Uniqueid=A),
    ]
    if amd:
        events.append(
            ev(
                "UserEvent",
                UserEvent="ContactdAMD",
                Attempt=A,
                Status=amd,
                Cause="X-1",
                **chan(A, 6),
            )
        )
    events += [
        ev("Hangup", **chan(A + "-2", 6, "Local/1@w-01;2"), Cause=16),
        ev("Hangup", **chan(A, 6), Cause=16),
    ]
    return events


def test_answered_human_with_amd() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=99.0, expect_amd=True)
    out = run(tracker, answered_call("HUMAN"))
    assert kinds(out) == ["CallRinging", "CallAnswered", "CallEnded"]
    answered, ended = out[1], out[2]
    assert isinstance(answered, CallAnswered) and answered.answered_by is AnsweredBy.HUMAN
    assert answered.amd_cause == "X-1"
    assert isinstance(ended, CallEnded)
    assert (ended.outcome, ended.cause, ended.lost) == (CallOutcome.HUMAN, 16, False)
    # answered at t=104 (primary Up), ended at t=108: 5 s ringing from 99, 4 s talking
    assert (ended.ring_s, ended.talk_s) == (5.0, 4.0)
    assert not tracker.is_open(A)


def test_machine_and_unsure_verdicts() -> None:
    for status, expected_by, expected_outcome in [
        ("MACHINE", AnsweredBy.MACHINE, CallOutcome.MACHINE),
        ("NOTSURE", AnsweredBy.UNKNOWN, CallOutcome.HUMAN),
    ]:
        tracker = CallTracker()
        tracker.watch(A, started=99.0, expect_amd=True)
        out = run(tracker, answered_call(status))
        ended = out[-1]
        assert isinstance(ended, CallEnded)
        assert ended.answered_by is expected_by and ended.outcome is expected_outcome


def test_without_amd_answer_is_classified_at_once() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=99.0, expect_amd=False)
    out = run(tracker, answered_call(None))
    assert kinds(out) == ["CallRinging", "CallAnswered", "CallEnded"]
    assert isinstance(out[1], CallAnswered) and out[1].answered_by is AnsweredBy.UNKNOWN


def test_amd_expected_but_hangup_first_still_reports_answer_before_end() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=99.0, expect_amd=True)
    out = run(tracker, answered_call(None))
    assert kinds(out) == ["CallRinging", "CallAnswered", "CallEnded"]
    assert isinstance(out[1], CallAnswered) and out[1].answered_by is AnsweredBy.UNKNOWN


def test_every_event_duplicated_gives_the_same_domain_events() -> None:
    once, twice = CallTracker(), CallTracker()
    once.watch(A, started=99.0, expect_amd=True)
    twice.watch(A, started=99.0, expect_amd=True)
    events = answered_call("HUMAN")
    doubled = [e for event in events for e in (event, dict(event))]
    assert kinds(run(once, events)) == kinds(run(twice, doubled))


def test_busy_with_hangup_before_or_after_originate_response() -> None:
    response = ev("OriginateResponse", ActionID=A, Response="Failure", Reason=5, Uniqueid=A)
    hangup = ev("Hangup", **chan(A), Cause=0)
    leg = ev("Hangup", **chan(A + "-2", 4, "Local/1@w-01;2"), Cause=17)
    for order in ([response, hangup, leg], [hangup, leg, response], [leg, response, hangup]):
        tracker = CallTracker()
        tracker.watch(A, started=99.0)
        out = run(tracker, [ev("Newchannel", **chan(A)), *order])
        assert kinds(out) == ["CallEnded"], order
        ended = out[0]
        assert isinstance(ended, CallEnded)
        assert (ended.outcome, ended.cause, ended.originate_reason) == (CallOutcome.BUSY, 17, 5)


def test_reason_alone_when_no_channel_was_ever_seen() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=99.0)
    out = tracker.feed(
        ev("OriginateResponse", ActionID=A, Response="Failure", Reason=8, Uniqueid="<null>"), 100
    )
    assert isinstance(out[0], CallEnded)
    assert (out[0].outcome, out[0].cause) == (CallOutcome.CONGESTION, 34)
    # late events of the finished call are ignored, not resurrected
    assert tracker.feed(ev("Hangup", **chan(A), Cause=34), 101) == []
    assert not tracker.is_open(A)


def test_ring_timeout_is_no_answer_with_ring_seconds() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=100.0)
    out = tracker.feed(ev("Newstate", **chan(A, 5)), 101)
    out += tracker.feed(ev("Hangup", **chan(A, 5), Cause=0), 125)
    out += tracker.feed(ev("OriginateResponse", ActionID=A, Reason=3, Uniqueid=A), 125.1)
    assert isinstance(out[0], CallRinging)
    ended = out[-1]
    assert isinstance(ended, CallEnded)
    assert (ended.outcome, ended.cause, ended.ring_s) == (CallOutcome.NO_ANSWER, 19, 25.1)


def test_bridge_with_agent_reports_the_agent_interface() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=99.0, expect_amd=False)
    agent = {"Channel": "PJSIP/agent7-0000002a", "Uniqueid": "u-agent", "Linkedid": A}
    out = run(
        tracker,
        [
            ev("Newstate", **chan(A, 6)),
            ev("BridgeEnter", BridgeUniqueid="b1", **chan(A, 6)),
            ev("BridgeEnter", BridgeUniqueid="b1", **agent),
            ev("BridgeEnter", BridgeUniqueid="b1", **agent),
            ev("BridgeLeave", BridgeUniqueid="b1", **agent),
            ev("Hangup", **chan(A, 6), Cause=16),
        ],
    )
    assert kinds(out) == ["CallAnswered", "CallBridged", "CallEnded"]
    bridged = out[1]
    assert isinstance(bridged, CallBridged)
    assert (bridged.agent_channel, bridged.agent_interface) == (
        "PJSIP/agent7-0000002a",
        "PJSIP/agent7",
    )


def test_channel_variable_links_a_call_without_channel_id() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=99.0, expect_amd=False)
    other = {"Channel": "PJSIP/t-01", "Uniqueid": "1700.1", "Linkedid": "1700.1"}
    assert tracker.feed(ev("VarSet", Variable="CONTACTD_ATTEMPT", Value=A, **other), 1) == []
    out = tracker.feed(ev("Newstate", ChannelState=5, **other), 2)
    assert kinds(out) == ["CallRinging"]


def test_events_of_unwatched_calls_and_unknown_events_are_ignored() -> None:
    tracker = CallTracker()
    assert tracker.feed(ev("Hangup", Uniqueid="x", Linkedid="x", Cause=16), 1) == []
    assert tracker.feed(ev("PeerStatus", Peer="PJSIP/x"), 1) == []
    assert tracker.malformed == 0


def test_malformed_values_do_not_break_the_tracker() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=99.0)
    assert tracker.feed(ev("OriginateResponse", ActionID=A, Reason="four"), 1) == []
    assert (
        tracker.feed({"Event": "Hangup", "Uniqueid": A, "Linkedid": A, "Cause": ["1", "2"]}, 2)
        == []
    )
    assert tracker.feed({"Event": "Newstate", "Linkedid": None, "Uniqueid": 5}, 3) == []
    assert tracker.feed({"Event": "BridgeEnter", "BridgeUniqueid": "b"}, 4) == []
    assert tracker.is_open(A)


def test_resume_and_settle_after_an_outage() -> None:
    tracker = CallTracker()
    out = tracker.resume(
        A,
        state=AttemptState.RINGING,
        started=100.0,
        answered_at=None,
        expect_amd=False,
        live=[{"Uniqueid": A, "Channel": "Local/1@w-01;1", "ChannelState": "6", "Linkedid": A}],
        now=110.0,
    )
    assert kinds(out) == ["CallAnswered"]  # answered while we were away
    ended = tracker.feed(ev("Hangup", **chan(A, 6), Cause=16), 120.0)
    assert isinstance(ended[-1], CallEnded) and ended[-1].talk_s == 10.0

    gone = CallTracker()
    gone.resume(
        "b",
        state=AttemptState.DIALING,
        started=1.0,
        answered_at=None,
        expect_amd=True,
        live=[],
        now=5.0,
    )
    lost = gone.settle_gone("b", 5.0)
    assert isinstance(lost[0], CallEnded)
    assert (lost[0].outcome, lost[0].lost, lost[0].cause) == (CallOutcome.LOST, True, None)


def test_settle_uses_a_known_reason_instead_of_lost() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=1.0)
    tracker.feed(ev("Newchannel", **chan(A)), 2)
    assert tracker.feed(ev("OriginateResponse", ActionID=A, Reason=5, Uniqueid=A), 3) == []
    out = tracker.settle_gone(A, 4)  # its Hangup was lost with the link
    assert isinstance(out[0], CallEnded) and out[0].outcome is CallOutcome.BUSY
    assert out[0].lost  # its end was never seen, though its fate is known


def test_reject_ends_failed() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=1.0)
    out = tracker.reject(A, 1.5)
    assert isinstance(out[0], CallEnded)
    assert (out[0].outcome, out[0].originate_reason) == (CallOutcome.FAILED, 0)
    assert tracker.reject(A, 2) == []


def test_answered_call_gone_unseen_keeps_what_was_seen_before() -> None:
    tracker = CallTracker()
    tracker.watch(A, started=1.0, expect_amd=True)
    run(tracker, answered_call("MACHINE")[:-2])  # answered, classified; hang-ups never seen
    out = tracker.settle_gone(A, 50.0)
    assert isinstance(out[0], CallEnded)
    # the AMD verdict seen before the outage is the outcome; `lost` says the end was unseen
    assert (out[0].outcome, out[0].lost, out[0].answered_by) == (
        CallOutcome.MACHINE,
        True,
        AnsweredBy.MACHINE,
    )
