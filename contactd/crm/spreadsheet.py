"""Files the product writes for spreadsheets (exports, the import error report), safe to open.

A CSV cell that starts with =, +, -, @, a tab or a carriage return is read by Excel and
LibreOffice as a formula (formula injection): every such cell, headers included, gets a
leading apostrophe. An XLSX cell has a type instead: every text cell is written as a string
cell, which no spreadsheet evaluates, so its text stays exactly as stored (a phone number
"+49…" has no apostrophe in front).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A leading apostrophe for text a spreadsheet would read as a formula (CSV)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(target: Path, header: Sequence[Any], rows: Iterable[Sequence[Any]], *,
              encoding: str = "utf-8-sig") -> None:
    """A CSV with every cell, headers included, neutralised. utf-8-sig by default: Excel then
    reads the accents right."""
    with target.open("w", newline="", encoding=encoding) as out:
        writer = csv.writer(out)
        writer.writerow([neutralise(v) for v in header])
        writer.writerows([neutralise(v) for v in row] for row in rows)


def write_xlsx(target: Path, title: str, header: Sequence[Any],
               rows: Iterable[Sequence[Any]]) -> None:
    """An XLSX whose text cells are typed string cells (never formulas), headers included."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)

    def cells(values: Sequence[Any]) -> list[Any]:
        out: list[Any] = []
        for value in values:
            if isinstance(value, str):
                cell = WriteOnlyCell(sheet, value)
                cell.data_type = "s"  # openpyxl makes "=…" a formula otherwise
                out.append(cell)
            else:
                out.append(value)
        return out

    sheet.append(cells(header))
    for row in rows:
        sheet.append(cells(row))
    book.save(target)
