"""Queries shared by the CRM services and the importer (Core, on an AsyncConnection)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from itertools import chain
from typing import Any, Final

from sqlalchemy import Insert, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from contactd.crm import fts
from contactd.crm.searchtext import build_search_text, name_key
from contactd.db.models import (
    Address,
    Contact,
    ContactEmail,
    ContactPhone,
    Organisation,
    PossibleDuplicate,
    Tag,
)

CHUNK: Final = 5000  # bound parameters per IN (...) list
# Contacts from which refresh_search_text re-indexes in bulk on SQLite (see fts).
BULK_REFRESH: Final = 20
SQLITE_MAX_PARAMS: Final = 32000  # SQLite >= 3.32 allows 32766 bound parameters

contacts: Final[Table] = Contact.__table__  # type: ignore[assignment]
phones: Final[Table] = ContactPhone.__table__  # type: ignore[assignment]
emails: Final[Table] = ContactEmail.__table__  # type: ignore[assignment]
organisations: Final[Table] = Organisation.__table__  # type: ignore[assignment]
possible_duplicates: Final[Table] = PossibleDuplicate.__table__  # type: ignore[assignment]


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_ignore(conn: AsyncConnection, table: Table) -> Insert:
    """INSERT … ON CONFLICT DO NOTHING for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


async def contacts_with(
    conn: AsyncConnection, numbers: Sequence[str], addresses: Sequence[str]
) -> set[int]:
    """Every live contact having one of these E.164 numbers or e-mails."""
    found: set[int] = set()
    for table, column, values in (
        (phones, phones.c.e164, sorted(set(numbers))),
        (emails, emails.c.address, sorted({a.lower() for a in addresses})),
    ):
        for part in chunks(values):
            found.update((await conn.execute(
                select(table.c.contact_id)
                .join(contacts, contacts.c.id == table.c.contact_id)
                .where(column.in_(part), contacts.c.merged_into_id.is_(None))
            )).scalars())
    return found


async def owners_of_phones(conn: AsyncConnection, numbers: Sequence[str]) -> dict[str, int]:
    """E.164 -> id of the live (not merged) contact that has it; one indexed lookup per chunk."""
    found: dict[str, int] = {}
    for part in chunks(sorted(set(numbers))):
        rows = await conn.execute(
            select(phones.c.e164, phones.c.contact_id)
            .join(contacts, contacts.c.id == phones.c.contact_id)
            .where(phones.c.e164.in_(part), contacts.c.merged_into_id.is_(None))
            .order_by(phones.c.contact_id)
        )
        for e164, contact_id in rows:
            found.setdefault(e164, contact_id)
    return found


