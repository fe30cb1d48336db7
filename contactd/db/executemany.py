"""executemany without SQLAlchemy's per-row parameter processing, where that is safe.

The outbox writes thousands of small UPDATEs a second through executemany. On SQLite,
SQLAlchemy's processing of each row's parameters (type processors, one dict per row) cost
more than the statements themselves. For a statement whose parameters are all plain ints,
strings, None or aware datetimes, `execute_many` runs the statement's compiled SQLite text
on the driver with tuples, writing each datetime as SQLAlchemy's DateTime does there (UTC,
`YYYY-MM-DD HH:MM:SS.ffffff`). Any other value, and any other database, takes the Core path.
Not for JSON columns: a string bound to one would be written as it is, not JSON-encoded.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import Compiled

_SQLITE = sqlite.dialect()


class _NotPlain(Exception):
    """A parameter value the driver path does not write the way SQLAlchemy would."""


async def execute_many(
    conn: AsyncConnection, statement: Executable, params: list[dict[str, Any]]
) -> None:
    """Run `statement` once per parameter set in `params`, in one executemany."""
    if not params:
        return
    if conn.dialect.name == "sqlite":
        sql, names = _sqlite_form(statement)
        try:
            rows = [tuple(_plain(p[name]) for name in names) for p in params]
        except _NotPlain:
            pass
        else:
            await conn.exec_driver_sql(sql, rows)
            return
    await conn.execute(statement, params)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, int | str):  # bool is an int: stored as 0/1 too
        return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    raise _NotPlain


@functools.lru_cache(maxsize=256)  # statements are built once and reused; bounded anyway
def _sqlite_form(statement: Executable) -> tuple[str, tuple[str, ...]]:
    """The statement's SQLite text and the names of its parameters in order."""
    compiled: Compiled = statement.compile(dialect=_SQLITE)  # type: ignore[attr-defined]
    return compiled.string, tuple(getattr(compiled, "positiontup", None) or ())
