"""Agent phones over real SIP: a SIPp phone registers as agent 1001 (digest auth against the
production endpoint/auth/aor) and answers the agent leg Dial(PJSIP/1001); an agent whose phone
is not registered fails the way Asterisk really reports it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from panoramisk import Manager
from panoramisk.message import Message

from tests.peers.asterisk import AGENT_CONTEXT, AmiEvents
from tests.peers.sipp import (
    SipAsteriskSandbox,
    SippLauncher,
    SippProcess,
    originate_trunk,
    write_rtp_pcap,
)

pytestmark = [pytest.mark.sipp, pytest.mark.asterisk]

CUSTOMER = "5550199"
ORIGINATE_WAIT_S = 40.0
REGISTER_WAIT_S = 20.0
# What app_dial logs when PJSIP/<agent> has no registered contact (the agent leg's cause).
NO_CONTACT_CAUSE = "Unable to create channel of type 'PJSIP' (cause 3 - No route to destination)"


def _attempt(label: str) -> str:
    return f"sip-{label}-{uuid.uuid4().hex[:8]}"


def _hello_pcap(sandbox: SipAsteriskSandbox, dest: Path) -> Path:
    """The callee's side of the call: "hello world", then quiet (AMD: HUMAN)."""
    found = sorted((sandbox.root / "usr/share/asterisk/sounds").glob("*/hello-world.wav"))
    write_rtp_pcap(found[0], dest)
    return dest


async def _originate(ami: Manager, action: Mapping[str, object]) -> Message:
    replies = await asyncio.wait_for(ami.send_action(action), ORIGINATE_WAIT_S)
    assert isinstance(replies, list), replies
    return next(m for m in replies if m.get("Event") == "OriginateResponse")


def _click_to_call(agent: str, number: str, attempt: str) -> dict[str, str]:
    """Originate Channel=PJSIP/<agent> Context=contactd-agent Exten=<number> (README)."""
    return {
        "Action": "Originate",
        "ActionID": attempt,
        "Channel": f"PJSIP/{agent}",
        "Context": AGENT_CONTEXT,
        "Exten": number,
        "Priority": "1",
        "Timeout": "15000",
        "Async": "true",
        "Variable": f"CONTACTD_ATTEMPT={attempt}",
    }


def _sequence(events: AmiEvents, attempt: str) -> list[str]:
    return [
        e["UserEvent"]
        for e in events.seen
        if e.get("Event") == "UserEvent" and e.get("Attempt") == attempt
    ]


def _contact_status(aor: str, status: str) -> Callable[[Message], bool]:
    return lambda e: (
        e.get("Event") == "ContactStatus"
        and e.get("AOR") == aor
        and e.get("ContactStatus") == status
    )


async def _registered(events: AmiEvents, phone: SippProcess, extension: str) -> Message:
    """The phone's contact once Asterisk qualified it (OPTIONS answered): dialable."""
    try:
        return await events.wait_for(_contact_status(extension, "Reachable"), REGISTER_WAIT_S)
    except TimeoutError:
        await phone.stop()
        raise AssertionError(f"{extension} never became Reachable\n{phone.log()}") from None


async def test_registered_agent_phone_answers_the_agent_leg(
    sip_asterisk: SipAsteriskSandbox, sip_ami: Manager, sipp: SippLauncher, tmp_path: Path
) -> None:
    events = AmiEvents(sip_ami, "UserEvent", "ContactStatus")
    phone = await sipp.agent_phone("1001")
    contact = await _registered(events, phone, "1001")
    assert contact["URI"].startswith("sip:1001@127.0.0.2:")  # the phone's own address
    carrier = await sipp.carrier("answer", pcap=_hello_pcap(sip_asterisk, tmp_path / "c.pcap"))

    attempt = _attempt("agent")
    action = originate_trunk(
        CUSTOMER, attempt, mode="agent", variables={"CONTACTD_AGENT": "PJSIP/1001"}
    )
    assert (await _originate(sip_ami, action))["Reason"] == "4"
    end = await events.user_event("ContactdHangup", timeout_s=30, Attempt=attempt)
    assert _sequence(events, attempt) == [
        "ContactdAnswered",
        "ContactdAMD",
        "ContactdConnect",
        "ContactdAgentDial",
        "ContactdHangup",
    ]
    assert events.user_events("ContactdAMD", Attempt=attempt)[0]["Status"] == "HUMAN"
    dial = events.user_events("ContactdAgentDial", Attempt=attempt)[0]
    assert (dial["Agent"], dial["DialStatus"]) == ("PJSIP/1001", "ANSWER")
    assert end["Cause"] == "16"
    # The phone hung up (BYE), unregistered and exited; the carrier got Asterisk's BYE.
    assert (await phone.finish(timeout_s=30)).successful == 1
    assert (await carrier.finish(timeout_s=20)).successful == 1
    await events.wait_for(_contact_status("1001", "Removed"), 10)
    # The phone saw the customer's call: INVITE to its registered contact, from the trunk.
    assert "INVITE sip:1001@127.0.0.2:" in phone.messages()


