"""`contactd dialer explain`: the verdict, every reason, the callee's local time, exit codes."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command

from contactd.config import load_settings
from contactd.db.migrate import alembic_config
from contactd.db.models import Base
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import Consent, Contact, DoNotCall
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.enums import CampaignMode, CampaignStatus, Channel, ConsentStatus, LeadStatus

AT = datetime(2026, 6, 10, 13, 0, tzinfo=UTC)  # 09:00 in New York, 06:00 in Los Angeles


async def contactd(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "contactd.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.fixture
async def config(tmp_path: Path) -> Path:
    path = tmp_path / "contactd.toml"
    path.write_text('[general]\ndata_dir = "data"\n[dialer]\nmax_calls_per_second = 1\n')
    settings = load_settings(path, {})
    settings.general.data_dir.mkdir(parents=True)
    db = Database(settings.database_url)
    # The current models, stamped as migrated: the CLI's upgrade step then has nothing to do.
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(lambda sync: command.stamp(alembic_config(sync), "head"))
    async with db, db.transaction() as session:
        campaign = Campaign(name="spring", mode=CampaignMode.PREDICTIVE,
                            status=CampaignStatus.RUNNING, max_attempts=3, max_concurrent=1)
        paused = Campaign(name="paused", mode=CampaignMode.PROGRESSIVE,
                          status=CampaignStatus.PAUSED)
        session.add_all([campaign, paused])
        person = Contact(first_name="Ann", last_name="Opted")
        session.add(person)
        await session.flush()
        session.add_all([
            Consent(contact_id=person.id, channel=Channel.CALL, status=ConsentStatus.GRANTED,
                    recorded_at=AT - timedelta(days=9)),
            Consent(contact_id=person.id, channel=Channel.CALL, status=ConsentStatus.REVOKED,
                    recorded_at=AT - timedelta(days=1), source="sms STOP"),
            DoNotCall(e164="+12125550101", campaign_id=None, reason="asked"),
            DoNotCall(e164="+12125550102", campaign_id=campaign.id, reason="asked"),
            Lead(campaign_id=campaign.id, phone_e164="+12125550103", contact_id=person.id),
            Lead(campaign_id=campaign.id, phone_e164="+12125550104", attempts=3,
                 status=LeadStatus.RETRY),
            Lead(campaign_id=campaign.id, phone_e164="+12125550105", attempts=1,
                 status=LeadStatus.RETRY, next_attempt_at=AT + timedelta(minutes=30)),
            Lead(campaign_id=campaign.id, phone_e164="+12125550106"),
            CallAttempt(id="a-1", campaign_id=campaign.id, phone_e164="+12125550199",
                        created_at=AT - timedelta(seconds=0.5)),
        ])
    return path


async def explain(
    config: Path, number: str, *extra: str, at: datetime = AT
) -> tuple[int, str]:
    return await contactd("dialer", "explain", number, "--at", at.isoformat(),
                          "--config", str(config), *extra)


async def test_dialable_number_exits_0_and_shows_local_time(config: Path) -> None:
    # Two seconds later the last dial is out of the 1-call/s window (the trunk-wide cap).
    code, out = await explain(config, "+12125551234", at=AT + timedelta(seconds=2))
    assert code == 0, out
    assert "may be dialed" in out
    assert "America/New_York 2026-06-10 09:00 EDT" in out


async def test_outside_window_exits_1_with_callee_local_time(config: Path) -> None:
    code, out = await explain(config, "+14155550100")
    assert code == 1
    assert "[outside_window]" in out and "06:00 Wed in America/Los_Angeles" in out


@pytest.mark.parametrize(
    ("number", "codes"),
    [
        ("+12125550101", ["dnc_global"]),
        ("+12125550102", ["dnc_campaign"]),
        ("+12125550103", ["opted_out"]),
        ("+12125550104", ["attempts_exhausted"]),
        ("+12125550105", ["retry_not_due"]),
    ],
)
async def test_each_reason_within_a_campaign(config: Path, number: str, codes: list[str]) -> None:
    code, out = await explain(config, number, "--campaign", "spring")
    assert code == 1, out
    found = [line.split("]")[0].split("[")[1] for line in out.splitlines() if "- [" in line]
    # The campaign has one call in progress against a cap of 1, started half a second ago
    # against 1 call/s: both caps hold for every number in it.
    assert found == [*codes, "concurrency_cap", "rate_cap"]


async def test_every_reason_at_once(config: Path) -> None:
    code, out = await contactd("dialer", "explain", "+12125550105", "--campaign", "paused",
                               "--at", "2026-06-10T03:00:00+00:00", "--config", str(config))
    assert code == 1
    assert "[campaign_not_running]" in out and "[outside_window]" in out
    assert "23:00 Tue in America/New_York" in out


@pytest.mark.parametrize(
    "args",
    [
        ["+1212"],  # not a number
        ["+12125551234", "--at", "tomorrow"],
        ["+12125551234", "--campaign", "no-such-campaign"],
    ],
)
async def test_bad_input_exits_2(config: Path, args: list[str]) -> None:
    code, out = await contactd("dialer", "explain", *args, "--config", str(config))
    assert code == 2
    assert "contactd: error:" in out


async def test_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[dialer]\nring_timeout_s = 5\n")
    code, out = await contactd("dialer", "explain", "+12125551234", "--config", str(bad))
    assert code == 2
    assert "ring_timeout_s" in out
