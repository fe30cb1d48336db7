"""Caller ID / e-mail -> contact on the hot path of every inbound call.

Through the pooled engine a lookup on aiosqlite costs about five hand-offs to the driver's
thread (check-out, cursor, execute, fetch, rollback on return), ~1 ms on a busy machine. This
keeps one read-only connection of its own on SQLite and runs the indexed query in a single
hand-off; on PostgreSQL it uses the pool (one round trip with asyncpg). An async context
manager: the daemon enters it once.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import aiosqlite
from sqlalchemy import text

from contactd.crm.bulk_phones import PhoneNormaliser
from contactd.db.session import Database

_SELECT: Final = """
SELECT c.id, c.first_name, c.last_name, o.name, c.owner_id, c.language
FROM {table} x JOIN contacts c ON c.id = x.contact_id
LEFT OUTER JOIN organisations o ON o.id = c.organisation_id
WHERE x.{column} = :value AND c.merged_into_id IS NULL
ORDER BY c.id LIMIT 1"""
PHONE_SQL: Final = _SELECT.format(table="contact_phones", column="e164")
EMAIL_SQL: Final = _SELECT.format(table="contact_emails", column="address")


@dataclass(frozen=True, slots=True)
class ContactMatch:
    """Who a caller ID or e-mail belongs to: enough for a screen pop or an IVR greeting."""

    contact_id: int
    display_name: str
    organisation: str | None
    owner_id: int | None
    language: str


def _match(row: Any) -> ContactMatch | None:
    if row is None:
        return None
    cid, first, last, org, owner, language = row
    return ContactMatch(cid, f"{first} {last}".strip() or (org or ""), org, owner, language)


class CallerLookup:
    def __init__(self, db: Database, *, default_region: str | None) -> None:
        self.db = db
        self.phones = PhoneNormaliser(default_region)
        self._conn: aiosqlite.Connection | None = None
        database = db.engine.url.database
        self._path = (
            os.path.abspath(database)
            if db.dialect == "sqlite" and database not in (None, "", ":memory:")
            else None
        )

    async def __aenter__(self) -> CallerLookup:
        if self._path is not None:
            self._conn = await aiosqlite.connect(f"file:{self._path}?mode=ro", uri=True)
            await self._conn.execute("PRAGMA busy_timeout=5000")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def by_phone(self, raw: str) -> ContactMatch | None:
        """None for unknown callers and for caller IDs that are not numbers ("anonymous")."""
        parsed = self.phones.try_parse(raw)
        if isinstance(parsed, str):
            return None
        return await self._one(PHONE_SQL, parsed.e164)

    async def by_email(self, address: str) -> ContactMatch | None:
        return await self._one(EMAIL_SQL, address.strip().lower())

    async def _one(self, sql: str, value: str) -> ContactMatch | None:
        if self._conn is not None:
            try:
                rows = await self._conn.execute_fetchall(sql, {"value": value})
            except sqlite3.OperationalError:
                rows = None  # e.g. the file was replaced: answer through the pool instead
            if rows is not None:
                return _match(next(iter(rows), None))
        async with self.db.engine.connect() as conn:
            return _match((await conn.execute(text(sql), {"value": value})).first())
