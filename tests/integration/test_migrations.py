"""Migrations build exactly the schema the models describe, on SQLite and on PostgreSQL,
and go down and up again without loss of the schema."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from contactd.crm.fts import create_fts
from contactd.db import migrate
from contactd.db.models import Base
from contactd.db.session import Database
from tests.peers.postgres import PostgresServer


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


def _fingerprint(sync: Connection) -> dict[str, Any]:
    """The schema as a database reports it: every column with its type and nullability,
    every index, and the full-text objects (SQLite: FTS5 tables and triggers with their SQL;
    PostgreSQL: triggers, trigger functions and indexes with their definitions)."""
    inspector = inspect(sync)
    tables = sorted(set(inspector.get_table_names()) - {"alembic_version"})
    columns = {
        t: sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(t))
        for t in tables
    }
    found: dict[str, Any] = {"columns": columns}
    if sync.dialect.name == "sqlite":
        found["objects"] = sorted(
            (kind, name, " ".join((sql or "").split()))
            for kind, name, sql in sync.execute(text(
                "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                " AND name <> 'alembic_version' AND (type IN ('trigger', 'index')"
                " OR sql LIKE 'CREATE VIRTUAL%')"
            ))
        )
    else:
        found["triggers"] = sorted(sync.execute(text(
            "SELECT trigger_name, event_object_table, event_manipulation, action_timing,"
            " action_statement FROM information_schema.triggers"
        )).all())
        found["functions"] = sorted(sync.execute(text(
            "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n"
            " ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
        )).all())
        found["indexes"] = sorted(sync.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )).all())
    return found


async def _schema_matches_runtime(url_migrated: str, url_runtime: str) -> None:
    """`alembic upgrade head` builds what the runtime models plus contactd.crm.fts build,
    types and full-text tables and triggers included."""
    async with Database(url_migrated) as migrated, Database(url_runtime) as runtime:
        await migrate.upgrade(migrated)
        async with runtime.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(create_fts)
        async with migrated.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"include_object": migrate.include_object, "compare_type": True}
                    ),
                    Base.metadata,
                )
            )
            after_migrations = await conn.run_sync(_fingerprint)
        async with runtime.engine.connect() as conn:
            expected = await conn.run_sync(_fingerprint)
    assert diff == [], f"models and migrations differ: {diff}"
    assert after_migrations == expected


async def test_sqlite_migrated_schema_is_the_runtime_schema(tmp_path: Path) -> None:
    await _schema_matches_runtime(f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}",
                                  f"sqlite+aiosqlite:///{tmp_path / 'runtime.db'}")


@pytest.mark.postgres
async def test_postgres_migrated_schema_is_the_runtime_schema(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.psql(f"CREATE DATABASE {name}")
    try:
        await _schema_matches_runtime(postgres_url, postgres_server.url(name))
    finally:
        postgres_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_revisions_are_frozen_text() -> None:
    """A revision never imports application code: what it builds must not change when that
    code does (the schema test above then shows the drift)."""
    versions = Path(migrate.__file__).parent / "migrations" / "versions"
    revisions = sorted(versions.glob("0*.py"))
    assert revisions
    for path in revisions:
        source = path.read_text(encoding="utf-8")
        assert re.search(r"^\s*(from|import)\s+contactd\b", source, re.MULTILINE) is None, path