async def names_of(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Contact id -> (first name, last name), for matching (see contactd.crm.matching)."""
    found: dict[int, tuple[str, str]] = {}
    for part in chunks(sorted(set(ids))):
        rows = await conn.execute(
            select(contacts.c.id, contacts.c.first_name, contacts.c.last_name)
            .where(contacts.c.id.in_(part))
        )
        for cid, first, last in rows:
            found[cid] = (first or "", last or "")
    return found


async def flag_possible_duplicates(
    conn: AsyncConnection, pairs: Iterable[tuple[int, int]]
) -> None:
    """Store pairs of contacts that share a number but whose names contradict (see
    contactd.crm.matching), each pair once, for review."""
    ordered = sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})
    if not ordered:
        return
    now = datetime.now(UTC)
    for part in chunks(ordered, 1000):
        await conn.execute(insert_ignore(conn, possible_duplicates), [
            {"contact_id": a, "other_id": b, "reason": "shared_phone", "created_at": now}
            for a, b in part
        ])


async def owners_of_emails(conn: AsyncConnection, addresses: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in chunks(sorted({a.lower() for a in addresses})):
        rows = await conn.execute(
            select(emails.c.address, emails.c.contact_id)
            .join(contacts, contacts.c.id == emails.c.contact_id)
            .where(emails.c.address.in_(part), contacts.c.merged_into_id.is_(None))
            .order_by(emails.c.contact_id)
        )
        for address, contact_id in rows:
            found.setdefault(address, contact_id)
    return found


async def refresh_search_text(conn: AsyncConnection, contact_ids: Iterable[int]) -> None:
    """Recompute contacts.search_name/search_text from the stored rows (FTS triggers follow)."""
    ids = sorted(set(contact_ids))
    bulk = (
        conn.dialect.name == "sqlite"
        and len(ids) >= BULK_REFRESH
        and await sqlite_trigger_exists(conn, fts.CONTACTS_UPDATE_TRIGGER)
    )
    for part in chunks(ids):
        numbers: dict[int, list[str]] = defaultdict(list)
        for cid, e164 in await conn.execute(
            select(phones.c.contact_id, phones.c.e164).where(phones.c.contact_id.in_(part))
        ):
            numbers[cid].append(e164)
        mails: dict[int, list[str]] = defaultdict(list)
        for cid, address in await conn.execute(
            select(emails.c.contact_id, emails.c.address).where(emails.c.contact_id.in_(part))
        ):
            mails[cid].append(address)
        rows = await conn.execute(
            select(
                contacts.c.id, contacts.c.first_name, contacts.c.last_name, contacts.c.job_title,
                contacts.c.notes, organisations.c.name,
            )
            .select_from(contacts.outerjoin(organisations))
            .where(contacts.c.id.in_(part))
        )
        params = []
        for cid, first, last, title, notes, org in rows:
            name, text = build_search_text(
                first_name=first, last_name=last, organisation=org or "", job_title=title,
                phones=numbers[cid], emails=mails[cid], notes=notes,
            )
            params.append({"cid": cid, "name": name, "text": text,
                           "key": name_key(first, last, org or "")})
        if not params:
            continue
        statement = (
            update(contacts)
            .where(contacts.c.id == bindparam("cid"))
            .values(search_name=bindparam("name"), search_text=bindparam("text"),
                    name_key=bindparam("key"))
        )
        if not bulk:
            await conn.execute(statement, params)
            continue
        marks = ", ".join("?" * len(part))
        await conn.exec_driver_sql(fts.SQLITE_SUSPEND_UPDATE_TRIGGER)
        await conn.exec_driver_sql(fts.SQLITE_UNINDEX_CONTACTS.format(ids=marks), tuple(part))
        await conn.execute(statement, params)
        await conn.exec_driver_sql(fts.SQLITE_INDEX_CONTACTS.format(ids=marks), tuple(part))
        await conn.exec_driver_sql(fts.SQLITE_RESTORE_UPDATE_TRIGGER)


async def sqlite_trigger_exists(conn: AsyncConnection, name: str) -> bool:
    result = await conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
    )
    return result.first() is not None


tags: Final[Table] = Tag.__table__  # type: ignore[assignment]
addresses: Final[Table] = Address.__table__  # type: ignore[assignment]


def _json(value: Any) -> str:
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value)


def _sqlite_converter(sample: Any) -> Callable[[Any], Any] | None:
    """How SQLAlchemy would bind a value like `sample` on SQLite; None: as it is."""
    if isinstance(sample, datetime):
        memo: dict[datetime, str] = {}

        def stamp(value: datetime | None) -> str | None:
            # UTC "YYYY-MM-DD HH:MM:SS.ffffff", as UTCDateTime stores; rows share stamps.
            if value is None:
                return None
            text = memo.get(value)
            if text is None:
                text = memo[value] = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return text

        return stamp
    if isinstance(sample, dict | list):
        return _json
    if isinstance(sample, bool):
        return int
    if isinstance(sample, StrEnum):
        return str
    return None


async def bulk_insert(
    conn: AsyncConnection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Insert many rows given as tuples in `columns` order, without per-row ORM work.

    SQLite: multi-row VALUES pages through the driver, in the same transaction. Pages rather
    than executemany: each statement is one savepoint and FTS5 flushes its pending terms at
    every savepoint, so row-by-row inserts through the contacts_fts trigger cost ~150 µs each
    against ~30 µs in pages. Elsewhere SQLAlchemy's executemany (asyncpg does it in bulk).
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        await conn.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in rows])
        return
    converters = [(i, c) for i, v in enumerate(rows[0]) if (c := _sqlite_converter(v))]
    if converters:
        converted = []
        for row in rows:
            values = list(row)
            for i, convert in converters:
                values[i] = convert(values[i])
            converted.append(values)
        rows = converted
    page = max(1, min(1000, SQLITE_MAX_PARAMS // len(columns)))
    one = f"({', '.join('?' for _ in columns)})"
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    full_sql = head + ", ".join([one] * page)
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    for start in range(0, len(rows), page):
        part = rows[start : start + page]
        params = list(chain.from_iterable(part))
        sql = full_sql if len(part) == page else head + ", ".join([one] * len(part))
        await driver.execute(sql, params)


async def insert_ids(
    conn: AsyncConnection,
    table: Table,
    rows: list[dict[str, Any]] | list[tuple[Any, ...]],
    columns: Sequence[str] | None = None,
) -> list[int]:
    """Insert many rows, return their ids in order, fast on both backends.

    PostgreSQL: INSERT … RETURNING in pages. SQLite cannot order RETURNING rows, which makes
    SQLAlchemy fall back to one statement per row; instead one executemany, then the ids are
    the last len(rows) rowids: SQLite gives each new row max(rowid)+1 and this transaction
    holds the write lock from its first insert to its commit, so nobody else interleaves.
    """
    if not rows:
        return []
    pk = table.c.id
    if columns is None:  # rows are dicts
        columns = list(rows[0])
        tuples = [tuple(r[c] for c in columns) for r in rows]  # type: ignore[call-overload]
    else:
        tuples = rows  # type: ignore[assignment]
    if conn.dialect.name != "sqlite":
        result = await conn.execute(
            insert(table).returning(pk, sort_by_parameter_order=True),
            [dict(zip(columns, t, strict=True)) for t in tuples],
        )
        return list(result.scalars())
    await bulk_insert(conn, table, columns, tuples)
    last = (await conn.execute(select(func.max(pk)))).scalar_one()
    return list(range(last - len(rows) + 1, last + 1))
