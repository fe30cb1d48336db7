"""What an import did: the counts the CLI prints, and the per-row error report."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from contactd.crm.imports.reader import FileStats
from contactd.crm.imports.validate import RowError
from contactd.crm.spreadsheet import write_csv


@dataclass
class ImportReport:
    path: Path
    dry_run: bool
    rows: int = 0  # data rows read, empty ones included
    empty: int = 0
    imported: int = 0  # new contacts
    updated: int = 0  # rows that matched a contact already stored
    duplicates: int = 0  # rows that repeated an earlier row of the same file
    # new contacts sharing a number with another whose name contradicts (kept apart, flagged)
    possible_duplicates: int = 0
    invalid: int = 0
    errors: list[RowError] = field(default_factory=list)
    encodings: dict[str, int] = field(default_factory=dict)
    delimiter: str = ""
    kind: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    stopped_early: str = ""  # why reading ended before the file did, if it did
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def write_error_report(report: ImportReport, target: Path) -> Path:
    """The per-row error report: one line per problem (row, column, reason, value)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Every cell neutralised: a refused value ("=cmd|…", "+49 …") is echoed here as given.
    write_csv(target, ["row", "column", "reason", "value"],
              ([err.row, err.column, err.reason, err.value] for err in report.errors),
              encoding="utf-8")
    return target


def delimiter_name(stats: FileStats) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(stats.delimiter, "")


def iter_errors(report: ImportReport) -> Iterator[str]:
    for err in report.errors:
        yield f"row {err.row}, {err.column or '-'}: {err.reason}"
