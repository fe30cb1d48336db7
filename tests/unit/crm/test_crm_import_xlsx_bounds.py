"""XLSX files that lie about their size (issue 12 #8): a declared dimension of a whole sheet,
rows far below a run of empty ones, and parts that uncompress to far more than the file."""

from __future__ import annotations

import re
import zipfile
from itertools import islice
from pathlib import Path

import pytest
from openpyxl import Workbook

from contactd.crm.errors import ImportFileError
from contactd.crm.imports import reader
from contactd.crm.imports.importer import ContactImporter
from contactd.crm.imports.reader import XLSX_EMPTY_RUN, XLSX_MAX_COLUMNS, open_rows
from contactd.db.session import Database


def workbook(path: Path, rows: dict[int, list[object]]) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for number, values in rows.items():
        for column, value in enumerate(values, start=1):
            sheet.cell(row=number, column=column, value=value)
    book.save(path)
    return path


def declare_dimension(path: Path, ref: str) -> Path:
    """Rewrite the first sheet's <dimension ref=...>, as a hostile or broken writer does."""
    crafted = path.with_name("crafted-" + path.name)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(crafted, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data, n = re.subn(rb'<dimension ref="[^"]*"', f'<dimension ref="{ref}"'.encode(),
                                  data)
                assert n == 1
            out.writestr(info, data)
    return crafted


def test_a_declared_whole_sheet_dimension_is_ignored(tmp_path: Path) -> None:
    path = declare_dimension(workbook(tmp_path / "b.xlsx", {
        1: ["first name", "phone"], 2: ["Ann", "030 1111111"], 3: ["Bob", "030 2222222"],
    }), "A1:XFD1048576")
    assert path.stat().st_size < 10_000
    _stats, rows = open_rows(path)
    head = list(islice(rows, 5))
    assert all(len(r) <= XLSX_MAX_COLUMNS for r in head)
    assert head[:3] == [["first name", "phone"], ["Ann", "030 1111111"],
                        ["Bob", "030 2222222"]]
    assert len(head) == 3  # the sheet ends with its last row, not the declared one


def test_reading_stops_after_a_run_of_empty_rows(tmp_path: Path) -> None:
    path = workbook(tmp_path / "gap.xlsx", {
        1: ["first name"], 2: ["Ann"], 3 + XLSX_EMPTY_RUN: ["Far"], 1_000_000: ["Farther"],
    })
    stats, rows = open_rows(path)
    read = list(rows)
    assert len(read) <= 2 + XLSX_EMPTY_RUN
    assert ["Far"] not in read and ["Farther"] not in read
    # said, not silent: the report and the CLI carry why reading ended there
    expected = f"stopped at row {2 + XLSX_EMPTY_RUN}: {XLSX_EMPTY_RUN} empty rows in a row"
    assert stats.stopped_early == expected


def test_data_past_the_column_cap_is_refused_not_dropped(tmp_path: Path) -> None:
    path = workbook(tmp_path / "wide.xlsx", {1: ["first name"], 2: ["Ann"],
                                             3: ["Bob"] + ["x"] * (XLSX_MAX_COLUMNS + 50)})
    _stats, rows = open_rows(path)
    with pytest.raises(ImportFileError, match=f"row 3 has data past column {XLSX_MAX_COLUMNS}"):
        list(rows)


async def test_a_zip_bomb_is_refused_before_it_is_opened(
    crm_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real cap is 1 GiB; a 4 MiB part of zeros shows the same check at a small scale.
    monkeypatch.setattr(reader, "XLSX_MAX_UNCOMPRESSED", 1 << 20)
    path = workbook(tmp_path / "bomb.xlsx", {1: ["first name"], 2: ["Ann"]})
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", bytes(4 << 20))
    assert path.stat().st_size < 64_000
    with pytest.raises(ImportFileError, match="uncompresses to"):
        await ContactImporter(crm_db, default_region="DE", processes=False).run(path)
