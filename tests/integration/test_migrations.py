"""Migrations build exactly the schema the models describe, on SQLite and on PostgreSQL,
and go down and up again without loss of the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from contactd.db import migrate
from contactd.db.models import Base
from contactd.db.session import Database


async def _round_trip(url: str) -> None:
    async with Database(url) as db:
        await migrate.upgrade(db)
        assert await migrate.current_revision(db) == migrate.head_revision()
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"include_object": migrate.include_object, "compare_type": False}
                    ),
                    Base.metadata,
                )
            )
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert diff == [], f"models and migrations differ: {diff}"
        assert set(Base.metadata.tables) <= tables
        await migrate.downgrade(db, "base")
        async with db.engine.connect() as conn:
            left = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert left <= {"alembic_version"}
        await migrate.upgrade(db)
        assert await migrate.current_revision(db) == migrate.head_revision()


async def test_sqlite_round_trip(tmp_path: Path) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_postgres_round_trip(postgres_url: str) -> None:
    await _round_trip(postgres_url)
