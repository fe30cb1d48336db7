"""`contactd campaign create --mode email` run as a real command, its messages then sent by an
outbox to aiosmtpd; `campaign status` and `dialer stats` show the progress."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from contactd.cli import main
from contactd.config import load_settings
from contactd.crm.service import ContactInput, ContactService
from contactd.db import migrate
from contactd.db.models import Consent
from contactd.db.session import Database
from contactd.enums import Channel, ConsentStatus
from contactd.messaging.service import MessagingService
from tests.peers.smtp import SmtpPeer

pytestmark = pytest.mark.smtp

CONFIG = """[general]
data_dir = "data"
default_region = "DE"
[dialer]
window_start = "00:00"
window_end = "23:59:59"
"""


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    """The CLI's own entry point, in this process (a subprocess costs seconds to start)."""
    code = main([*args, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


async def _seed(db: Database) -> None:
    await migrate.upgrade(db)
    async with db:
        contacts = ContactService(db, default_region="DE")
        zoe = await contacts.create_contact(
            ContactInput(first_name="Zoë", emails=["zoe@example.test"])
        )
        gone = await contacts.create_contact(
            ContactInput(first_name="Max", emails=["max@example.test"])
        )
        async with db.transaction() as session:
            session.add(
                Consent(
                    contact_id=zoe,
                    channel=Channel.EMAIL,
                    status=ConsentStatus.GRANTED,
                    source="test",
                )
            )
            session.add(
                Consent(
                    contact_id=gone,
                    channel=Channel.EMAIL,
                    status=ConsentStatus.REVOKED,
                    source="unsubscribe link",
                )
            )
    await db.engine.dispose()


async def _send(config: Path, url: str, smtp: SmtpPeer) -> None:
    """What the daemon's outbox does with the queued rows."""
    settings = load_settings(config).model_copy(update={"email": smtp.settings()})
    db = Database(url)
    async with db, MessagingService(settings, db) as messaging:
        await messaging.outbox.wait_for(lambda s: s.sent >= 1, 30)
    await db.engine.dispose()


def test_an_email_campaign_from_a_file_mails_the_consenting_and_skips_the_rest(
    tmp_path: Path,
    smtp: SmtpPeer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "templates").mkdir()
    (data / "templates" / "news.en.subject.j2").write_text("News for {{ contact.first_name }}")
    (data / "templates" / "news.en.txt.j2").write_text("Hello {{ contact.first_name }}.")
    config = tmp_path / "contactd.toml"
    config.write_text(CONFIG, encoding="utf-8")
    url = f"sqlite+aiosqlite:///{data / 'contactd.db'}"
    asyncio.run(_seed(Database(url)))
    people = tmp_path / "people.csv"
    people.write_text(
        "name,email\nZoë,zoe@example.test\nMax,MAX@example.test\nNobody,nobody@example.test\n",
        encoding="utf-8",
    )

    wrong = run(
        capsys,
        config,
        *["campaign", "create", "news", "--mode", "email", "--template", "nope", "--from-file"],
        str(people),
    )
    assert wrong[0] == 2 and "no message template named 'nope'" in wrong[2]

    done = run(
        capsys,
        config,
        *["campaign", "create", "news", "--mode", "email", "--template", "news", "--from-file"],
        str(people),
        "--json",
    )
    assert done[0] == 0, done[2]
    drafted = json.loads(done[1])
    # A draft: who it is for and what the first of them would read; nothing decided or sent.
    assert (drafted["mode"], drafted["status"], drafted["audience"]) == ("email", "draft", 2)
    assert drafted["skipped"] == [
        {"where": "people.csv line 4", "reason": "no contact holds 'nobody@example.test'"},
    ]
    assert drafted["sample"]["subject"] == "News for Zoë"
    assert drafted["sample"]["body"].strip() == "Hello Zoë."
    draft_status = run(capsys, config, "campaign", "status", "news", "--json")
    assert json.loads(draft_status[1])["status"] == "draft"
    assert json.loads(draft_status[1])["decided"] == 0

    started = run(capsys, config, "campaign", "start", "news", "--json")
    assert started[0] == 0, started[2]
    created = json.loads(started[1])
    assert (created["status"], created["queued"], created["held"]) == ("running", 1, 0)
    assert [s["reason"] for s in created["skipped"]] == ["email_opted_out"]
    again = run(capsys, config, "campaign", "start", "news", "--json")
    assert json.loads(again[1])["queued"] == 0  # every contact was decided for already
    asyncio.run(_send(config, url, smtp))
    [mail] = smtp.messages
    assert mail.rcpt_tos == ["zoe@example.test"]
    assert mail.parsed()["Subject"] == "News for Zoë"

    status = run(capsys, config, "campaign", "status", "news", "--json")
    assert status[0] == 0, status[2]
    progress = json.loads(status[1])
    assert (progress["sent"], progress["queued"], progress["skipped"]) == (1, 0, 1)
    assert progress["skip_reasons"] == {"email_opted_out": 1}
    stats = run(capsys, config, "dialer", "stats", "news")
    assert stats[0] == 0, stats[2]
    assert "1 sent" in stats[1] and "skipped (email_opted_out): 1" in stats[1]
