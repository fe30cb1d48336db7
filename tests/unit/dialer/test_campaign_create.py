"""Creating a campaign: every field that reaches AMI or the dialplan is checked (a CR/LF, a NUL
or a comma never reaches Playback), leads come from a file or a saved segment, and the CLI
(`contactd campaign create`, `contactd dialer start|stats` on an unreadable row) answers in
one line with exit 2 on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from contactd.config import Settings
from contactd.crm.service import ContactService
from contactd.db.models.crm import Contact, ContactPhone, Tag
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard
from contactd.dialer.create import (
    CampaignSpec,
    check_spec,
    create_campaign,
    numbers_from_text,
)
from contactd.dialer.dialvalues import check_agent_dial
from contactd.enums import CampaignMode, CampaignStatus, PhoneType
from contactd.errors import ConflictError, ValidationError


@pytest.mark.parametrize(("spec", "needle"), [
    (CampaignSpec("a b", "automated", message="x"), "name 'a b' is not allowed; allowed: "
                                                     "letters, digits, '_', '.', '-'"),
    (CampaignSpec("c", "broadcast", message="x"), "mode 'broadcast' is unknown; allowed: "
     "preview, progressive, predictive, automated, message, survey"),
    (CampaignSpec("c", "automated", message="Hello, world"), "contains a comma"),
    (CampaignSpec("c", "automated", message="hi\r\nAction: Hangup"), "contains a carriage"),
    (CampaignSpec("c", "automated", message="a\0b"), "contains a NUL byte"),
    (CampaignSpec("c", "automated", message="../etc/passwd"), "a sound file name"),
    (CampaignSpec("c", "automated"), "needs --message (a sound file name) or --ivr-flow"),
    (CampaignSpec("c", "automated", message="x", caller_id="Acme\n<1>"), "caller_id"),
    (CampaignSpec("c", "progressive", agent_queue="sales;x"), "a semicolon"),
    (CampaignSpec("c", "automated", ivr_flow="sur vey"), "ivr_flow 'sur vey' is not allowed"),
])
def test_each_field_reaching_the_dialplan_is_checked(spec: CampaignSpec, needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        check_spec(spec)
    assert needle in str(err.value)


def test_valid_values_pass() -> None:
    spec = CampaignSpec("spring-2026", "automated", caller_id='"Acme" <+15550100>',
                        message="custom/spring-offer")
    assert check_spec(spec) is CampaignMode.AUTOMATED
    assert check_agent_dial("PJSIP/1001") == "PJSIP/1001"
    with pytest.raises(ValidationError, match="TECH/resource"):
        check_agent_dial("PJSIP/1001,30")
    with pytest.raises(ValidationError, match="contains a line feed"):
        AgentBoard().login("ann", "PJSIP/1001\nAction: Hangup", 1, 0.0)


def test_lead_files_with_or_without_a_phone_column() -> None:
    assert numbers_from_text("name,phone\nAnn,+442079460001\n\nBob,\n") == [
        ("line 2", "+442079460001"), ("line 4", "")]
    assert numbers_from_text("+442079460001\n020 7946 0002\n") == [
        ("line 1", "+442079460001"), ("line 2", "020 7946 0002")]


async def test_create_from_numbers_links_contacts_and_lists_what_it_skipped(
    db: Database, settings: Settings
) -> None:
    async with db.transaction() as session:
        ann = Contact(first_name="Ann", last_name="A")
        session.add(ann)
        await session.flush()
        session.add(ContactPhone(contact_id=ann.id, e164="+442079460001", type=PhoneType.FIXED))
    uk = settings.model_copy(update={"general": settings.general.model_copy(
        update={"default_region": "GB"})})
    numbers = numbers_from_text("+442079460001\n020 7946 0002\nnot a number\n+442079460001\n")
    created = await create_campaign(db, uk, CampaignSpec("uk", "automated", message="beep"),
                                    numbers=numbers)
    assert (created.leads, created.skipped[0][0]) == (2, "line 3")
    assert "cannot be read" in created.skipped[0][1] or "not a valid" in created.skipped[0][1]
    async with db.session() as session:
        campaign = (await session.execute(select(Campaign))).scalar_one()
        leads = (await session.execute(select(Lead).order_by(Lead.id))).scalars().all()
    assert (campaign.status, campaign.mode, campaign.message) == (
        CampaignStatus.DRAFT, CampaignMode.AUTOMATED, "beep")
    assert campaign.max_attempts == settings.dialer.max_attempts
    assert [(lead.phone_e164, lead.contact_id) for lead in leads] == [
        ("+442079460001", ann.id), ("+442079460002", None)]
    with pytest.raises(ConflictError, match="exists already"):
        await create_campaign(db, uk, CampaignSpec("uk", "automated", message="beep"))
    with pytest.raises(ValidationError):  # nothing stored for a bad spec
        await create_campaign(db, uk, CampaignSpec("bad", "automated", message="a,b"),
                              numbers=numbers)
    async with db.session() as session:
        assert len((await session.execute(select(Campaign))).scalars().all()) == 1


async def test_create_from_a_saved_segment(db: Database, settings: Settings) -> None:
    async with db.transaction() as session:
        vip = Tag(name="vip")
        ann = Contact(first_name="Ann", last_name="A", tags=[vip])
        bob = Contact(first_name="Bob", last_name="B", tags=[vip])
        eve = Contact(first_name="Eve", last_name="E")
        session.add_all([ann, bob, eve])
        await session.flush()
        session.add_all([
            ContactPhone(contact_id=ann.id, e164="+442079460011", type=PhoneType.FIXED),
            ContactPhone(contact_id=ann.id, e164="+447700900011", type=PhoneType.MOBILE,
                         is_primary=True),
            ContactPhone(contact_id=eve.id, e164="+442079460013", type=PhoneType.FIXED),
        ])
        ids = ann.id, bob.id
    await ContactService(db, default_region="GB").save_segment("vips", {"tags": ["vip"]})
    from contactd.commands.campaign import segment_contacts

    contacts = await segment_contacts(db, "vips")
    assert sorted(contacts) == sorted(ids)
    created = await create_campaign(db, settings, CampaignSpec("v", "progressive"),
                                    contacts=contacts)
    assert created.leads == 1 and created.skipped == [(f"contact {ids[1]}",
                                                       "has no phone number")]
    async with db.session() as session:
        lead = (await session.execute(select(Lead))).scalar_one()
    assert (lead.phone_e164, lead.contact_id) == ("+447700900011", ids[0])


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": root}
    return subprocess.run([sys.executable, "-m", "contactd.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120, check=False)


def test_cli_creates_a_campaign_and_answers_bad_rows_in_one_line(tmp_path: Path) -> None:
    conf = tmp_path / "contactd.toml"
    conf.write_text(f"[general]\ndata_dir = '{tmp_path / 'data'}'\ndefault_region = 'GB'\n"
                    "[ami]\nenabled = false\n", encoding="utf-8")
    leads = tmp_path / "leads.csv"
    leads.write_text("phone\n+442079460001\nnope\n", encoding="utf-8")
    made = cli("campaign", "create", "spring", "--mode", "automated", "--message", "beep",
               "--from-file", str(leads), "--json", "--config", str(conf), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    body = json.loads(made.stdout)
    assert (body["name"], body["leads"], body["skipped"][0]["where"]) == (
        "spring", 1, "leads.csv line 3")
    bad = cli("campaign", "create", "x", "--mode", "automated", "--message", "Hello, world",
              "--from-file", str(leads), "--config", str(conf), cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "contains a comma" in bad.stderr

    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "contactd.db") as con:
        con.execute("UPDATE campaigns SET mode = 'message'")
    for command in (["dialer", "start", "spring"], ["dialer", "stats", "spring"]):
        result = cli(*command, "--config", str(conf), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "campaign 'spring' cannot be used" in result.stderr
        assert "Traceback" not in result.stderr
