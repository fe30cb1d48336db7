"""The dialer's per-call state machine: every (state, event) pair, legal or refused."""

from __future__ import annotations

import logging
from itertools import product

import pytest

from contactd.dialer.callstate import TRANSITIONS, DialEvent, DialState, LiveCalls, next_state

S, E = DialState, DialEvent

# The whole table, written out: any pair not listed must be refused.
EXPECTED: dict[tuple[DialState, DialEvent], DialState] = {
    (S.RINGING, E.ANSWERED_NO_AGENT): S.ANSWERED,
    (S.RINGING, E.ANSWERED_PERSON): S.WAITING,
    (S.RINGING, E.QUEUED): S.CONNECTING,
    (S.WAITING, E.HANDED_OFF): S.CONNECTING,
    (S.WAITING, E.ABANDON): S.ABANDONED,
    (S.CONNECTING, E.ABANDON): S.ABANDONED,
    (S.CONNECTING, E.BRIDGED): S.BRIDGED,
    (S.ABANDONED, E.ABANDON): S.ABANDONED,
    (S.ABANDONED, E.BRIDGED): S.ABANDONED,
    (S.BRIDGED, E.BRIDGED): S.BRIDGED,
}


@pytest.mark.parametrize(("state", "event"), list(product(DialState, DialEvent)))
def test_every_state_and_event_pair(state: DialState, event: DialEvent) -> None:
    assert next_state(state, event) is EXPECTED.get((state, event))


def test_the_table_holds_nothing_else() -> None:
    assert dict(TRANSITIONS) == EXPECTED


def test_an_abandon_is_final() -> None:
    for event in DialEvent:
        assert next_state(S.ABANDONED, event) in (S.ABANDONED, None)


def test_an_illegal_move_is_logged_and_refused(caplog: pytest.LogCaptureFixture) -> None:
    calls = LiveCalls(campaign_id=7)
    calls.add("a1", dialed_at=100.0)
    assert calls.move("a1", E.ANSWERED_NO_AGENT, 101.0) is not None
    with caplog.at_level(logging.WARNING, logger="contactd.dialer.callstate"):
        assert calls.move("a1", E.ABANDON, 102.0) is None  # a machine is never an abandon
    call = calls.get("a1")
    assert call is not None and (call.state, call.since) == (S.ANSWERED, 101.0)
    [record] = caplog.records
    assert record.getMessage() == "dialer call move refused"
    fields = ("attempt_id", "campaign_id", "state", "event")
    assert [getattr(record, f) for f in fields] == ["a1", 7, "answered", "abandon"]


def test_a_call_moves_through_its_life_and_leaves_the_table() -> None:
    calls = LiveCalls(campaign_id=1)
    calls.add("a1", dialed_at=10.0)
    calls.add("a2", dialed_at=11.0)
    calls.move("a2", E.ANSWERED_PERSON, 12.0)
    calls.move("a1", E.ANSWERED_PERSON, 13.0)
    assert [c.attempt_id for c in calls.in_state(S.WAITING)] == ["a2", "a1"]  # oldest first
    calls.move("a2", E.HANDED_OFF, 14.0)
    calls.move("a2", E.BRIDGED, 15.0)
    assert calls.describe() == {"a1": "waiting", "a2": "bridged"}
    ended = calls.end("a2")
    assert ended is not None and ended.state is S.BRIDGED
    assert "a2" not in calls and len(calls) == 1
    assert calls.move("a2", E.ABANDON, 16.0) is None  # unknown now: nothing to move


def test_the_pacer_counts_only_calls_not_yet_resolved_as_ringing() -> None:
    from contactd.dialer.pacing import PacingSnapshot, ProgressivePacer
    from contactd.dialer.runtime import CampaignRuntime

    calls = LiveCalls(7)
    for i in range(6):
        calls.add(f"a{i}", dialed_at=100.0)
    calls.move("a1", E.ANSWERED_NO_AGENT, 110.0)  # a machine
    calls.move("a2", E.ANSWERED_PERSON, 110.0)  # a person waiting
    for name in ("a3", "a4"):  # people talking to agents
        calls.move(name, E.ANSWERED_PERSON, 110.0)
        calls.move(name, E.HANDED_OFF, 110.5)
        calls.move(name, E.BRIDGED, 111.0)
    calls.move("a5", E.QUEUED, 110.0)
    rt = CampaignRuntime(7, ProgressivePacer(), ledger=None, calls=calls)  # type: ignore[arg-type]
    assert rt.ringing_ages(130.0) == (30.0,)  # a0 alone
    # Progressive, 3 agents free, one call ringing and one person waiting: one more call.
    snap = PacingSnapshot(free_agents=3, talking=(19.0, 19.0), ringing=rt.ringing_ages(130.0),
                          waiting=1)
    assert rt.pacer.calls_to_dial(snap, 130.0) == 1
