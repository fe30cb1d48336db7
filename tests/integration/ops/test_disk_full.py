"""Drill: the disk holding the SQLite database fills up while messages are being stored.

A small tmpfs (mounted by the test, as root) holds the database; a filler file takes most of
what is left. Storing then fails with an error that names the full disk, nothing already
stored is lost or damaged (PRAGMA integrity_check), and once space is freed the same
messages are stored."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from contactd.db.models import Base, OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel
from contactd.errors import StorageUnavailableError
from contactd.messaging.outbox import OutboundMessage, Outbox
from contactd.messaging.types import ClaimedMessage, SendResult


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


class NeverSent:
    """A sender the drill never reaches: the outbox only stores here."""

    async def send(self, message: ClaimedMessage) -> SendResult:
        raise AssertionError("nothing is sent in this drill")


def batch(start: int, n: int) -> list[OutboundMessage]:
    body = "x" * 600
    return [
        OutboundMessage(f"full-{i}", Channel.SMS, f"+4915200{i:05d}", f"{body} {i}")
        for i in range(start, start + n)
    ]


async def test_a_full_disk_refuses_new_messages_clearly_and_loses_nothing(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "3m") as disk:
        path = disk / "contactd.db"
        db = Database(f"sqlite+aiosqlite:///{path}")
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        filler = disk / "filler"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - 300_000))  # about 300 kB left
        stored = 0
        refused: StorageUnavailableError | None = None
        async with db, Outbox(db, {Channel.SMS: NeverSent()}, concurrency={Channel.SMS: 0}) as box:
            for start in range(0, 5000, 50):
                try:
                    await box.enqueue_many(batch(start, 50))
                except StorageUnavailableError as exc:
                    refused = exc
                    break
                stored += 50
            assert refused is not None, "the disk never filled"
            assert "disk holding the database is full" in refused.message
            assert refused.code == "storage_unavailable"
            assert stored > 0
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as check:
                assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            # Space comes back: the refused messages are stored, the earlier ones still there.
            filler.unlink()
            await box.enqueue_many(batch(stored, 50))
            async with db.session() as session:
                count = await session.scalar(select(func.count()).select_from(OutboxMessage))
        assert count == stored + 50
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
