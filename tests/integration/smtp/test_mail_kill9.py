"""`kill -9` of a real `contactd run` process between storing an inbound mail and routing it.

The moment is made by PostgreSQL, not by a timer or a patched method: the test holds a lock
on `tasks` that lets the daemon store the mail (interaction, document, inbound_emails row)
but stops its routing at the reply task's INSERT. Once the daemon's log says the mail is
stored and the row still carries its pending mark, the daemon is killed with SIGKILL, the
lock released and a new daemon started: its sweep routes the mail exactly once, and the MTA's
re-delivery (it never got its 250) is recognised as the same mail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import pytest
from sqlalchemy import func, select

from contactd.db import migrate
from contactd.db.models import Contact, Document, InboundEmail, Interaction, Task
from contactd.db.session import Database
from contactd.enums import TaskSource
from tests.peers.contactd import DaemonProcess, daemon_process
from tests.peers.ports import free_port

pytestmark = [pytest.mark.postgres]

SERVICE = "service@contactd.test"
MOMENT_TIMEOUT_S = 60.0
POLL_S = 0.1


def _config(folder: Path, url: str, smtp_port: int) -> Path:
    text = f"""[general]
data_dir = "{folder / "data"}"
log_format = "json"
log_level = "info"
[database]
url = "{url}"
[web]
port = {free_port()}
secret_key = "crash-test-secret-key-0123456789"
[ami]
enabled = false
[audiosocket]
enabled = false
[email_inbound]
smtp_enabled = true
smtp_port = {smtp_port}
recipients = ["{SERVICE}"]
"""
    path = folder / "contactd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _mail() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Grace <grace@example.mw>"
    message["To"] = SERVICE
    message["Subject"] = "Quote for 20 chairs"
    message["Message-ID"] = "<quote-kill9@example.mw>"
    message.set_content("Please send a quote, attached is our list.")
    message.add_attachment(b"chairs,20\n", maintype="text", subtype="csv", filename="list.csv")
    return message


async def _until(daemon: DaemonProcess, what: str, found: Callable[[], Awaitable[Any]]) -> Any:
    """Poll a condition another process makes true (no event crosses the process boundary)."""
    try:
        async with asyncio.timeout(MOMENT_TIMEOUT_S):
            while not (value := await found()):
                if daemon.proc.returncode is not None:
                    raise AssertionError(
                        f"contactd exited {daemon.proc.returncode}\n{daemon.log()}"
                    )
                await asyncio.sleep(POLL_S)
            return value
    except TimeoutError:
        raise AssertionError(f"{what}: not within {MOMENT_TIMEOUT_S} s\n{daemon.log()}") from None


def _stored_logged(daemon: DaemonProcess) -> Callable[[], Awaitable[bool]]:
    async def logged() -> bool:
        return any(line.get("msg") == "inbound mail stored" for line in daemon.log_lines())

    return logged


async def _rows(url: str) -> dict[str, Any]:
    db = Database(url)
    async with db, db.session() as session:
        mails = list(
            await session.scalars(
                select(Interaction).where(Interaction.remote_address == "grace@example.mw")
            )
        )
        out = {
            "mails": mails,
            "tasks": list(await session.scalars(select(Task))),
            "contacts": await session.scalar(select(func.count()).select_from(Contact)),
            "documents": await session.scalar(select(func.count()).select_from(Document)),
            "inbound": await session.scalar(select(func.count()).select_from(InboundEmail)),
        }
    await db.engine.dispose()
    return out


async def test_kill9_between_storing_and_routing_routes_the_mail_exactly_once(
    tmp_path: Path, postgres_url: str
) -> None:
    (tmp_path / "data").mkdir()
    smtp_port = free_port()
    config = _config(tmp_path, postgres_url, smtp_port)
    db = Database(postgres_url)
    await migrate.upgrade(db)
    await db.engine.dispose()
    blocker = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with daemon_process(config, tmp_path / "daemon-1.log") as first:
            await _until(first, "the first daemon's web port", first.health)
            # From now on an INSERT into tasks waits; reading and other tables do not.
            await blocker.execute("BEGIN; LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE")
            sending = asyncio.create_task(
                aiosmtplib.send(
                    _mail(), hostname="127.0.0.1", port=smtp_port, timeout=MOMENT_TIMEOUT_S
                )
            )
            await _until(first, "'inbound mail stored' in the log", _stored_logged(first))
            before = await _rows(postgres_url)
            [pending] = before["mails"]
            assert pending.data["route"] == "mail-pending" and before["tasks"] == []
            await first.kill9()
        with pytest.raises((aiosmtplib.SMTPException, OSError)):
            await sending  # no 250: the MTA keeps the mail and delivers it again
        await blocker.execute("ROLLBACK")

        async with daemon_process(config, tmp_path / "daemon-2.log") as second:
            await _until(second, "the second daemon's web port", second.health)
            # Started means swept: the intake routes what waited before SMTP listens.
            await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=smtp_port, timeout=30)
            after = await _rows(postgres_url)
            assert await second.stop() == 0, second.log()
    finally:
        await blocker.close()
    [mail] = after["mails"]
    assert mail.id == pending.id and mail.data["route"] == "done"
    [task] = after["tasks"]
    assert task.source is TaskSource.MESSAGE and task.interaction_id == mail.id
    assert mail.contact_id is not None and task.contact_id == mail.contact_id
    assert (after["contacts"], after["documents"], after["inbound"]) == (1, 1, 1)
