"""Writing a batch of new contacts on SQLite: plain executemany on the driver connection.

SQLAlchemy's insert machinery costs more per row than SQLite itself, so new contacts go in
through the aiosqlite connection under the batch's transaction: one executemany per table,
fed by generators that the driver's thread consumes (the event loop only queues the calls).
Ids are given explicitly (max(id)+1…, the transaction holds the write lock), and the
full-text rows of the batch are made by one INSERT … SELECT over that id range instead of
the per-row trigger, which FTS5 pays for with a flush per statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import count
from typing import Any, Final, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from contactd.crm import fts
from contactd.crm.imports.validate import Candidate

CONTACTS_SQL: Final = (
    "INSERT INTO contacts (id, first_name, last_name, organisation_id, job_title, language, "
    "owner_id, notes, custom, created_at, updated_at, search_name, search_text) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
PHONES_SQL: Final = (
    "INSERT INTO contact_phones (contact_id, e164, type, label, region, time_zones, is_primary) "
    "VALUES (?, ?, ?, '', ?, ?, ?)"
)
EMAILS_SQL: Final = (
    "INSERT INTO contact_emails (contact_id, address, label, is_primary) VALUES (?, ?, '', ?)"
)
TAGS_SQL: Final = "INSERT INTO contact_tags (contact_id, tag_id) VALUES (?, ?)"
ADDRESSES_SQL: Final = (
    "INSERT INTO addresses (contact_id, label, street, city, postal_code, region, country) "
    "VALUES (?, '', ?, ?, ?, '', ?)"
)
# Pages the import's connection may keep in memory (KiB when negative): the indexes of a
# large contacts table stay cached between batches. Restored when the import ends.
IMPORT_CACHE_KIB: Final = 65536


class _Driver(Protocol):
    """The part of aiosqlite.Connection used here."""

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Any: ...

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Any: ...


async def driver(conn: AsyncConnection) -> _Driver:
    raw = await conn.get_raw_connection()
    found: _Driver | None = raw.driver_connection
    assert found is not None
    return found


async def has_insert_trigger(conn: AsyncConnection) -> bool:
    """Whether contacts are indexed by the full-text trigger (migrated schema)."""
    result = await conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
        (fts.CONTACTS_INSERT_TRIGGER,),
    )
    return result.first() is not None


async def write_new(
    conn: AsyncConnection,
    rows: Sequence[Candidate],
    first_id: int,
    *,
    organisations: dict[str, int],
    tags: dict[str, int],
    now: str,
    index: bool,
) -> None:
    """Insert `rows` as contacts first_id, first_id+1, … with their numbers, e-mails, tags and
    addresses, inside the caller's transaction. `index`: keep contacts_fts in step."""
    if not rows:
        return
    db = await driver(conn)
    last_id = first_id + len(rows) - 1

    def contacts() -> Iterator[tuple[Any, ...]]:
        for cid, c in zip(count(first_id), rows):
            org = organisations.get(c[3].casefold()) if c[3] else None
            yield (cid, c[1], c[2], org, c[4], c[5] or "en", c[7], c[6], c[8], now, now, c[13],
                   c[14])

    if index:
        await db.execute(fts.SQLITE_SUSPEND_CONTACTS_TRIGGER)
    await db.executemany(CONTACTS_SQL, contacts())
    await db.executemany(PHONES_SQL, (
        (cid, p[0], p[1], p[2], p[3], i == 0)
        for cid, c in zip(count(first_id), rows) for i, p in enumerate(c[9])
    ))
    if any(c[10] for c in rows):
        await db.executemany(EMAILS_SQL, (
            (cid, e, i == 0) for cid, c in zip(count(first_id), rows) for i, e in enumerate(c[10])
        ))
    if any(c[11] for c in rows):
        await db.executemany(TAGS_SQL, (
            (cid, tags[t]) for cid, c in zip(count(first_id), rows) for t in c[11]
        ))
    if any(c[12] for c in rows):
        await db.executemany(ADDRESSES_SQL, (
            (cid, *a) for cid, c in zip(count(first_id), rows) if (a := c[12]) is not None
        ))
    if index:
        await db.execute(fts.SQLITE_INDEX_CONTACTS_RANGE, (first_id, last_id))
        await db.execute(fts.SQLITE_RESTORE_CONTACTS_TRIGGER)
