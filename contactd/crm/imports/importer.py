"""Contact import: validate rows off the loop (see batches), write them in batches of whole rows.

Each batch is one transaction holding every row of it completely (contact, numbers, e-mails,
tags, address), so a crash mid-import leaves only whole rows behind, and a re-run finds them
as duplicates. New contacts go in by plain executemany on SQLite (see bulk), by
RETURNING pages elsewhere: no ORM objects on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from bisect import bisect_right
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from contactd.crm import fts, repo
from contactd.crm.custom_fields import FieldDef
from contactd.crm.imports import bulk, fold
from contactd.crm.imports.batches import LARGEST_ROWS, Batch, Context, Reader
from contactd.crm.imports.report import (
    ImportReport,
    delimiter_name,
    iter_errors,
    write_error_report,
)
from contactd.crm.imports.validate import Candidate, ContactRow
from contactd.db.base import utcnow
from contactd.db.models import CustomFieldDef, Tag, User, contact_tags
from contactd.db.session import Database
from contactd.enums import CustomFieldEntity

PROCESS_BYTES: Final = 4 << 20  # files from ~40,000 rows validate in a worker process
_FILLABLE: Final = ("first_name", "last_name", "job_title", "notes")
_CONTACT_COLUMNS: Final = ("first_name", "last_name", "organisation_id", "job_title", "language",
                           "owner_id", "notes", "custom", "created_at", "updated_at",
                           "search_name", "search_text", "name_key")
_PHONE_COLUMNS: Final = ("contact_id", "e164", "type", "label", "region", "time_zones",
                         "is_primary")
_EMAIL_COLUMNS: Final = ("contact_id", "address", "label", "is_primary")
_TAG_COLUMNS: Final = ("contact_id", "tag_id")
_ADDRESS_COLUMNS: Final = ("contact_id", "label", "street", "city", "postal_code", "region",
                           "country")
__all__ = ["LARGEST_ROWS", "ContactImporter", "ImportReport", "iter_errors", "write_error_report"]


class ContactImporter:
    """Imports one file; `progress(rows_done)` is called after every batch.

    `batch_rows`: rows per batch, each one transaction (None: sized as the file goes, at most
    LARGEST_ROWS; see batches.batch_size).
    `processes`: validate in a worker process (None: when the file is over PROCESS_BYTES)."""

    def __init__(
        self,
        db: Database,
        *,
        default_region: str | None,
        batch_rows: int | None = None,
        progress: Callable[[int], None] | None = None,
        processes: bool | None = None,
    ) -> None:
        self.db = db
        self.processes = processes
        self.region = default_region
        self.batch_rows = batch_rows
        self.progress = progress
        # Owners of dedupe keys (E.164 or e-mail): contact ids; negative: a new row not yet
        # written (see fold.Owners and contactd.crm.matching).
        self._seen = fold.Owners()
        # Possible duplicates (contact ids, or negative row numbers not yet written), the
        # rows among them, and the contact ids those rows were written as.
        self._possible: list[tuple[int, int]] = []
        self._flag_rows: set[int] = set()
        self._row_ids: dict[int, int] = {}
        self._pending: dict[int, Candidate | ContactRow] = {}  # dry run: new rows by row number
        self._created: set[int] = set()
        # False when the import started on an empty contacts table: every stored number is
        # then one this import wrote and knows, and the per-batch lookups are skipped.
        self._stored_before = True
        self._index = False  # SQLite: the batch fills contacts_fts itself (see bulk)
        # Folded batches (see fold): first row number and id offset of each batch written.
        self._first_rows: list[int] = []
        self._offsets: list[int] = []

    async def run(
        self, path: Path, *, mapping: Mapping[str, str] | None = None, dry_run: bool = False
    ) -> ImportReport:
        started = time.perf_counter()
        report = ImportReport(path=path, dry_run=dry_run)
        process = self.processes
        if process is None:
            size = await asyncio.to_thread(lambda: path.stat().st_size if path.exists() else 0)
            process = size >= PROCESS_BYTES
        async with self.db.engine.connect() as conn:
            ctx = await self._context(conn)
            reader = Reader(path, ctx, self.region, mapping, process=process)
            try:
                report.columns = await reader.start()
                async with self._tuned(conn, ctx):
                    await self._pump(conn, reader, ctx, report, dry_run)
            finally:
                await reader.close()
        report.kind, report.delimiter = reader.stats.kind, delimiter_name(reader.stats)
        report.encodings = dict(reader.stats.encodings)
        report.stopped_early = reader.stats.stopped_early
        report.seconds = time.perf_counter() - started
        return report

    @contextlib.asynccontextmanager
    async def _tuned(self, conn: AsyncConnection, ctx: Context) -> AsyncIterator[None]:
        """SQLite: a larger page cache and rarer WAL checkpoints on the import's connection,
        and the organisation ids by folded name in a temporary table, for the import only."""
        if conn.dialect.name != "sqlite":
            yield
            return
        before = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
        checkpoint = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one()
        await conn.exec_driver_sql(f"PRAGMA cache_size=-{bulk.IMPORT_CACHE_KIB}")
        await conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={bulk.IMPORT_CHECKPOINT_PAGES}")
        await conn.exec_driver_sql(bulk.ORG_KEYS_CREATE)
        if ctx.organisations:
            await conn.exec_driver_sql(bulk.ORG_KEYS_ADD, list(ctx.organisations.items()))
        await conn.commit()
        try:
            yield
        finally:
            if conn.in_transaction():
                await conn.rollback()
            await conn.exec_driver_sql(bulk.ORG_KEYS_DROP)
            await conn.exec_driver_sql(f"PRAGMA cache_size={int(before)}")
            await conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={int(checkpoint)}")
            await conn.commit()
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    async def _pump(
        self, conn: AsyncConnection, reader: Reader, ctx: Context, report: ImportReport,
        dry_run: bool,
    ) -> None:
        failed_rows: set[int] = set()
        # Validate the next batches while this one is written: a worker process keeps
        # `reader.depth` batches ahead, so neither side waits on the other's slower batches.
        ahead: deque[asyncio.Task[Batch | None]] = deque()

        def read_ahead() -> None:
            while len(ahead) < reader.depth:
                ahead.append(asyncio.create_task(reader.next(self.batch_rows),
                                                 name="crm-import-read"))

        read_ahead()
        try:
            while (batch := await ahead.popleft()) is not None:
                read_ahead()
                read, rows, errors, empty, folded = batch
                report.rows += read
                report.empty += empty
                report.errors.extend(errors)
                failed_rows.update(e.row for e in errors)
                if folded is not None:
                    await self._write_folded(conn, folded, ctx, report, dry_run)
                else:
                    await self._write(conn, rows, ctx, report, dry_run)
                if self.progress is not None:
                    self.progress(report.rows)
        finally:
            for task in ahead:
                task.cancel()
            for task in ahead:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        report.invalid = len(failed_rows)

    async def _context(self, conn: AsyncConnection) -> Context:
        async with conn.begin():
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
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                self._index = await repo.sqlite_trigger_exists(conn, fts.CONTACTS_INSERT_TRIGGER)
        return Context(fields, users, tags, orgs, fold=sqlite and not self._stored_before)

    async def _write(
        self, conn: AsyncConnection, rows: list[Candidate], ctx: Context, report: ImportReport,
        dry_run: bool,
    ) -> None:
        """One batch, one transaction: every row of it is written whole, or none is."""
        if not rows:
            return
        async with conn.begin():
            if dry_run:
                await self._classify(conn, rows, report, dry_run=True)
                return
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # The write lock now: nobody adds contacts between max(id) and the inserts.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            new, updates = await self._classify(conn, rows, report, dry_run=False)
            orgs, tags = fold.names(new)
            await self._ensure_names(conn, orgs, tags, [r for _, r in updates], ctx)
            if sqlite:
                await self._write_new(conn, new)
            else:
                await self._insert(conn, new, ctx)
            await self._update(conn, updates, ctx)
            await self._flag(conn)

    async def _flag(self, conn: AsyncConnection) -> None:
        """Store the possible duplicates whose rows are all written."""
        if not self._possible:
            return
        ids = self._row_ids
        ready: list[tuple[int, int]] = []
        later: list[tuple[int, int]] = []
        for a, b in self._possible:
            ra = a if a > 0 else ids.get(-a)
            rb = b if b > 0 else ids.get(-b)
            if ra is None or rb is None:
                later.append((a, b))
            else:
                ready.append((ra, rb))
        self._possible = later
        await repo.flag_possible_duplicates(conn, ready)

    async def _write_folded(
        self, conn: AsyncConnection, folded: fold.Folded, ctx: Context, report: ImportReport,
        dry_run: bool,
    ) -> None:
        """A batch the reading side folded (SQLite, import into an empty contacts table):
        repeats of rows of earlier batches update those contacts; the rest goes in as is."""
        params, orgs, tags, folded_rows, repeats, possible = folded
        count = len(params[0])
        report.imported += count
        report.duplicates += folded_rows + len(repeats)
        report.possible_duplicates += len(possible)
        if dry_run or not (count or repeats):
            return
        offset = 0
        async with conn.begin():
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            updates: dict[int, ContactRow] = {}
            for number, candidate in repeats:
                cid = self._cid(number)
                row = ContactRow.from_candidate(candidate)
                if cid in updates:
                    updates[cid].absorb(row)
                else:
                    updates[cid] = row
            await self._ensure_names(conn, orgs, tags, list(updates.values()), ctx)
            if count:
                offset = await bulk.write_rows(conn, params, await self._next_id(conn),
                                               now=utcnow(), index=self._index)
            await self._update(conn, list(updates.items()), ctx)
            if possible:  # the later row of each pair is a new row of this batch
                first = params[0][0][0]
                await repo.flag_possible_duplicates(conn, [
                    (a + offset if a >= first else self._cid(a), b + offset)
                    for a, b in possible
                ])
        if count:
            self._first_rows.append(params[0][0][0])
            self._offsets.append(offset)

    def _cid(self, number: int) -> int:
        """The contact id of the new row at row `number` of a folded import."""
        return number + self._offsets[bisect_right(self._first_rows, number) - 1]

    async def _next_id(self, conn: AsyncConnection) -> int:
        last = (await conn.execute(select(func.max(repo.contacts.c.id)))).scalar_one()
        return int(last or 0) + 1

    async def _classify(
        self, conn: AsyncConnection, rows: list[Candidate], report: ImportReport, *,
        dry_run: bool,
    ) -> tuple[list[Candidate], list[tuple[int, ContactRow]]]:
        """Split into new contacts and updates of stored ones; fold repeats into their first."""
        seen = self._seen
        if self._stored_before:
            known = seen.first
            unknown_phones = [k for r in rows for k in r[6] if k not in known and k[0] == "+"]
            unknown_mails = [k for r in rows for k in r[6] if k not in known and k[0] != "+"]
            stored = await repo.owners_of_phones(conn, unknown_phones)
            stored.update(await repo.owners_of_emails(conn, unknown_mails))
            names = await repo.names_of(conn, set(stored.values()) - set(seen.names))
            for key, cid in stored.items():
                seen.add([key], cid, *names.get(cid, ("", "")))
        new: dict[int, Candidate | ContactRow] = {}
        updates: dict[int, ContactRow] = {}
        for c in rows:
            keys, k = c[6], c[0]
            target, conflicts = seen.find(keys, k[1], k[2])
            if target is None:
                new[k[0]] = c
                seen.add(keys, -k[0], k[1], k[2])
                if conflicts:
                    self._possible.extend((other, -k[0]) for other in conflicts)
                    self._flag_rows.update(-o for o in (*conflicts, -k[0]) if o < 0)
                    report.possible_duplicates += len(conflicts)
                continue
            row = ContactRow.from_candidate(c)
            if target < 0:  # repeats a row of this file not written yet
                report.duplicates += 1
                first = new.get(-target) or self._pending[-target]
                if not isinstance(first, ContactRow):
                    first = ContactRow.from_candidate(first)
                    if -target in new:
                        new[-target] = first
                    else:
                        self._pending[-target] = first
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
            seen.absorbed(keys, target)
        report.imported += len(new)
        if dry_run:
            self._pending.update(new)
        return [r.candidate() if isinstance(r, ContactRow) else r for r in new.values()], list(
            updates.items()
        )

    async def _ensure_names(
        self, conn: AsyncConnection, org_names: list[str], tag_names: list[str],
        updates: list[ContactRow], ctx: Context,
    ) -> None:
        """Create the organisations and tags the rows name and nobody has yet."""
        now = utcnow()
        named = set(org_names) | {r.organisation for r in updates if r.organisation}
        missing_orgs = sorted(
            (n for n in named if n.casefold() not in ctx.organisations), key=str.casefold
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
            if conn.dialect.name == "sqlite":
                await conn.exec_driver_sql(bulk.ORG_KEYS_ADD, list(zip(unique, ids, strict=True)))
        names = set(tag_names) | {t for r in updates for t in r.tags}
        tags = sorted(names - ctx.tags.keys())
        if tags:
            ids = await repo.insert_ids(conn, repo.tags, [{"name": t, "color": ""} for t in tags])
            ctx.tags.update(zip(tags, ids, strict=True))

    async def _write_new(self, conn: AsyncConnection, rows: list[Candidate]) -> None:
        """SQLite: the batch's new contacts in bulk (see bulk), ids from max(id) + 1."""
        if not rows:
            return
        offset = await bulk.write_rows(conn, fold.params(rows), await self._next_id(conn),
                                       now=utcnow(), index=self._index)
        self._remember(rows, [c[0][0] + offset for c in rows])

    def _remember(self, rows: list[Candidate], ids: Iterable[int]) -> None:
        seen = self._seen
        created = self._created
        flag_rows = self._flag_rows
        for c, cid in zip(rows, ids, strict=True):
            created.add(cid)
            seen.rename(c[6], -c[0][0], cid)
            if c[0][0] in flag_rows:
                self._row_ids[c[0][0]] = cid

    async def _insert(self, conn: AsyncConnection, rows: list[Candidate], ctx: Context) -> None:
        """Other databases: RETURNING the ids in pages through SQLAlchemy."""
        if not rows:
            return
        now = utcnow()
        orgs = ctx.organisations
        ids = await repo.insert_ids(
            conn, repo.contacts,
            [
                (k[1], k[2], orgs.get(k[3]) if k[3] else None, k[4], k[5] or "en", k[6], k[7],
                 json.loads(k[8]), now, now, k[9], k[10], k[11])
                for k in (c[0] for c in rows)
            ],
            _CONTACT_COLUMNS,
        )
        self._remember(rows, ids)
        await self._children(conn, list(zip(ids, rows, strict=True)), ctx, ignore=False)

    async def _children(
        self, conn: AsyncConnection, pairs: list[tuple[int, Candidate]], ctx: Context, *,
        ignore: bool,
    ) -> None:
        phone_rows = [(cid, p[1], p[2], "", p[3], p[4], p[5]) for cid, c in pairs for p in c[1]]
        mail_rows = [(cid, e[1], "", e[2]) for cid, c in pairs for e in c[2]]
        tag_rows = [(cid, ctx.tags[t[1]]) for cid, c in pairs for t in c[3]]
        address_rows = [
            (cid, "", a[1], a[2], a[3], "", a[4]) for cid, c in pairs if (a := c[4]) is not None
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
        await self._children(conn, [(cid, r.candidate()) for cid, r in updates], ctx,
                             ignore=True)
        await repo.refresh_search_text(conn, [cid for cid, _ in updates])


def _org_id(row: ContactRow, ctx: Context) -> int | None:
    return ctx.organisations.get(row.organisation.casefold()) if row.organisation else None
