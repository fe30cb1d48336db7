"""`contactd import contacts FILE` and `contactd export contacts FILE`: thin CLI over the CRM.

Import exits 0 once the file was read, invalid rows or not (they are in the error report),
and 2 when the file cannot be read at all (the CLI turns ContactdError into exit code 2).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select

from contactd.cli import EXIT_OK, add_config_option, run_async, settings_from
from contactd.config import Settings
from contactd.crm.errors import ImportFileError
from contactd.crm.exports import export_contacts
from contactd.crm.imports.importer import ContactImporter, ImportReport, write_error_report
from contactd.crm.search import Filters
from contactd.db.bootstrap import open_database
from contactd.db.models import User
from contactd.errors import ValidationError

BAR_WIDTH = 30


class ProgressBar:
    """Rows done against an estimate, redrawn in place on a terminal, every ~10% elsewhere."""

    def __init__(self, total: int | None, out: TextIO = sys.stderr) -> None:
        self.total = total
        self.out = out
        self.tty = out.isatty()
        self.started = time.perf_counter()
        self._last_decile = -1

    def __call__(self, done: int) -> None:
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        if self.total:
            share = min(done / self.total, 1.0)
            filled = int(share * BAR_WIDTH)
            line = (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%} "
                    f"{done:,} rows, {rate:,.0f} rows/s")
            decile = int(share * 10)
        else:
            line, decile = f"{done:,} rows, {rate:,.0f} rows/s", done // 50_000
        if self.tty:
            self.out.write("\r" + line)
        elif decile != self._last_decile:
            self.out.write(line + "\n")
        self._last_decile = decile
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def estimate_rows(path: Path) -> int | None:
    """Lines in a CSV (a fast byte count); None for spreadsheets and unreadable files."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return None
    try:
        with path.open("rb") as stream:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))
    except OSError:
        return None
    return max(lines - 1, 1)


def _mapping(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.rpartition("=")
        if not sep or not column or not target:
            raise ValidationError(f"--map {pair!r}: expected COLUMN=FIELD")
        out[column] = target
    return out


def error_report_path(settings: Settings, source: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    stem = re.sub(r"[^\w.-]+", "_", source.stem)[:60] or "import"
    return settings.general.data_dir / "imports" / f"{stem}-{stamp}-errors.csv"


def print_report(report: ImportReport, errors_at: Path | None, out: TextIO = sys.stdout) -> None:
    mode = " (dry run: nothing written)" if report.dry_run else ""
    print(f"read {report.rows:,} rows from {report.path} in {report.seconds:.1f} s"
          f" ({report.rows_per_second:,.0f} rows/s){mode}", file=out)
    print(f"imported: {report.imported:,}", file=out)
    print(f"updated/duplicate: {report.updated + report.duplicates:,} "
          f"({report.updated:,} matched stored contacts, {report.duplicates:,} repeated rows)",
          file=out)
    if report.possible_duplicates:
        print(f"possible duplicates: {report.possible_duplicates:,} (a number shared with a "
              "contact of another name: kept apart, flagged for review)", file=out)
    print(f"invalid: {report.invalid:,}", file=out)
    if report.empty:
        print(f"empty rows skipped: {report.empty:,}", file=out)
    if report.stopped_early:
        print(f"note: {report.stopped_early}", file=out)
    if errors_at is not None:
        print(f"error report: {errors_at}", file=out)
    else:
        print("error report: none (no invalid rows)", file=out)


def _import_command(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    path: Path = args.file
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    region = (args.region or settings.general.default_region).upper()
    if not re.fullmatch(r"[A-Z]{2}", region):
        raise ValidationError(f"--region {args.region!r}: expected a 2-letter country code")
    bar = ProgressBar(estimate_rows(path))
    report = run_async(_import(args, settings, path, region, bar))
    errors_at = None
    if report.errors:
        errors_at = write_error_report(report, args.errors or error_report_path(settings, path))
    print_report(report, errors_at)
    return EXIT_OK


async def _import(
    args: argparse.Namespace, settings: Settings, path: Path, region: str, bar: ProgressBar
) -> ImportReport:
    async with await open_database(settings) as db:
        importer = ContactImporter(db, default_region=region, progress=bar)
        try:
            report = await importer.run(path, mapping=_mapping(args.map), dry_run=args.dry_run)
        finally:
            bar.close()
    return report


async def _export(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    custom = _mapping(args.custom) if args.custom else {}
    async with await open_database(settings) as db:
        owner_id = None
        if args.owner:
            async with db.session() as session:
                owner_id = await session.scalar(select(User.id).where(User.username == args.owner))
            if owner_id is None:
                raise ValidationError(f"--owner {args.owner!r}: no such user")
        filters = Filters(query=args.query or "", tags=tuple(args.tag), owner_id=owner_id,
                          segment=args.segment, custom=tuple(custom.items()))
        result = await export_contacts(db, args.file, filters, fmt=args.format,
                                       custom_keys=args.field)
    print(f"exported {result.rows:,} contacts to {result.path} ({result.format})")
    return EXIT_OK


def register(sub: Any) -> None:
    imp = sub.add_parser("import", help="import records from a file")
    imp_sub = imp.add_subparsers(dest="import_what", metavar="WHAT", required=True)
    contacts = imp_sub.add_parser(
        "contacts", help="import contacts from CSV or XLSX",
        description="Valid rows go in, invalid rows are reported (row, column, reason); "
                    "exit 0 when the file was read, 2 when it could not be.")
    contacts.add_argument("file", type=Path, metavar="FILE")
    add_config_option(contacts)
    contacts.add_argument("--region", metavar="XX",
                          help="country for numbers without +country code (default: "
                               "[general] default_region)")
    contacts.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    contacts.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                          help="explicit column mapping, e.g. 'Tel. privat=phone' or "
                               "'Segment=custom:segment' (repeatable)")
    contacts.add_argument("--errors", type=Path, metavar="FILE",
                          help="where to write the error report (default: the data folder)")
    contacts.set_defaults(handler=_import_command)

    exp = sub.add_parser("export", help="export records to a file")
    exp_sub = exp.add_subparsers(dest="export_what", metavar="WHAT", required=True)
    out = exp_sub.add_parser("contacts", help="export contacts (a filtered view) to CSV/XLSX")
    out.add_argument("file", type=Path, metavar="FILE")
    add_config_option(out)
    out.add_argument("--query", "-q", help="full-text search")
    out.add_argument("--tag", action="append", default=[], help="only contacts with this tag")
    out.add_argument("--segment", help="a saved segment's name")
    out.add_argument("--owner", metavar="USERNAME", help="only contacts this user owns")
    out.add_argument("--custom", action="append", default=[], metavar="KEY=VALUE",
                     help="custom field filter (repeatable)")
    out.add_argument("--field", action="append", default=[], metavar="KEY",
                     help="add a custom field column (repeatable)")
    out.add_argument("--format", choices=("csv", "xlsx"), help="default: from the file name")
    out.set_defaults(handler=lambda a: run_async(_export(a)))
