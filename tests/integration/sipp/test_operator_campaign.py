"""Issue 13's operator flow end to end: SIPp is the carrier on the real PJSIP trunk, the
campaign is made with `contactd campaign create` from a lead file, the daemon runs
(`run_daemon`, as `contactd run`), and `contactd dialer start` starts the campaign. Every
number gets one INVITE, hears the message, and its lead is done."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import select

from contactd.calls.events import CallEnded
from contactd.config import load_settings
from contactd.db.bootstrap import open_database
from contactd.db.models.dialer import Lead
from contactd.enums import CallOutcome, LeadStatus
from tests.integration.asterisk.test_daemon_asterisk import running
from tests.integration.sipp.test_sipp_outbound import _sound
from tests.peers.ports import free_port
from tests.peers.sipp import SipAsteriskSandbox, SippLauncher, write_rtp_pcap

pytestmark = [pytest.mark.sipp, pytest.mark.asterisk]
ROOT = Path(__file__).resolve().parents[3]
NUMBERS = [f"+4420794600{i:02d}" for i in range(5)]


def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "contactd.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                          timeout=120, check=False)


async def test_operator_creates_starts_and_finishes_a_campaign_over_the_trunk(
    sip_asterisk: SipAsteriskSandbox, sipp: SippLauncher, tmp_path: Path
) -> None:
    pcap = tmp_path / "hello.pcap"
    write_rtp_pcap(_sound(sip_asterisk, "hello-world"), pcap)
    carrier = await sipp.carrier("answer", ring_ms=300, pcap=pcap, calls=len(NUMBERS))
    env = {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path / "data"),
        "CONTACTD_GENERAL__DEFAULT_REGION": "GB",
        "CONTACTD_WEB__PORT": str(free_port()),
        "CONTACTD_AMI__PORT": str(sip_asterisk.ami_port),
        "CONTACTD_AMI__USERNAME": sip_asterisk.ami_username,
        "CONTACTD_AMI__SECRET": sip_asterisk.ami_secret,
        "CONTACTD_DIALER__WINDOW_START": "00:00:00",
        "CONTACTD_DIALER__WINDOW_END": "23:59:59",
        "CONTACTD_DIALER__PACING_TICK_S": "0.2",
    }
    leads = tmp_path / "leads.csv"
    leads.write_text("name,phone\n" + "".join(f"n{i},{n}\n" for i, n in enumerate(NUMBERS)),
                     encoding="utf-8")
    made = await asyncio.to_thread(
        cli, env, "campaign", "create", "spring", "--mode", "automated", "--message",
        "hello-world", "--caller-id", '"contactd" <5550100>', "--from-file", str(leads))
    assert made.returncode == 0, made.stderr
    assert "with 5 leads; 0 skipped" in made.stdout

    settings = load_settings(None, env)
    async with running(settings) as components:
        assert components.dialer is not None
        ended = asyncio.Event()
        components.dialer.bus.subscribe(CallEnded, lambda _e: ended.set())
        started = await asyncio.to_thread(cli, env, "dialer", "start", "spring")
        assert started.returncode == 0, started.stderr
        assert started.stdout.splitlines() == [
            "campaign spring is running",
            f"the daemon at http://127.0.0.1:{settings.web.port}/healthz follows it within a "
            "pacing tick",
        ]
        async with asyncio.timeout(90):
            while True:
                ended.clear()
                async with await open_database(settings) as db, db.session() as session:
                    rows = (await session.execute(select(Lead))).scalars().all()
                if all(r.status is LeadStatus.DONE for r in rows):
                    break
                await ended.wait()
    assert {(r.phone_e164, r.attempts, r.last_outcome) for r in rows} == {
        (n, 1, CallOutcome.HUMAN) for n in NUMBERS}
    result = await carrier.finish(timeout_s=30)
    assert result.successful == len(NUMBERS)
    sip = carrier.messages()
    assert [sip.count(f"INVITE sip:{n}@") for n in NUMBERS] == [1] * len(NUMBERS)
