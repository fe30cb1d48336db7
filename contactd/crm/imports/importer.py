"""Contact import: validate rows off the loop (see batches), write them in batches of whole rows.

Each batch is one transaction holding every row of it completely (contact, numbers, e-mails,
tags, address), so a crash mid-import leaves only whole rows behind, and a re-run finds them
as duplicates. Inserts are executemany/RETURNING in bulk: no ORM objects on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from contactd.crm import repo
from contactd.crm.fields import FieldDef
from contactd.crm.imports.batches import Context, Reader
from contactd.crm.imports.reader import FileStats
from contactd.crm.imports.validate import ContactRow, RowError
from contactd.db.base import utcnow
from contactd.db.models import CustomFieldDef, Tag, User, contact_tags
from contactd.db.session import Database
from contactd.enums import CustomFieldEntity

BATCH_ROWS: Final = 5000
PROCESS_BYTES: Final = 4 << 20  # files from ~40,000 rows validate in a worker process
_FILLABLE: Final = ("first_name", "last_name", "job_title", "notes")
_CONTACT_COLUMNS: Final = ("first_name", "last_name", "organisation_id", "job_title", "language",
                           "owner_id", "notes", "custom", "created_at", "updated_at",
                           "search_name", "search_text")
_PHONE_COLUMNS: Final = ("contact_id", "e164", "type", "label", "region", "time_zones",
                         "is_primary")
_EMAIL_COLUMNS: Final = ("contact_id", "address", "label", "is_primary")
_TAG_COLUMNS: Final = ("contact_id", "tag_id")
_ADDRESS_COLUMNS: Final = ("contact_id", "label", "street", "city", "postal_code", "region",
                           "country")


@dataclass
class ImportReport:
    path: Path
    dry_run: bool
    rows: int = 0  # data rows read, empty ones included
    empty: int = 0
    imported: int = 0  # new contacts
    updated: int = 0  # rows that matched a contact already stored
    duplicates: int = 0  # rows that repeated an earlier row of the same file
    invalid: int = 0
    errors: list[RowError] = field(default_factory=list)
    encodings: dict[str, int] = field(default_factory=dict)
    delimiter: str = ""
    kind: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def write_error_report(report: ImportReport, target: Path) -> Path:
    """The per-row error report: one line per problem (row, column, reason, value)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["row", "column", "reason", "value"])
        for err in report.errors:
            writer.writerow([err.row, err.column, err.reason, err.value])
    return target


