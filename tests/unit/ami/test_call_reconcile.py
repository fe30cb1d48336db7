"""Reconciliation rules on plain rows and channel lists: resume, lose, skip; never dial."""

from __future__ import annotations

from datetime import UTC, datetime

from contactd.calls.events import CallAnswered, CallEnded
from contactd.calls.reconcile import settle
from contactd.calls.tracker import CallTracker
from contactd.db.models.calls import CallAttempt
from contactd.enums import AttemptState, CallOutcome

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def row(attempt_id: str, state: AttemptState = AttemptState.DIALING) -> CallAttempt:
    return CallAttempt(
        id=attempt_id,
        phone_e164="+1555",
        state=state,
        created_at=T0,
        detect_machine=False,
        answered_at=T0 if state is AttemptState.ANSWERED else None,
    )


def test_settle_resumes_live_loses_gone_and_skips_current_link() -> None:
    tracker = CallTracker()
    live = [
        {"Uniqueid": "up", "Linkedid": "up", "Channel": "Local/1@w-1;1", "ChannelState": "6"},
        {"Uniqueid": "up-2", "Linkedid": "up", "Channel": "Local/1@w-1;2", "ChannelState": "6"},
        {"Uniqueid": "x", "Linkedid": "x", "Channel": "PJSIP/other-1", "ChannelState": "6"},
    ]
    rows = [row("up"), row("gone"), row("gone-answered", AttemptState.ANSWERED), row("new")]
    report, events = settle(tracker, rows, live, now=T0.timestamp() + 30, skip={"new"})
    assert report.resumed == ["up"]
    assert sorted(report.lost) == ["gone", "gone-answered"]
    assert report.skipped == ["new"] and report.checked == 4
    answered = [e for e in events if isinstance(e, CallAnswered)]
    assert [e.attempt_id for e in answered] == ["up"]  # answered while we were away
    ended = {e.attempt_id: e for e in events if isinstance(e, CallEnded)}
    assert set(ended) == {"gone", "gone-answered"}
    assert all(e.outcome is CallOutcome.LOST and e.lost for e in ended.values())
    assert tracker.is_open("up") and not tracker.is_open("gone")
    # a second pass over the same rows changes nothing: each end is published once
    again_report, again = settle(tracker, rows, live, now=T0.timestamp() + 31, skip={"new"})
    assert [e for e in again if isinstance(e, CallEnded)] == []
    assert again_report.resumed == ["up"]


def test_a_gone_call_whose_fate_is_known_is_settled_not_lost() -> None:
    # Killed while ringing: the row knows nothing; AstDB kept that the message played. Killed
    # after the AMD verdict: the row holds it. Neither is lost; the third one is.
    heard, machine, unknown = row("heard"), row("machine", AttemptState.ANSWERED), row("unknown")
    machine.detect_machine, machine.amd_status = True, "MACHINE"
    report, events = settle(CallTracker(), [heard, machine, unknown], [],
                            now=T0.timestamp() + 30, messages={"heard": "SUCCESS"})
    outcomes = {e.attempt_id: e.outcome for e in events if isinstance(e, CallEnded)}
    assert outcomes == {"heard": CallOutcome.HUMAN, "machine": CallOutcome.MACHINE,
                        "unknown": CallOutcome.LOST}
    assert (sorted(report.settled), report.lost) == (["heard", "machine"], ["unknown"])