async def test_phone_with_a_wrong_password_is_refused(sip_ami: Manager, sipp: SippLauncher) -> None:
    events = AmiEvents(sip_ami, "ContactStatus")
    phone = await sipp.agent_phone("1001", password="not-the-password")
    # The challenge answered with the wrong secret is challenged again: SIPp, expecting 200,
    # fails its only call and exits.
    with pytest.raises(RuntimeError, match="exited 1"):
        await phone.finish(timeout_s=30)
    replies = [line for line in phone.messages().splitlines() if line.startswith("SIP/2.0 ")]
    assert len(replies) >= 2  # the challenge, and the refusal of the answer to it
    assert set(replies) == {"SIP/2.0 401 Unauthorized"}
    assert not [e for e in events.seen if e.get("AOR") == "1001"]


async def test_click_to_call_rings_the_phone_then_dials_the_customer_over_the_trunk(
    sip_asterisk: SipAsteriskSandbox, sip_ami: Manager, sipp: SippLauncher, tmp_path: Path
) -> None:
    events = AmiEvents(sip_ami, "UserEvent", "ContactStatus")
    phone = await sipp.agent_phone("1001")
    await _registered(events, phone, "1001")
    carrier = await sipp.carrier("answer", pcap=_hello_pcap(sip_asterisk, tmp_path / "c.pcap"))

    attempt = _attempt("click")
    assert (await _originate(sip_ami, _click_to_call("1001", CUSTOMER, attempt)))["Reason"] == "4"
    end = await events.user_event("ContactdHangup", timeout_s=30, Attempt=attempt)
    call = events.user_events("ContactdAgentCall", Attempt=attempt)
    assert [c["Number"] for c in call] == [CUSTOMER]
    # The agent hung up first (the phone's BYE): the agent channel's dialplan ends with it, so
    # only its hangup handler reports, with the Dial's outcome; no ContactdAgentCallEnd.
    assert _sequence(events, attempt) == ["ContactdAgentCall", "ContactdHangup"]
    assert (end["Cause"], end["DialStatus"]) == ("16", "ANSWER")
    assert (await phone.finish(timeout_s=30)).successful == 1
    assert (await carrier.finish(timeout_s=20)).successful == 1
    # The carrier was asked for the customer's number, with the agent's caller ID.
    invite = carrier.messages()
    assert f"INVITE sip:{CUSTOMER}@127.0.0.1:" in invite
    assert '"Agent 1001" <sip:1001@' in invite


async def test_unregistered_agent_means_abandon(
    sip_asterisk: SipAsteriskSandbox, sip_ami: Manager, sipp: SippLauncher, tmp_path: Path
) -> None:
    log_before = sip_asterisk.messages_log.stat().st_size
    carrier = await sipp.carrier("answer", pcap=_hello_pcap(sip_asterisk, tmp_path / "c.pcap"))
    events = AmiEvents(sip_ami, "UserEvent")
    attempt = _attempt("no-phone")
    action = originate_trunk(
        CUSTOMER, attempt, mode="agent", variables={"CONTACTD_AGENT": "PJSIP/1002"}
    )
    assert (await _originate(sip_ami, action))["Reason"] == "4"
    end = await events.user_event("ContactdHangup", timeout_s=30, Attempt=attempt)
    # Dial fails at once: no contact, no channel, no SIP message to anyone.
    dial = events.user_events("ContactdAgentDial", Attempt=attempt)[0]
    assert (dial["Agent"], dial["DialStatus"]) == ("PJSIP/1002", "CHANUNAVAIL")
    assert _sequence(events, attempt)[-3:] == [
        "ContactdAgentDial",
        "ContactdAbandon",
        "ContactdHangup",
    ]
    assert (end["Cause"], end["DialStatus"]) == ("16", "CHANUNAVAIL")
    assert (await carrier.finish(timeout_s=20)).successful == 1
    with sip_asterisk.messages_log.open(errors="replace") as log:
        log.seek(log_before)
        assert NO_CONTACT_CAUSE in log.read()


async def test_click_to_call_to_an_unregistered_phone_fails_at_once(sip_ami: Manager) -> None:
    events = AmiEvents(sip_ami, "UserEvent", "Newchannel")
    attempt = _attempt("click-none")
    response = await _originate(sip_ami, _click_to_call("1002", CUSTOMER, attempt))
    assert (response["Response"], response["Reason"]) == ("Failure", "0")
    # No channel was ever created, so the dialplan (and its UserEvents) never ran.
    assert not [e for e in events.seen if e.get("Channel", "").startswith("PJSIP/1002")]
    assert _sequence(events, attempt) == []
