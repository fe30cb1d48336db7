"""Writing a batch of new contacts on SQLite: plain executemany on the driver connection.

SQLAlchemy's insert machinery costs more per row than SQLite itself, so new contacts go in
through the aiosqlite connection under the batch's transaction: one executemany per table
of parameter rows made by the validating side (see fold); the event loop only queues the
calls. Ids are given explicitly (from max(id)+1 on, the transaction holds the write lock:
row number + an offset, so they may skip the numbers of invalid or repeated rows), and the
full-text rows of the batch are made by one INSERT … SELECT over that id range instead of
the per-row trigger, which FTS5 pays for with a flush per statement.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from contactd.crm import fts
from contactd.crm.imports.fold import Params

# Per batch, `{offset}` (contact id minus row number, an int) and `{now}` (a timestamp this
# module formats) are written into the statements: the parameter rows come as they are.
CONTACTS_SQL: Final = (
    "INSERT INTO contacts (id, first_name, last_name, organisation_id, job_title, language, "
    "owner_id, notes, custom, created_at, updated_at, search_name, search_text, name_key) "
    "VALUES (? + {offset}, ?, ?, (SELECT id FROM temp.contactd_import_orgs WHERE key = ?), "
    "?, coalesce(nullif(?, ''), 'en'), ?, ?, ?, '{now}', '{now}', ?, ?, ?)"
)
PHONES_SQL: Final = (
    "INSERT INTO contact_phones (contact_id, e164, type, label, region, time_zones, is_primary) "
    "VALUES (? + {offset}, ?, ?, '', ?, ?, ?)"
)
EMAILS_SQL: Final = (
    "INSERT INTO contact_emails (contact_id, address, label, is_primary) "
    "VALUES (? + {offset}, ?, '', ?)"
)
TAGS_SQL: Final = (
    "INSERT INTO contact_tags (contact_id, tag_id) "
    "VALUES (? + {offset}, (SELECT id FROM tags WHERE name = ?))"
)
ADDRESSES_SQL: Final = (
    "INSERT INTO addresses (contact_id, label, street, city, postal_code, region, country) "
    "VALUES (? + {offset}, '', ?, ?, ?, '', ?)"
)
# Organisation ids by case-folded name, for the contacts statement; the import's connection
# only, dropped when the import ends.
ORG_KEYS_CREATE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS contactd_import_orgs "
    "(key TEXT PRIMARY KEY, id INTEGER NOT NULL)"
)
ORG_KEYS_ADD: Final = "INSERT OR IGNORE INTO temp.contactd_import_orgs (key, id) VALUES (?, ?)"
ORG_KEYS_DROP: Final = "DROP TABLE IF EXISTS temp.contactd_import_orgs"
# Pages the import's connection may keep in memory (KiB when negative): the indexes of a
# large contacts table stay cached between batches. Restored when the import ends.
IMPORT_CACHE_KIB: Final = 65536
# WAL pages after which the import's connection copies the WAL back into the database (the
# default is 1,000). Each checkpoint rewrites the index pages every batch touches; at 16,384
# (64 MiB) a million-row import spent about a quarter less time writing. One checkpoint
# runs when the import ends, so no work is left for the next writer. Restored afterwards.
IMPORT_CHECKPOINT_PAGES: Final = 16384


class _Driver(Protocol):
    """The part of aiosqlite.Connection used here."""

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Any: ...

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Any: ...


async def driver(conn: AsyncConnection) -> _Driver:
    raw = await conn.get_raw_connection()
    found: _Driver | None = raw.driver_connection
    assert found is not None
    return found


async def write_rows(
    conn: AsyncConnection, rows: Params, first_id: int, *, now: datetime, index: bool
) -> int:
    """Insert the new contacts of a batch with their numbers, e-mails, tags and addresses,
    inside the caller's transaction, which holds the write lock, as ids first_id + (row
    number - the first row's number). Organisations must be in the org-key table, tags in
    `tags`. `index`: keep contacts_fts in step. Returns the offset (id - row number)."""
    contacts, phones, emails, tags, addresses = rows
    offset = int(first_id) - contacts[0][0]
    db = await driver(conn)
    fill = {"offset": offset, "now": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")}
    if index:
        await db.execute(fts.SQLITE_SUSPEND_CONTACTS_TRIGGER)
    for sql, params in ((CONTACTS_SQL, contacts), (PHONES_SQL, phones), (EMAILS_SQL, emails),
                        (TAGS_SQL, tags), (ADDRESSES_SQL, addresses)):
        if params:
            await db.executemany(sql.format_map(fill), params)
    if index:
        await db.execute(fts.SQLITE_INDEX_CONTACTS_RANGE, (first_id, contacts[-1][0] + offset))
        await db.execute(fts.SQLITE_RESTORE_CONTACTS_TRIGGER)
    return offset
