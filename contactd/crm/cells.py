"""Cells bound for a spreadsheet: what every file the product writes for Excel/LibreOffice uses.

A CSV cell is only text, and a spreadsheet reads text starting with = + - @ (or a tab/CR) as a
formula ("CSV injection"): such cells get a leading apostrophe, which shows them as text. An
XLSX cell carries its type, so text is written as a typed string cell: it never runs and keeps
its exact value (a phone number "+4930…" needs no apostrophe there).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A leading apostrophe for CSV text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(target: Path, header: Sequence[Any], rows: Iterable[Sequence[Any]],
              *, encoding: str = "utf-8-sig") -> None:
    """Header and rows, every cell neutralised (the header too: it may echo a user's column)."""
    with target.open("w", newline="", encoding=encoding) as out:
        writer = csv.writer(out)
        writer.writerow([neutralise(v) for v in header])
        writer.writerows([neutralise(v) for v in row] for row in rows)


def write_xlsx(target: Path, sheet_name: str, header: Sequence[Any],
               rows: Iterable[Sequence[Any]]) -> None:
    """Header and rows as typed cells: text is a string cell, never a formula."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name)

    def typed(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"  # openpyxl would store "=…" as a formula
        return cell

    sheet.append([typed(v) for v in header])
    for row in rows:
        sheet.append([typed(v) for v in row])
    book.save(target)
