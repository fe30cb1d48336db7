"""Export any filtered view of contacts to CSV or XLSX, safe to open in a spreadsheet.

A cell starting with = + - @ (or a tab/CR) is a formula to Excel and LibreOffice; such cells
get a leading apostrophe so they show as text and never run (OWASP "CSV injection").
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select

from contactd.crm import repo
from contactd.crm.search import ContactSearch, Filters, search_statement
from contactd.crm.spreadsheet import write_csv, write_xlsx
from contactd.db.models import Tag, User, contact_tags
from contactd.db.session import Database
from contactd.errors import ValidationError

PAGE: Final = 5000
BASE_COLUMNS: Final = ("id", "first_name", "last_name", "organisation", "job_title", "phones",
                       "emails", "tags", "owner", "language", "notes")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    format: str


async def _pages(db: Database, filters: Filters) -> AsyncIterator[list[list[Any]]]:
    offset = 0
    c = repo.contacts
    while True:
        stmt, params = search_statement(filters, db.dialect, limit=PAGE, offset=offset)
        async with db.engine.connect() as conn:
            ids = [row[0] for row in (await conn.execute(stmt, params))]
            if not ids:
                return
            details = await conn.execute(
                select(c.c.id, c.c.first_name, c.c.last_name, repo.organisations.c.name,
                       c.c.job_title, User.username, c.c.language, c.c.notes, c.c.custom)
                .select_from(c.outerjoin(repo.organisations).outerjoin(User,
                                                                       User.id == c.c.owner_id))
                .where(c.c.id.in_(ids))
            )
            by_id = {row[0]: row for row in details}
            phones = await _grouped(conn, repo.phones.c.contact_id, repo.phones.c.e164, ids)
            emails = await _grouped(conn, repo.emails.c.contact_id, repo.emails.c.address, ids)
            tags: dict[int, list[str]] = defaultdict(list)
            for cid, name in await conn.execute(
                select(contact_tags.c.contact_id, Tag.name)
                .join(Tag, Tag.id == contact_tags.c.tag_id)
                .where(contact_tags.c.contact_id.in_(ids)).order_by(Tag.name)
            ):
                tags[cid].append(name)
        yield [
            [cid, row[1], row[2], row[3] or "", row[4], "; ".join(phones[cid]),
             "; ".join(emails[cid]), ", ".join(tags[cid]), row[5] or "", row[6], row[7],
             row[8] or {}]
            for cid in ids if (row := by_id.get(cid)) is not None
        ]
        if len(ids) < PAGE:
            return
        offset += PAGE


async def _grouped(conn: Any, key: Any, value: Any, ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for cid, item in await conn.execute(
        select(key, value).where(key.in_(ids)).order_by(key, value)
    ):
        out[cid].append(item)
    return out


async def export_contacts(
    db: Database, target: Path, filters: Filters | None = None, *, fmt: str | None = None,
    custom_keys: Sequence[str] = (),
) -> ExportResult:
    """Write every contact the filters select (a segment, tags, owner, a search) to `target`."""
    fmt = (fmt or target.suffix.lstrip(".") or "csv").lower()
    if fmt not in ("csv", "xlsx"):
        raise ValidationError(f"cannot export to {fmt!r}: csv or xlsx", field="format")
    filters = await ContactSearch(db).resolve(filters or Filters())
    header = [*BASE_COLUMNS, *custom_keys]
    rows: list[list[Any]] = []
    async for page in _pages(db, filters):
        for values in page:
            custom = values.pop()
            rows.append([*values, *(_text(custom.get(k)) for k in custom_keys)])
    await asyncio.to_thread(_write, target, fmt, header, rows)
    return ExportResult(target, len(rows), fmt)


def _text(value: Any) -> Any:
    return "" if value is None else value


def _write(target: Path, fmt: str, header: list[str], rows: list[list[Any]]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    if fmt == "csv":
        write_csv(partial, header, rows)
    else:
        write_xlsx(partial, "contacts", header, rows)
    partial.replace(target)
