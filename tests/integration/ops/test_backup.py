"""`contactd backup` and `contactd restore` as an operator runs them: a consistent copy taken
while a daemon runs and another writer commits, restored into a fresh folder; a damaged
archive and a running daemon refused with nothing touched; PostgreSQL through pg_dump."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import pytest
from sqlalchemy import func, select

from contactd.config import load_settings
from contactd.db.bootstrap import open_database
from contactd.db.models.crm import Contact, ContactPhone
from contactd.enums import PhoneType
from tests.peers.ports import free_port

CONTACTD = [sys.executable, "-m", "contactd.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CONTACTD, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def wait_for_health(port: int, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited early: {proc.communicate()[1]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("daemon did not serve /healthz in time")


def write_config(folder: Path, web_port: int, database_url: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "contactd.toml"
    db = f"[database]\nurl = '{database_url}'\n" if database_url else ""
    path.write_text(
        f"[general]\ndata_dir = '{folder / 'data'}'\n[web]\nport = {web_port}\n"
        f"[audiosocket]\nport = {free_port()}\n[ami]\nenabled = false\n{db}", encoding="utf-8")
    return path


async def add_contacts(config: Path, stop: asyncio.Event, counts: list[int],
                       under_way: asyncio.Event) -> None:
    """Commit contacts with their phone, one transaction each, until told to stop; says
    when 50 are in."""
    settings = load_settings(config)
    async with await open_database(settings) as db:
        n = 0
        while not stop.is_set():
            async with db.session() as session, session.begin():
                contact = Contact(first_name="Writer", last_name=f"N{n}")
                session.add(contact)
                await session.flush()
                session.add(ContactPhone(contact_id=contact.id, e164=f"+4930{n:07d}",
                                         type=PhoneType.MOBILE))
            n += 1
            counts.append(n)
            if n >= 50:
                under_way.set()
            await asyncio.sleep(0)


def test_backup_while_writing_then_restore_into_a_fresh_folder(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "live", port)
    assert run("db", "upgrade", "--config", str(config)).returncode == 0
    doc = tmp_path / "live" / "data" / "documents" / "1" / "offer.pdf"
    doc.parent.mkdir(parents=True)
    doc.write_bytes(b"%PDF-1.4 an offer")
    daemon = subprocess.Popen([*CONTACTD, "run", "--config", str(config)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    archive = tmp_path / "contactd.tar.gz"
    try:
        wait_for_health(port, daemon)

        async def scenario() -> tuple[int, int, subprocess.CompletedProcess[str]]:
            stop, under_way, counts = asyncio.Event(), asyncio.Event(), [0]
            writer = asyncio.create_task(add_contacts(config, stop, counts, under_way))
            await asyncio.wait_for(under_way.wait(), 60)
            before = counts[-1]
            made = await asyncio.to_thread(run, "backup", "--config", str(config),
                                           str(archive))
            after = counts[-1]
            stop.set()
            await writer
            return before, after, made

        before, after, made = asyncio.run(scenario())
        assert made.returncode == 0, made.stderr
        assert "backup written to" in made.stdout and "1 files" in made.stdout
        assert after > before  # writes went on during the backup
    finally:
        daemon.terminate()
        daemon.communicate(timeout=30)
    assert oct(archive.stat().st_mode & 0o777) == "0o600"

    fresh = write_config(tmp_path / "fresh", free_port())
    restored = run("restore", "--config", str(fresh), str(archive))
    assert restored.returncode == 0, restored.stderr
    db_file = tmp_path / "fresh" / "data" / "contactd.db"
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        contacts = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]
        orphans = conn.execute(
            "SELECT count(*) FROM contacts c WHERE NOT EXISTS "
            "(SELECT 1 FROM contact_phones p WHERE p.contact_id = c.id)").fetchone()[0]
    assert before <= contacts <= after  # one moment's snapshot, taken during the backup
    assert orphans == 0  # whole transactions only
    assert (tmp_path / "fresh" / "data" / "documents" / "1" / "offer.pdf").read_bytes() == (
        b"%PDF-1.4 an offer")


def test_restore_keeps_what_it_replaces(tmp_path: Path) -> None:
    config = write_config(tmp_path / "site", free_port())
    assert run("db", "upgrade", "--config", str(config)).returncode == 0
    archive = tmp_path / "empty.tar.gz"
    assert run("backup", "--config", str(config), str(archive)).returncode == 0

    async def add_one() -> None:
        async with (await open_database(load_settings(config)) as db, db.session() as session,
                    session.begin()):
            session.add(Contact(first_name="Made", last_name="After"))

    asyncio.run(add_one())
    restored = run("restore", "--config", str(config), str(archive))
    assert restored.returncode == 0, restored.stderr
    kept = sorted((tmp_path / "site" / "data").glob("contactd.db.before-restore-*"))
    assert len(kept) == 1 and str(kept[0]) in restored.stdout
    with sqlite3.connect(kept[0]) as conn:
        assert conn.execute("SELECT last_name FROM contacts").fetchall() == [("After",)]
    with sqlite3.connect(tmp_path / "site" / "data" / "contactd.db") as conn:
        assert conn.execute("SELECT count(*) FROM contacts").fetchone() == (0,)


def test_a_damaged_archive_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    config = write_config(tmp_path / "site", free_port())
    assert run("db", "upgrade", "--config", str(config)).returncode == 0
    archive = tmp_path / "b.tar.gz"
    assert run("backup", "--config", str(config), str(archive)).returncode == 0
    # Rewrite the archive with one byte of the database changed: the tar is readable, the
    # checksum is not.
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(bad, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            assert data is not None
            body = bytearray(data.read())
            if member.name == "database/contactd.db":
                body[200] ^= 0xFF
            member.size = len(body)
            dst.addfile(member, BytesIO(bytes(body)))
    db_file = tmp_path / "site" / "data" / "contactd.db"
    before = db_file.read_bytes()
    for broken, needle in ((bad, "database/contactd.db is missing or damaged"),
                           (tmp_path / "none.tar.gz", "no backup file"),
                           (config, "not a readable contactd backup")):
        result = run("restore", "--config", str(config), str(broken))
        assert result.returncode == 2, result.stderr
        assert needle in result.stderr and "Traceback" not in result.stderr
    assert db_file.read_bytes() == before
    assert not list((tmp_path / "site" / "data").glob("*.before-restore-*"))


def test_restore_is_refused_while_a_daemon_runs_on_the_configuration(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "site", port)
    assert run("db", "upgrade", "--config", str(config)).returncode == 0
    archive = tmp_path / "b.tar.gz"
    assert run("backup", "--config", str(config), str(archive)).returncode == 0
    daemon = subprocess.Popen([*CONTACTD, "run", "--config", str(config)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_health(port, daemon)
        result = run("restore", "--config", str(config), str(archive))
        assert result.returncode == 2
        assert "a daemon answers at" in result.stderr
    finally:
        daemon.terminate()
        daemon.communicate(timeout=30)
    assert not list((tmp_path / "site" / "data").glob("*.before-restore-*"))


@pytest.mark.postgres
def test_postgresql_round_trip_through_pg_dump(tmp_path: Path, postgres_url: str) -> None:
    config = write_config(tmp_path / "pg", free_port(), postgres_url)
    assert run("db", "upgrade", "--config", str(config)).returncode == 0

    async def count_and_add(add: bool) -> int:
        async with (await open_database(load_settings(config)) as db, db.session() as session,
                    session.begin()):
            if add:
                session.add(Contact(first_name="Kept", last_name="InDump"))
            return int(await session.scalar(select(func.count(Contact.id))) or 0)

    assert asyncio.run(count_and_add(True)) == 1
    archive = tmp_path / "pg.tar.gz"
    made = run("backup", "--config", str(config), str(archive))
    assert made.returncode == 0, made.stderr
    assert asyncio.run(count_and_add(True)) == 2  # a row made after the backup
    restored = run("restore", "--config", str(config), str(archive))
    assert restored.returncode == 0, restored.stderr
    assert asyncio.run(count_and_add(False)) == 1
    kept = list((tmp_path / "pg" / "data").glob("contactd.pgdump.before-restore-*"))
    assert len(kept) == 1 and kept[0].stat().st_size > 0
    assert os.stat(kept[0]).st_mode & 0o077 == 0
