"""A daemon's PostgreSQL connections cut while idle in the pool (a server restart, a pooler's
idle timeout) are replaced before use: the next statement works, nothing fails first."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from contactd.db import session as db_session
from contactd.db.session import Database
from tests.peers.postgres import PostgresServer


async def _backend_pids(db: Database) -> set[int]:
    """Pids of the server processes behind every connection the pool holds (all checked out
    at once, so that each is a different one)."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_one_pid(db)) for _ in range(3)]
    return {task.result() for task in tasks}


async def _one_pid(db: Database) -> int:
    async with db.session() as session:
        pid = int(await session.scalar(text("SELECT pg_backend_pid()")))
        await asyncio.sleep(0.2)  # held while the other two are taken
        return pid


async def test_connections_cut_while_idle_are_replaced_before_use(
    postgres_server: PostgresServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_session, "IDLE_PING_S", 0.3)
    async with Database(postgres_url) as db:
        before = await _backend_pids(db)
        assert len(before) == 3
        name = postgres_url.rsplit("/", 1)[1]
        postgres_server.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}'")
        await asyncio.sleep(0.5)  # idle longer than IDLE_PING_S: each is pinged, found dead
        after = await _backend_pids(db)
        assert len(after) == 3 and not after & before  # three new connections, no error
