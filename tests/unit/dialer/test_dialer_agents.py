"""The agent board: longest-free agent first, explicit transitions, wrap-up timing reported."""

from __future__ import annotations

import asyncio

import pytest

from contactd.dialer.agents import AgentBoard, AgentState
from contactd.errors import ConflictError


def test_claim_call_end_and_auto_ready() -> None:
    board = AgentBoard(auto_ready_s=10.0)
    board.login("ann", "PJSIP/1001", 1, now=0.0)
    board.login("bob", "PJSIP/1002", 1, now=5.0)
    board.login("cy", "PJSIP/1003", 2, now=0.0)  # another campaign
    first = board.claim(1, "a1", now=20.0)
    assert first is not None and first.name == "ann"  # free the longest
    view = board.view(1, now=30.0)
    assert (view.free, view.talking, view.wrapping) == (1, (10.0,), ())
    assert board.call_ended("a1", now=80.0) is first
    assert first.state is AgentState.WRAPPING
    assert board.view(1, now=85.0).wrapping == (5.0,)
    assert board.view(1, now=95.0).free == 2  # wrap-up ended by itself after 10 s
    assert board.finished_talks == [(1, 60.0)]
    assert board.finished_wraps == [(1, 10.0)]
    assert board.claim(1, "a2", now=96.0) is not None
    assert board.claim(1, "a3", now=96.0) is not None
    assert board.claim(1, "a4", now=96.0) is None  # nobody left


def test_invalid_transitions_are_refused() -> None:
    board = AgentBoard()
    board.login("ann", "PJSIP/1001", 1, now=0.0)
    with pytest.raises(ConflictError):
        board.ready("ann", now=1.0)  # already free
    board.pause("ann", now=2.0)
    assert board.claim(1, "a1", now=3.0) is None  # paused agents take no calls
    board.ready("ann", now=4.0)
    assert board.claim(1, "a1", now=5.0) is not None


def test_a_blended_agent_is_held_for_a_waiting_inbound_caller_and_counted_out_on_one() -> None:
    board = AgentBoard()
    board.login("ann", "PJSIP/1001", 1, 0.0, queues=frozenset({"support"}))
    board.login("bob", "PJSIP/1002", 1, 1.0)
    board.waiting = {"support": 1}  # a caller waits: ann takes them before campaign calls
    assert board.view(1, 2.0).free == 1
    claimed = board.claim(1, "a1", 2.0)
    assert claimed is not None and claimed.name == "bob"
    assert board.claim(1, "a2", 2.0) is None
    taken = board.claim_inbound("support", "in-1", 3.0)
    assert taken is not None and taken.name == "ann"
    board.waiting = {}
    view = board.view(1, 4.0)
    assert (view.free, view.talking) == (0, (2.0,))  # ann's inbound talk is not the campaign's
    board.call_ended("in-1", 10.0)
    board.ready("ann", 11.0)
    assert board.finished_talks == [] and board.finished_wraps == []
    assert board.agents["ann"].inbound is False and board.view(1, 12.0).free == 1


async def test_every_state_change_reaches_the_bus_in_order() -> None:
    from contactd.dialer.floor_events import AgentStateChanged
    from contactd.dialer.floor_relay import AgentStateRelay
    from contactd.events import EventBus

    bus, board = EventBus(), AgentBoard()
    seen: list[tuple[str, str, float]] = []
    done = asyncio.Event()

    def heard(e: AgentStateChanged) -> None:
        seen.append((e.agent, e.state, e.since))
        if e.state == "logged_out":
            done.set()

    bus.subscribe(AgentStateChanged, heard)
    async with AgentStateRelay(board, bus):
        board.login("ann", "PJSIP/1001", 1, now=1.0)
        board.claim(1, "a1", now=2.0)
        board.call_ended("a1", now=3.0)
        board.pause("ann", now=4.0)
        board.logout("ann")
        board.logout("nobody")  # not logged in: nothing to say
        await asyncio.wait_for(done.wait(), 5)
    assert seen == [("ann", "free", 1.0), ("ann", "talking", 2.0), ("ann", "wrapping", 3.0),
                    ("ann", "paused", 4.0), ("ann", "logged_out", 4.0)]
    assert board.on_change is None
