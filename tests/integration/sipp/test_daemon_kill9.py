"""Issue 13: `kill -9` of a real `contactd run` process at three moments of an automated
campaign over the real PJSIP trunk (SIPp is the carrier), then a restart.

The moment is read from Asterisk by a side AMI connection, never from a timer:
  ringing   every call's trunk channel is Ringing (SIPp sent 180 and holds the answer 3 s);
  answered  every call sent ContactdAnswered (answered, AMD listening: no verdict yet);
  message   every call sent ContactdAMD HUMAN (the 4 s message is playing).
"Every call" is every call the killed process placed: three or all five leads (the rest are
dialled by the restarted daemon while it settles what the crash left).
The restart follows at once, or once every call ended while no daemon ran (the AstDB path).
Then: the campaign finishes; every lead is settled once (done, human, one attempt: everybody
heard the message, so nobody is dialled again, with retries due at once if the outcome were
wrong); every attempt has one outcome and one interaction on its contact; SIPp received as
many calls per number as the attempts stored for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from panoramisk import Manager
from panoramisk.message import Message

from contactd.enums import AttemptState
from tests.integration.asterisk.test_dialer_crash import long_message
from tests.integration.sipp.operator_flow import (
    books,
    create_campaign,
    import_people,
    invites_per_number,
    people_csv,
    start_campaign,
    until_finished,
)
from tests.integration.sipp.test_sipp_outbound import _sound
from tests.peers.asterisk import AmiEvents
from tests.peers.contactd import daemon_process, write_config
from tests.peers.sipp import SipAsteriskSandbox, SippLauncher, write_rtp_pcap

pytestmark = [pytest.mark.sipp, pytest.mark.asterisk]
NUMBERS = [f"+4420794611{i:02d}" for i in range(5)]
MOMENT_TIMEOUT_S = 40.0
RING_MS = {"ringing": 3000, "answered": 200, "message": 200}


def user_event(name: str, **headers: str) -> Callable[[Message], str | None]:
    """The attempt id of a UserEvent `name` with these headers, else None."""

    def attempt(event: Message) -> str | None:
        if event.get("Event") != "UserEvent" or event.get("UserEvent") != name:
            return None
        if any(event.get(k) != v for k, v in headers.items()):
            return None
        return str(event.get("Attempt") or "") or None

    return attempt


def trunk_ringing(event: Message) -> str | None:
    """The attempt id (the Originate's ChannelId) of a trunk channel that went Ringing."""
    if (event.get("Event") == "Newstate" and event.get("ChannelStateDesc") == "Ringing"
            and str(event.get("Channel", "")).startswith("PJSIP/trunk-")):
        return str(event.get("Uniqueid"))
    return None


MOMENTS: dict[str, Callable[[Message], str | None]] = {
    "ringing": trunk_ringing,
    "answered": user_event("ContactdAnswered"),
    "message": user_event("ContactdAMD", Status="HUMAN"),
}
# What must not have happened yet when the daemon is killed (else the moment was missed).
NOT_YET: dict[str, Callable[[Message], str | None]] = {
    "ringing": user_event("ContactdAnswered"),
    "answered": user_event("ContactdAMD"),
    "message": user_event("ContactdMessage"),
}


async def each_call(events: AmiEvents, matches: Callable[[Message], str | None],
                    count: int) -> set[str]:
    """The attempt ids of `count` distinct calls that reached the moment `matches` tells."""
    got: set[str] = set()
    while len(got) < count:
        event = await events.wait_for(
            lambda e: (key := matches(e)) is not None and key not in got, MOMENT_TIMEOUT_S)
        key = matches(event)
        assert key is not None
        got.add(key)
    return got


@pytest.mark.parametrize(("moment", "restart", "concurrent"), [
    ("ringing", "at once", 5),
    ("ringing", "after the calls ended", 3),
    ("answered", "after the calls ended", 5),
    ("message", "at once", 3),
])
async def test_kill_9_then_a_restart_settles_every_lead_once(
    sip_asterisk: SipAsteriskSandbox, sip_ami: Manager, sipp: SippLauncher, tmp_path: Path,
    moment: str, restart: str, concurrent: int,
) -> None:
    pcap = tmp_path / "hello.pcap"
    write_rtp_pcap(_sound(sip_asterisk, "hello-world"), pcap)  # AMD: HUMAN in ~2.6 s
    carrier = await sipp.carrier("answer", ring_ms=RING_MS[moment], pcap=pcap,
                                 calls=len(NUMBERS))
    # A wrong outcome (lost, failed, no answer) would be retried at once: a second INVITE.
    config = write_config(tmp_path, sip_asterisk, dialer={
        "retry_no_answer_s": 0, "retry_failed_s": 0, "retry_busy_s": 0,
        "max_concurrent_calls": concurrent})
    people = people_csv(tmp_path, NUMBERS)
    await import_people(config, people, count=len(NUMBERS))
    events = AmiEvents(sip_ami, "UserEvent", "Newstate")

    async with daemon_process(config, tmp_path / "daemon-1.log") as first:
        # The campaign is made while the daemon boots (saves a command's start-up time).
        await asyncio.gather(first.wait_ready(), create_campaign(
            config, people, "crash", message=long_message(sip_asterisk), max_attempts=2,
            count=len(NUMBERS)))
        await start_campaign(config, "crash")
        attempts = await each_call(events, MOMENTS[moment], concurrent)
        # Read before the kill, with no await between: what arrives later does not count.
        early = {NOT_YET[moment](e) for e in events.seen} - {None}
        await first.kill9()
    assert not early, f"killed too late for {moment!r}: {early} went further"

    if restart != "at once":
        # Asterisk finishes every call while no daemon runs.
        assert await each_call(events, user_event("ContactdHangup"), concurrent) == attempts
    async with daemon_process(config, tmp_path / "daemon-2.log") as second:
        await second.wait_ready()
        await until_finished(config, "crash", events)
        assert await second.stop() == 0, second.log()  # SIGTERM: a clean stop after recovery
    log = second.log()
    # The restart took the crash path: it found the killed process's calls open, and says
    # none of them was lost (each fate known: followed live, or kept in the row or AstDB).
    assert [(line["checked"], line["lost"]) for line in second.log_lines()
            if line.get("msg") == "reconciled open call attempts"] == [(concurrent, 0)], log

    result = await carrier.finish(timeout_s=30)
    stored = await books(config, "crash")
    assert stored.leads == {n: ("done", 1, "human") for n in NUMBERS}, log
    assert attempts <= {a.id for rows in stored.attempts.values() for a in rows}
    for number, rows in stored.attempts.items():
        assert [(a.state, a.outcome is not None) for a in rows] == [
            (AttemptState.ENDED, True)], (number, log)
        # One interaction per attempt, on the imported contact, linked both ways.
        contact = stored.contact_of_number[number]
        assert stored.contact_of_lead[number] == contact
        assert [i.id for i in stored.interactions[number]] == [a.interaction_id for a in rows]
        # Talk time is the call's, not the time until the restart's reconciliation.
        assert all(a.talk_s is None or a.talk_s < 15 for a in rows), [a.talk_s for a in rows]
    assert result.successful == len(NUMBERS)
    assert invites_per_number(carrier.messages(), NUMBERS) == {
        n: len(rows) for n, rows in stored.attempts.items()}
