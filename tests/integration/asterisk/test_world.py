"""The simulated world and contactd's outbound dialplan behave as the numbers table says.

These pin the contract other parts rely on (asterisk-config/README.md): Originate reasons and
Q.850 causes per callee, and the UserEvent sequence per outbound mode.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest
from panoramisk import Manager
from panoramisk.message import Message

from tests.peers.asterisk import (
    AGENT_BUSY,
    AGENT_CONTEXT,
    AGENT_NO_ANSWER,
    BUSY,
    CONGESTION,
    NO_ANSWER,
    UNALLOCATED,
    AmiEvents,
    agent,
    human,
    human_after_ring,
    machine,
    originate_outbound,
    silent_hangup,
    world_channel,
)

pytestmark = pytest.mark.asterisk


def _attempt(label: str) -> str:
    return f"world-{label}-{uuid.uuid4().hex[:8]}"


async def _originate(ami: Manager, action: Mapping[str, object]) -> Message:
    replies = await ami.send_action(action)
    assert isinstance(replies, list)
    return next(m for m in replies if m.get("Event") == "OriginateResponse")


def _sequence(events: AmiEvents, attempt: str) -> list[str]:
    return [
        e["UserEvent"]
        for e in events.seen
        if e.get("Event") == "UserEvent" and e.get("Attempt") == attempt
    ]


@pytest.mark.parametrize(
    ("number", "reason", "cause"),
    [(BUSY, "5", "17"), (NO_ANSWER, "3", "19"), (UNALLOCATED, "0", "1"), (CONGESTION, "8", "34")],
)
async def test_unanswered_callees(ami: Manager, number: str, reason: str, cause: str) -> None:
    events = AmiEvents(ami, "Hangup")
    attempt = _attempt(number)
    response = await _originate(ami, originate_outbound(number, attempt, timeout_s=3))
    assert (response["Response"], response["Reason"]) == ("Failure", reason)
    hangup = await events.wait_for(
        lambda e: e["Channel"].startswith(f"Local/{number}@") and e["Channel"].endswith(";2")
    )
    assert hangup["Cause"] == cause


async def test_callee_answering_after_ringing_gets_the_message(ami: Manager) -> None:
    events = AmiEvents(ami, "UserEvent")
    attempt = _attempt("ring-message")
    action = originate_outbound(
        human_after_ring(2), attempt, mode="message", variables={"CONTACTD_MESSAGE": "beep"}
    )
    assert (await _originate(ami, action))["Reason"] == "4"
    end = await events.user_event("ContactdHangup", Attempt=attempt)
    assert end["Amd"] == "HUMAN"
    message = events.user_events("ContactdMessage", Attempt=attempt)
    assert [m["Status"] for m in message] == ["SUCCESS"]
    assert _sequence(events, attempt) == [
        "ContactdAnswered",
        "ContactdAMD",
        "ContactdMessage",
        "ContactdHangup",
    ]


async def test_machine_gets_the_machine_message(ami: Manager) -> None:
    events = AmiEvents(ami, "UserEvent")
    attempt = _attempt("machine")
    action = originate_outbound(machine(1), attempt, variables={"CONTACTD_MACHINE_MESSAGE": "beep"})
    await _originate(ami, action)
    await events.user_event("ContactdHangup", Attempt=attempt)
    amd = events.user_events("ContactdAMD", Attempt=attempt)[0]
    assert (amd["Status"], amd["Cause"].split("-")[0]) == ("MACHINE", "MAXWORDS")
    assert _sequence(events, attempt) == [
        "ContactdAnswered",
        "ContactdAMD",
        "ContactdMessage",
        "ContactdHangup",
    ]


async def test_callee_hanging_up_during_amd_is_reported_by_the_hangup_event(
    ami: Manager,
) -> None:
    events = AmiEvents(ami, "UserEvent")
    attempt = _attempt("gone")
    await _originate(ami, originate_outbound(silent_hangup(1), attempt))
    end = await events.user_event("ContactdHangup", Attempt=attempt)
    assert end["Amd"] == "HANGUP"  # no ContactdAMD: the dialplan stops at the hang-up
    assert _sequence(events, attempt) == ["ContactdAnswered", "ContactdHangup"]


@pytest.mark.parametrize("agent_number", [AGENT_BUSY, AGENT_NO_ANSWER])
async def test_unavailable_agent_means_abandon(ami: Manager, agent_number: str) -> None:
    events = AmiEvents(ami, "UserEvent")
    attempt = _attempt(f"agent-{agent_number}")
    variables = {"CONTACTD_AGENT": world_channel(agent_number), "CONTACTD_AGENT_RING_S": "2"}
    await _originate(ami, originate_outbound(human(14), attempt, variables=variables))
    dial = await events.user_event("ContactdAgentDial", Attempt=attempt)
    assert dial["DialStatus"] == ("BUSY" if agent_number == AGENT_BUSY else "NOANSWER")
    await events.user_event("ContactdHangup", Attempt=attempt)
    assert _sequence(events, attempt)[-3:] == [
        "ContactdAgentDial",
        "ContactdAbandon",
        "ContactdHangup",
    ]


async def test_agent_set_while_waiting_is_connected(ami: Manager) -> None:
    events = AmiEvents(ami, "UserEvent")
    attempt = _attempt("late-agent")
    # The daemon has 5 s here to find an agent once the person is detected.
    variables = {"CONTACTD_AGENT_WAIT_S": "5"}
    await _originate(ami, originate_outbound(human(12), attempt, variables=variables))
    amd = await events.user_event("ContactdAMD", Attempt=attempt)
    reply = await ami.send_action(
        {
            "Action": "Setvar",
            "Channel": amd["Channel"],
            "Variable": "CONTACTD_AGENT",
            "Value": world_channel("7002"),
        }
    )
    assert reply.response == "Success"
    dial = await events.user_event("ContactdAgentDial", Attempt=attempt)
    assert dial["DialStatus"] == "ANSWER"
    assert not events.user_events("ContactdAbandon", Attempt=attempt)


async def test_queue_mode_without_members_abandons(ami: Manager) -> None:
    events = AmiEvents(ami, "UserEvent")
    attempt = _attempt("queue")
    await _originate(ami, originate_outbound(human(12), attempt, mode="queue"))
    abandon = await events.user_event("ContactdAbandon", Attempt=attempt)
    assert abandon["Status"] == "SUCCESS"


async def test_click_to_call_rings_the_agent_then_dials_the_customer(ami: Manager) -> None:
    events = AmiEvents(ami, "UserEvent")
    attempt = _attempt("click")
    customer = human(3)
    action = {
        "Action": "Originate",
        "ActionID": attempt,
        "Channel": world_channel(agent(6)),  # the agent's phone rings first
        "Context": AGENT_CONTEXT,
        "Exten": customer,
        "Priority": "1",
        "Timeout": "10000",
        "Async": "true",
        "Variable": f"CONTACTD_ATTEMPT={attempt}",
    }
    assert (await _originate(ami, action))["Reason"] == "4"
    call = await events.user_event("ContactdAgentCall", Attempt=attempt)
    assert call["Number"] == customer
    end = await events.user_event("ContactdAgentCallEnd", Attempt=attempt)
    assert end["DialStatus"] == "ANSWER"
    await events.user_event("ContactdHangup", Attempt=attempt)