class ContactImporter:
    """Imports one file; `progress(rows_done)` is called after every batch.

    `processes`: validate in a worker process (None: when the file is over PROCESS_BYTES)."""

    def __init__(
        self,
        db: Database,
        *,
        default_region: str | None,
        batch_rows: int = BATCH_ROWS,
        progress: Callable[[int], None] | None = None,
        processes: bool | None = None,
    ) -> None:
        self.db = db
        self.processes = processes
        self.region = default_region
        self.batch_rows = batch_rows
        self.progress = progress
        # dedupe key (E.164 or e-mail) -> contact id; negative: a new row not yet written.
        self._seen: dict[str, int] = {}
        self._pending: dict[int, ContactRow] = {}  # dry run: new rows by row number
        self._created: set[int] = set()
        # False when the import started on an empty contacts table: every stored number is
        # then one this import wrote and knows, and the per-batch lookups are skipped.
        self._stored_before = True

    async def run(
        self, path: Path, *, mapping: Mapping[str, str] | None = None, dry_run: bool = False
    ) -> ImportReport:
        started = time.perf_counter()
        report = ImportReport(path=path, dry_run=dry_run)
        ctx = await self._context()
        process = self.processes
        if process is None:
            size = await asyncio.to_thread(lambda: path.stat().st_size if path.exists() else 0)
            process = size >= PROCESS_BYTES
        reader = Reader(path, ctx, self.region, mapping, process=process)
        try:
            report.columns = await reader.start()
            await self._pump(reader, ctx, report, dry_run)
        finally:
            await reader.close()
        report.kind, report.delimiter = reader.stats.kind, _delimiter(reader.stats)
        report.encodings = dict(reader.stats.encodings)
        report.seconds = time.perf_counter() - started
        return report

    async def _pump(
        self, reader: Reader, ctx: Context, report: ImportReport, dry_run: bool
    ) -> None:
        failed_rows: set[int] = set()
        # Validate batch n+1 while batch n is written.
        ahead = asyncio.create_task(reader.next(self.batch_rows), name="crm-import-read")
        try:
            while (batch := await ahead) is not None:
                ahead = asyncio.create_task(reader.next(self.batch_rows), name="crm-import-read")
                read, rows, errors, empty = batch
                report.rows += read
                report.empty += empty
                report.errors.extend(errors)
                failed_rows.update(e.row for e in errors)
                await self._write(rows, ctx, report, dry_run)
                if self.progress is not None:
                    self.progress(report.rows)
        finally:
            if not ahead.done():
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead
        report.invalid = len(failed_rows)

    async def _context(self) -> Context:
        async with self.db.engine.connect() as conn:
            defs = await conn.execute(
                select(CustomFieldDef).where(CustomFieldDef.entity == CustomFieldEntity.CONTACT)
            )
            fields = [
                FieldDef(d.key, d.label, d.type, tuple(d.choices), d.required)
                for d in defs
            ]
            users = {name: uid for name, uid in await conn.execute(select(User.username, User.id))}
            tags = {name: tid for name, tid in await conn.execute(select(Tag.name, Tag.id))}
            self._stored_before = (
                await conn.execute(select(repo.contacts.c.id).limit(1))
            ).first() is not None
            orgs: dict[str, int] = {}
            for name, oid in await conn.execute(
                select(repo.organisations.c.name, repo.organisations.c.id).order_by(
                    repo.organisations.c.id
                )
            ):
                orgs.setdefault(name.casefold(), oid)
        return Context(fields, users, tags, orgs)

    async def _write(
        self, rows: list[ContactRow], ctx: Context, report: ImportReport, dry_run: bool
    ) -> None:
        if not rows:
            return
        if dry_run:
            async with self.db.engine.connect() as conn:
                await self._classify(conn, rows, report, dry_run=True)
            return
        async with self.db.engine.begin() as conn:
            new, updates = await self._classify(conn, rows, report, dry_run=False)
            await self._ensure_names(conn, new + [r for _, r in updates], ctx)
            await self._insert(conn, new, ctx)
            await self._update(conn, updates, ctx)

    async def _classify(
        self, conn: AsyncConnection, rows: list[ContactRow], report: ImportReport, *,
        dry_run: bool,
    ) -> tuple[list[ContactRow], list[tuple[int, ContactRow]]]:
        """Split into new contacts and updates of stored ones; fold repeats into their first."""
        if self._stored_before:
            unknown_phones = [p.e164 for r in rows for p in r.phones if p.e164 not in self._seen]
            unknown_mails = [e for r in rows for e in r.emails if e not in self._seen]
            self._seen.update(await repo.owners_of_phones(conn, unknown_phones))
            self._seen.update(await repo.owners_of_emails(conn, unknown_mails))
        new: dict[int, ContactRow] = {}
        updates: dict[int, ContactRow] = {}
        for row in rows:
            target = next((self._seen[k] for k in row.dedupe_keys() if k in self._seen), None)
            if target is None:
                new[row.row] = row
                for key in row.dedupe_keys():
                    self._seen[key] = -row.row
                continue
            if target < 0:  # repeats a row of this file not written yet
                report.duplicates += 1
                first = new.get(-target) or self._pending[-target]
                first.absorb(row)
            else:
                if target in self._created or target in updates:
                    report.duplicates += 1
                else:
                    report.updated += 1
                if target in updates:
                    updates[target].absorb(row)
                else:
                    updates[target] = row
            for key in row.dedupe_keys():
                self._seen.setdefault(key, target)
        report.imported += len(new)
        if dry_run:
            self._pending.update(new)
        return list(new.values()), list(updates.items())

    async def _ensure_names(
        self, conn: AsyncConnection, rows: list[ContactRow], ctx: Context
    ) -> None:
        """Create the organisations and tags the rows name and nobody has yet."""
        now = utcnow()
        missing_orgs = sorted(
            {r.organisation for r in rows if r.organisation}
            - {n for n in (r.organisation for r in rows) if n.casefold() in ctx.organisations},
            key=str.casefold,
        )
        unique: dict[str, str] = {}
        for name in missing_orgs:
            unique.setdefault(name.casefold(), name)
        if unique:
            ids = await repo.insert_ids(
                conn,
                repo.organisations,
                [
                    {"name": n, "kind": "buyer", "notes": "", "custom": {}, "created_at": now,
                     "updated_at": now}
                    for n in unique.values()
                ],
            )
            for key, oid in zip(unique, ids, strict=True):
                ctx.organisations[key] = oid
        tags = sorted({t for r in rows for t in r.tags} - ctx.tags.keys())
        if tags:
            ids = await repo.insert_ids(conn, repo.tags, [{"name": t, "color": ""} for t in tags])
            ctx.tags.update(zip(tags, ids, strict=True))

    async def _insert(self, conn: AsyncConnection, rows: list[ContactRow], ctx: Context) -> None:
        if not rows:
            return
        now = utcnow()
        orgs = ctx.organisations
        ids = await repo.insert_ids(
            conn, repo.contacts,
            [
                (r.first_name, r.last_name,
                 orgs.get(r.organisation.casefold()) if r.organisation else None, r.job_title,
                 r.language or "en", r.owner_id, r.notes, r.custom, now, now, r.search_name,
                 r.search_text)
                for r in rows
            ],
            _CONTACT_COLUMNS,
        )
        self._created.update(ids)
        for row, cid in zip(rows, ids, strict=True):
            for key in row.dedupe_keys():
                self._seen[key] = cid
        await self._children(conn, list(zip(ids, rows, strict=True)), ctx, ignore=False)

    async def _children(
        self, conn: AsyncConnection, pairs: list[tuple[int, ContactRow]], ctx: Context, *,
        ignore: bool,
    ) -> None:
        phone_rows = [
            (cid, p.e164, p.type, "", p.region, p.time_zones, i == 0)
            for cid, r in pairs for i, p in enumerate(r.phones)
        ]
        mail_rows = [(cid, e, "", i == 0) for cid, r in pairs for i, e in enumerate(r.emails)]
        tag_rows = [(cid, ctx.tags[t]) for cid, r in pairs for t in r.tags]
        address_rows = [
            (cid, "", a["street"], a["city"], a["postal_code"], "", a["country"])
            for cid, r in pairs if (a := r.address) is not None
        ]
        for table, columns, values in (
            (repo.phones, _PHONE_COLUMNS, phone_rows),
            (repo.emails, _EMAIL_COLUMNS, mail_rows),
            (contact_tags, _TAG_COLUMNS, tag_rows),
            (repo.addresses, _ADDRESS_COLUMNS, address_rows),
        ):
            if values and ignore:
                await conn.execute(
                    repo.insert_ignore(conn, table),
                    [dict(zip(columns, v, strict=True)) for v in values],
                )
            elif values:
                await repo.bulk_insert(conn, table, columns, values)

    async def _update(
        self, conn: AsyncConnection, updates: list[tuple[int, ContactRow]], ctx: Context
    ) -> None:
        """Stored contacts keep what they have; the row fills empty fields and adds numbers."""
        if not updates:
            return
        c = repo.contacts
        values: dict[str, Any] = {
            name: case((c.c[name] == "", bindparam(f"new_{name}")), else_=c.c[name])
            for name in _FILLABLE
        }
        values["organisation_id"] = func.coalesce(c.c.organisation_id, bindparam("new_org"))
        values["owner_id"] = func.coalesce(c.c.owner_id, bindparam("new_owner"))
        values["updated_at"] = bindparam("now")
        stmt = update(c).where(c.c.id == bindparam("cid")).values(**values)
        now = utcnow()
        await conn.execute(
            stmt,
            [
                {"cid": cid, "now": now, "new_org": _org_id(r, ctx), "new_owner": r.owner_id,
                 **{f"new_{n}": getattr(r, n) for n in _FILLABLE}}
                for cid, r in updates
            ],
        )
        await self._children(conn, updates, ctx, ignore=True)
        await repo.refresh_search_text(conn, [cid for cid, _ in updates])


def _org_id(row: ContactRow, ctx: Context) -> int | None:
    return ctx.organisations.get(row.organisation.casefold()) if row.organisation else None


def _delimiter(stats: FileStats) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(stats.delimiter, "")


def iter_errors(report: ImportReport) -> Iterator[str]:
    for err in report.errors:
        yield f"row {err.row}, {err.column or '-'}: {err.reason}"
