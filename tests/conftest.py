"""Shared fixtures: a fresh database per test, settings, and the real-peer plugins.

Peer fixtures live in tests/peers/<peer>.py. Under CI=true a skipped peer test fails the run:
CI must exercise every real peer, a developer may run without them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contactd.config import Settings, load_settings
from contactd.db.models import Base
from contactd.db.session import Database

pytest_plugins = [
    "tests.peers.asterisk",
    "tests.peers.smsc",
    "tests.peers.smtp",
    "tests.peers.postgres",
    "tests.peers.chromium",
    "tests.peers.dovecot",
]

PEER_MARKERS = {"asterisk", "smsc", "smtp", "postgres", "chromium", "sipp", "dovecot"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(None, {"CONTACTD_GENERAL__DATA_DIR": str(tmp_path)})


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh SQLite database (WAL, foreign keys on) with every table, per test."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with database:
        yield database


_skipped_peer_tests: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and PEER_MARKERS & set(report.keywords):
        _skipped_peer_tests.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") == "true" and _skipped_peer_tests:
        print(f"\nCI: {len(_skipped_peer_tests)} real-peer test(s) skipped; failing the run:")
        for nodeid in _skipped_peer_tests[:20]:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
