"""`contactd contact show|merge` and `contactd dnc add|remove|list`, run as real commands."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contactd.crm.routing import InboundContact, Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db import migrate
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind

ROOT = Path(__file__).resolve().parents[3]


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "contactd.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False, env=env,
                          cwd=ROOT)


async def _seed(url: str) -> tuple[int, int]:
    db = Database(url)
    await migrate.upgrade(db)
    async with db:
        contacts = ContactService(db, default_region="MW")
        banda = await contacts.create_contact(ContactInput(
            first_name="Chikondi", last_name="Banda", phones=["0999 123 456"]))
        twin = await contacts.create_contact(ContactInput(
            first_name="Chikondi", last_name="Banda", emails=["cb@example.mw"]),
            allow_duplicate=True)
        router = Router(db, contacts, TaskService(db))
        await router.record(InboundContact(
            kind=InteractionKind.SMS, direction=Direction.INBOUND, channel=Channel.SMS,
            remote_address="+265999123456", body="Ndifuna kuyankhula ndi wina"))
    await db.engine.dispose()
    return banda, twin


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, int, int]:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "contactd.toml"
    config.write_text('[general]\ndata_dir = "data"\ndefault_region = "MW"\n', encoding="utf-8")
    banda, twin = asyncio.run(_seed(f"sqlite+aiosqlite:///{data / 'contactd.db'}"))
    return config, banda, twin


def test_contact_show_merge_and_timeline(seeded: tuple[Path, int, int]) -> None:
    config, banda, twin = seeded
    shown = run(config, "contact", "show", str(banda))
    assert shown.returncode == 0, shown.stderr
    assert "Chikondi Banda" in shown.stdout and "+265999123456" in shown.stdout
    assert "Reply to sms from Chikondi Banda" in shown.stdout  # the follow-up task

    merged = run(config, "contact", "merge", str(banda), str(twin), "--json")
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["survivor_id"] == banda
    card = json.loads(run(config, "contact", "show", str(banda), "--json").stdout)
    assert card["contact"]["emails"] == ["cb@example.mw"]
    kinds = {entry["detail"].get("kind") for entry in card["timeline"]}
    assert "sms" in kinds

    missing = run(config, "contact", "show", "9999")
    assert missing.returncode == 2 and "no contact 9999" in missing.stderr


def test_dnc_add_list_remove(seeded: tuple[Path, int, int]) -> None:
    config, _, _ = seeded
    added = run(config, "dnc", "add", "0999 123 456", "--reason", "asked on the phone")
    assert added.returncode == 0 and "+265999123456 added" in added.stdout
    again = run(config, "dnc", "add", "+265 999 123 456")
    assert "already on" in again.stdout
    listing = json.loads(run(config, "dnc", "list", "--json").stdout)
    assert [(e["number"], e["reason"]) for e in listing] == [
        ("+265999123456", "asked on the phone")]
    bad = run(config, "dnc", "add", "12")
    assert bad.returncode == 2 and "phone number" in bad.stderr
    gone = run(config, "dnc", "remove", "0999123456")
    assert gone.returncode == 0
    assert run(config, "dnc", "list").stdout.strip() == "the do-not-call list is empty"
    absent = run(config, "dnc", "remove", "0999123456")
    assert absent.returncode == 2 and "not on the do-not-call list" in absent.stderr
