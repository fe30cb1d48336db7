"""Issue 13's operator flow end to end, every step a `contactd` command run as a subprocess:
`contactd import contacts people.csv`, `contactd campaign create spring --from-file
people.csv` (each number linked to its imported contact), `contactd run --config FILE`,
`contactd dialer start spring`. SIPp is the carrier on the real PJSIP trunk. Every number
gets one call, hears the message, its lead is done and the call is on its contact's timeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from panoramisk import Manager

from contactd.enums import Channel, Direction, InteractionKind
from tests.integration.sipp.operator_flow import (
    books,
    import_and_create,
    invites_per_number,
    people_csv,
    start_campaign,
    until_finished,
)
from tests.integration.sipp.test_sipp_outbound import _sound
from tests.peers.asterisk import AmiEvents
from tests.peers.contactd import contactd_cli, daemon_process, write_config
from tests.peers.sipp import SipAsteriskSandbox, SippLauncher, write_rtp_pcap

pytestmark = [pytest.mark.sipp, pytest.mark.asterisk]
NUMBERS = [f"+4420794600{i:02d}" for i in range(5)]


async def test_operator_imports_creates_starts_and_finishes_a_campaign_over_the_trunk(
    sip_asterisk: SipAsteriskSandbox, sip_ami: Manager, sipp: SippLauncher, tmp_path: Path
) -> None:
    pcap = tmp_path / "hello.pcap"
    write_rtp_pcap(_sound(sip_asterisk, "hello-world"), pcap)
    carrier = await sipp.carrier("answer", ring_ms=300, pcap=pcap, calls=len(NUMBERS))
    config = write_config(tmp_path, sip_asterisk)
    await import_and_create(config, people_csv(tmp_path, NUMBERS), "spring",
                            message="hello-world", max_attempts=3, count=len(NUMBERS))
    events = AmiEvents(sip_ami, "UserEvent")

    async with daemon_process(config, tmp_path / "daemon.log") as daemon:
        await daemon.wait_ready()
        said = await start_campaign(config, "spring")
        assert said.splitlines() == [
            "campaign spring is running",
            f"the daemon at http://127.0.0.1:{daemon.port}/healthz follows it within a "
            "pacing tick",
        ]
        await until_finished(config, "spring", events)
        assert await daemon.stop() == 0, daemon.log()
        log = daemon.log()

    result = await carrier.finish(timeout_s=30)
    assert result.successful == len(NUMBERS)
    assert invites_per_number(carrier.messages(), NUMBERS) == dict.fromkeys(NUMBERS, 1)
    stored = await books(config, "spring")
    assert stored.leads == {n: ("done", 1, "human") for n in NUMBERS}, log
    for number in NUMBERS:
        contact = stored.contact_of_number[number]
        assert stored.contact_of_lead[number] == contact
        [attempt] = stored.attempts[number]
        [interaction] = stored.interactions[number]
        assert attempt.contact_id == contact and attempt.interaction_id == interaction.id
        assert (interaction.kind, interaction.direction, interaction.channel) == (
            InteractionKind.CALL, Direction.OUTBOUND, Channel.CALL)
        assert interaction.outcome == "human"
    # What the operator sees: the call on the contact's timeline.
    first = stored.contact_of_number[NUMBERS[0]]
    shown = await contactd_cli(config, "contact", "show", str(first), "--json")
    assert shown.returncode == 0, shown.stderr
    calls = [(e["id"], e["detail"]["outcome"], e["detail"]["campaign_id"])
             for e in json.loads(shown.stdout)["timeline"] if e["kind"] == "interaction"]
    assert calls == [(stored.interactions[NUMBERS[0]][0].id, "human",
                      stored.attempts[NUMBERS[0]][0].campaign_id)]
