"""Schema migrations through Alembic, driven from contactd's own URL and async engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from contactd.db.session import Database

MIGRATIONS = Path(__file__).with_name("migrations")

# Full-text index tables (FTS5 and its shadow tables) are made by raw SQL, not by models.
FTS_SUFFIXES = ("_fts", "_fts_data", "_fts_idx", "_fts_docsize", "_fts_config", "_fts_content")


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic filter: compare every table the models own, never the full-text ones."""
    return not (type_ == "table" and name is not None and name.endswith(FTS_SUFFIXES))


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revisions() -> set[str]:
    """Every revision this code can upgrade from (a backup at another one is refused)."""
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def downgrade(db: Database, revision: str) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))


async def current_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def autogenerate(db: Database, message: str, rev_id: str | None = None) -> None:
    """Developer helper: write a new revision from the difference between models and DB."""
    async with db.engine.begin() as conn:
        await conn.run_sync(
            lambda sync: command.revision(
                alembic_config(sync), message=message, autogenerate=True, rev_id=rev_id
            )
        )
