"""Issue 20's drill: `kill -9` of a real `contactd run` process a third of the way through a
300-lead automated campaign over the real PJSIP trunk (SIPp is the carrier, every callee
answers), then a restart at once.

The moment is read from Asterisk (a side AMI connection): 100 calls answered, 30 up at
once. Then: the campaign finishes; every lead is settled once (done, one attempt: with
every retry due at once, a lead whose outcome the crash lost would be dialled again); every
attempt has one outcome; SIPp received exactly one call per number.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from panoramisk import Manager

from contactd.enums import AttemptState
from tests.integration.asterisk.test_dialer_crash import long_message
from tests.integration.sipp import operator_flow
from tests.integration.sipp.operator_flow import (
    books,
    create_campaign,
    import_people,
    invites_per_number,
    start_campaign,
    until_finished,
)
from tests.integration.sipp.test_daemon_kill9 import each_call, user_event
from tests.integration.sipp.test_sipp_outbound import _sound
from tests.peers.asterisk import AmiEvents
from tests.peers.contactd import daemon_process, write_config
from tests.peers.sipp import SipAsteriskSandbox, SippLauncher, write_rtp_pcap

pytestmark = [pytest.mark.sipp, pytest.mark.asterisk]
LEADS = 300
CONCURRENT = 30
KILL_AFTER = 100  # calls answered before the kill
NUMBERS = [f"+44207946{i:04d}" for i in range(LEADS)]  # Ofcom's range for drama: 020 7946 0xxx


def people(folder: Path) -> Path:
    """The leads as an operator's export: names, numbers written the local way."""
    path = folder / "people.csv"
    rows = "".join(f"Person{i},Drill{i},0{n[3:]}\n" for i, n in enumerate(NUMBERS))
    path.write_text("first_name,last_name,phone\n" + rows, encoding="utf-8")
    return path


async def test_kill_9_during_a_300_lead_campaign_then_a_restart_dials_no_lead_twice(
    sip_asterisk: SipAsteriskSandbox, sip_ami: Manager, sipp: SippLauncher, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(operator_flow, "FINISH_TIMEOUT_S", 240.0)
    pcap = tmp_path / "hello.pcap"
    write_rtp_pcap(_sound(sip_asterisk, "hello-world"), pcap)  # AMD: HUMAN in ~2.6 s
    carrier = await sipp.carrier("answer", ring_ms=100, pcap=pcap, calls=LEADS)
    # A lost or wrong outcome would be retried at once: a second INVITE for that number.
    config = write_config(tmp_path, sip_asterisk, dialer={
        "retry_no_answer_s": 0, "retry_failed_s": 0, "retry_busy_s": 0,
        "max_concurrent_calls": CONCURRENT})
    csv = people(tmp_path)
    await import_people(config, csv, count=LEADS)
    events = AmiEvents(sip_ami, "UserEvent")

    async with daemon_process(config, tmp_path / "daemon-1.log") as first:
        await asyncio.gather(first.wait_ready(), create_campaign(
            config, csv, "drill", message=long_message(sip_asterisk, seconds=1), max_attempts=2,
            count=LEADS))
        await start_campaign(config, "drill")
        await each_call(events, user_event("ContactdAnswered"), KILL_AFTER)
        await first.kill9()

    async with daemon_process(config, tmp_path / "daemon-2.log") as second:
        await second.wait_ready()
        await until_finished(config, "drill", events)
        assert await second.stop() == 0, second.log()
    log = second.log()
    reconciled = [(line["checked"], line["lost"]) for line in second.log_lines()
                  if line.get("msg") == "reconciled open call attempts"]
    assert len(reconciled) == 1 and reconciled[0][0] > 0, (reconciled, log)  # calls were up

    result = await carrier.finish(timeout_s=60)
    stored = await books(config, "drill")
    assert stored.leads == {n: ("done", 1, "human") for n in NUMBERS}, log
    for number, rows in stored.attempts.items():
        assert [(a.state, a.outcome is not None) for a in rows] == [
            (AttemptState.ENDED, True)], (number, log)
    assert result.successful == LEADS
    assert invites_per_number(carrier.messages(), NUMBERS) == dict.fromkeys(NUMBERS, 1)
