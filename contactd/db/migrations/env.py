"""Alembic environment: runs migrations on the connection contactd hands it (see migrate.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from contactd.db.models import Base

TARGET = Base.metadata


# Full-text index tables (FTS5 and its shadow tables) are made by raw SQL, not by models.
_FTS_SUFFIXES = ("_fts", "_fts_data", "_fts_idx", "_fts_docsize", "_fts_config", "_fts_content")


def _include(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (type_ == "table" and name is not None and name.endswith(_FTS_SUFFIXES))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=TARGET,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=_include,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `contactd db upgrade`, not the alembic CLI")
_run(connection)
