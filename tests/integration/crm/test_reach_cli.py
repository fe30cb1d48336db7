"""`contactd reach`, run as a real command: the decision, its reason and the queued message."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from contactd.crm.service import ContactInput, ContactService
from contactd.db import migrate
from contactd.db.models import Consent, Contact, Interaction, OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, ConsentStatus, InteractionKind, MessageState

ROOT = Path(__file__).resolve().parents[3]


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "contactd.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False, env=env,
                          cwd=ROOT)


async def _seed(db: Database) -> int:
    await migrate.upgrade(db)
    async with db:
        contacts = ContactService(db, default_region="DE")
        contact_id = await contacts.create_contact(ContactInput(
            first_name="Lena", last_name="Vogel", phones=["+49 170 1234567"]))
        async with db.transaction() as session:
            # Preferring SMS makes the choice the same at any hour of the test run.
            contact = await session.get(Contact, contact_id)
            assert contact is not None
            contact.preferred_channel = Channel.SMS
            session.add(Consent(contact_id=contact_id, channel=Channel.SMS,
                                status=ConsentStatus.GRANTED, source="test"))
    await db.engine.dispose()
    return contact_id


async def _stored(db: Database) -> tuple[list[OutboxMessage], list[Interaction]]:
    async with db, db.session() as session:
        messages = list(await session.scalars(select(OutboxMessage)))
        notes = list(await session.scalars(
            select(Interaction).where(Interaction.kind == InteractionKind.NOTE)))
    await db.engine.dispose()
    return messages, notes


def test_reach_queues_an_sms_and_stores_why(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "contactd.toml"
    config.write_text('[general]\ndata_dir = "data"\ndefault_region = "DE"\n', encoding="utf-8")
    url = f"sqlite+aiosqlite:///{data / 'contactd.db'}"
    contact_id = asyncio.run(_seed(Database(url)))

    done = run(config, "reach", str(contact_id), "--purpose", "renewal", "--key", "r-1", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["channel"], out["reason"], out["action"]) == ("sms", "prefers_sms",
                                                            "message_queued")
    again = run(config, "reach", str(contact_id), "--purpose", "renewal", "--key", "r-1")
    assert again.returncode == 0 and "sms (prefers_sms)" in again.stdout
    messages, notes = asyncio.run(_stored(Database(url)))
    [message] = messages  # the same key queued nothing new
    assert message.to_address == "+491701234567" and message.state is MessageState.QUEUED
    assert message.id == out["message_id"]
    assert [n.data["reason"] for n in notes] == ["prefers_sms", "prefers_sms"]

    unknown = run(config, "reach", "999", "--purpose", "renewal")
    assert unknown.returncode == 2 and "no contact 999" in unknown.stderr
    empty = run(config, "reach", str(contact_id), "--purpose", " ")
    assert empty.returncode == 2 and "purpose" in empty.stderr
