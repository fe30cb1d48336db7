"""Outbound calls over the real PJSIP trunk: SIPp is the carrier on the trunk's far end.

contactd's Originate of PJSIP/<number>@trunk into contactd-outbound, as in production: the
answered call (real RTP from the callee, AMD on it, the message played back), and each way the
network refuses a call (busy, unallocated, congestion, no answer), with the Originate Reason
and the Q.850 cause Asterisk really reports.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
from panoramisk import Manager
from panoramisk.message import Message

from tests.peers.asterisk import AmiEvents
from tests.peers.sipp import SipAsteriskSandbox, SippLauncher, originate_trunk, write_rtp_pcap

pytestmark = [pytest.mark.sipp, pytest.mark.asterisk]

CALLEE = "5550123"
ORIGINATE_WAIT_S = 40.0


def _attempt(label: str) -> str:
    return f"sip-{label}-{uuid.uuid4().hex[:8]}"


def _sound(sandbox: SipAsteriskSandbox, name: str) -> Path:
    """A prompt of the sandbox's core sounds (the `en` link points inside the chroot)."""
    found = sorted((sandbox.root / "usr/share/asterisk/sounds").glob(f"*/{name}.wav"))
    if not found:
        raise FileNotFoundError(f"no {name}.wav in the sandbox's sounds")
    return found[0]


async def _originate(ami: Manager, action: Mapping[str, object]) -> Message:
    replies = await asyncio.wait_for(ami.send_action(action), ORIGINATE_WAIT_S)
    assert isinstance(replies, list), replies
    return next(m for m in replies if m.get("Event") == "OriginateResponse")


def _sequence(events: AmiEvents, attempt: str) -> list[str]:
    return [
        e["UserEvent"]
        for e in events.seen
        if e.get("Event") == "UserEvent" and e.get("Attempt") == attempt
    ]


async def test_answered_call_over_the_trunk_plays_the_message(
    sip_asterisk: SipAsteriskSandbox, sip_ami: Manager, sipp: SippLauncher, tmp_path: Path
) -> None:
    pcap = tmp_path / "hello.pcap"
    write_rtp_pcap(_sound(sip_asterisk, "hello-world"), pcap)
    carrier = await sipp.carrier("answer", ring_ms=500, pcap=pcap)
    events = AmiEvents(sip_ami, "UserEvent", "Hangup")
    attempt = _attempt("answer")
    action = originate_trunk(
        CALLEE, attempt, mode="message", variables={"CONTACTD_MESSAGE": "hello-world"}
    )
    response = await _originate(sip_ami, action)
    assert (response["Response"], response["Reason"]) == ("Success", "4")
    assert response["Channel"].startswith("PJSIP/trunk-")

    end = await events.user_event("ContactdHangup", timeout_s=30, Attempt=attempt)
    assert _sequence(events, attempt) == [
        "ContactdAnswered",
        "ContactdAMD",
        "ContactdMessage",
        "ContactdHangup",
    ]
    amd = events.user_events("ContactdAMD", Attempt=attempt)[0]
    # The callee's RTP ("hello world", then quiet) is what AMD judged.
    assert amd["Status"] == "HUMAN", amd
    assert [m["Status"] for m in events.user_events("ContactdMessage", Attempt=attempt)] == [
        "SUCCESS"
    ]
    assert end["Cause"] == "16"
    # Asterisk hung up with a BYE that SIPp answered: the carrier saw one complete call.
    result = await carrier.finish(timeout_s=20)
    assert result.successful == 1
    # What the carrier was asked: the number, contactd's caller ID, G.711 offered.
    sip = carrier.messages()
    assert f"INVITE sip:{CALLEE}@127.0.0.1:{sip_asterisk.trunk_port} SIP/2.0" in sip
    assert '"contactd" <sip:5550100@' in sip
    assert "a=rtpmap:0 PCMU/8000" in sip


@pytest.mark.parametrize(
    ("status", "phrase", "reason", "cause"),
    [
        ("486", "Busy Here", "0", "17"),
        ("404", "Not Found", "0", "1"),
        ("503", "Service Unavailable", "0", "34"),
    ],
)
async def test_refused_call_reports_reason_and_cause(
    sip_ami: Manager,
    sipp: SippLauncher,
    status: str,
    phrase: str,
    reason: str,
    cause: str,
) -> None:
    carrier = await sipp.carrier("reject", status=f"{status} {phrase}")
    events = AmiEvents(sip_ami, "Hangup", "UserEvent")
    attempt = _attempt(status)
    channel_id = str(uuid.uuid4())
    action = originate_trunk(CALLEE, attempt, timeout_s=20, channel_id=channel_id)
    response = await _originate(sip_ami, action)
    # Over PJSIP the Reason is 0 ("failed") for every refusal; only the Hangup event of the
    # channel (found by its ChannelId) tells busy from unallocated from congestion.
    assert (response["Response"], response["Reason"]) == ("Failure", reason)
    hangup = await events.wait_for(lambda e: e["Uniqueid"] == channel_id)
    assert hangup["Channel"].startswith("PJSIP/trunk-")
    assert (hangup["Cause"], hangup["TechCause"]) == (cause, status), hangup
    # The dialplan never ran: no UserEvent for a call nobody answered.
    assert _sequence(events, attempt) == []
    assert (await carrier.finish(timeout_s=20)).successful == 1


async def test_unanswered_call_times_out_with_reason_3(
    sip_ami: Manager, sipp: SippLauncher
) -> None:
    carrier = await sipp.carrier("ring")
    events = AmiEvents(sip_ami, "Hangup")
    attempt = _attempt("ring")
    # Reason 3: Asterisk gave up when the Originate's Timeout ran out (measured: 4.0 s), and
    # cancelled the INVITE.
    channel_id = str(uuid.uuid4())
    action = originate_trunk(CALLEE, attempt, timeout_s=4, channel_id=channel_id)
    response = await _originate(sip_ami, action)
    assert (response["Response"], response["Reason"]) == ("Failure", "3")
    hangup = await events.wait_for(lambda e: e["Uniqueid"] == channel_id)
    assert hangup["Cause"] == "19", hangup
    # SIPp got the CANCEL, answered it and ended the INVITE with 487.
    assert (await carrier.finish(timeout_s=20)).successful == 1
