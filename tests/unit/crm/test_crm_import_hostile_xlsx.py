"""Hostile workbooks: a few KB that declare a million rows, inflate past the bound, or put data
past the column cap are read only as far as their real data, or refused with a clear answer."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from contactd.crm.errors import ImportFileError
from contactd.crm.imports.importer import ContactImporter
from contactd.crm.imports.reader import XLSX_MAX_EMPTY_RUN, open_rows
from contactd.db.session import Database

HEADER = ["first_name", "last_name", "phone"]


def _workbook(rows: list[list[str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _rewrite_sheet(data: bytes, edit: object, extra: dict[str, bytes] | None = None) -> bytes:
    """The same workbook with the first sheet's XML changed by `edit` (and extra parts)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in src.infolist():
            part = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                assert callable(edit)
                part = edit(part)
            target.writestr(item, part)
        for name, body in (extra or {}).items():
            target.writestr(name, body)
    return out.getvalue()


def _huge_dimension(xml: bytes) -> bytes:
    xml = re.sub(rb'<dimension ref="[^"]*" ?/>', b'<dimension ref="A1:XFD1048576"/>', xml)
    last = b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    return xml.replace(b"</sheetData>", last + b"</sheetData>")


async def test_declared_dimension_and_a_far_cell_are_not_read_as_data(
    crm_db: Database, tmp_path: Path
) -> None:
    data = _rewrite_sheet(_workbook([HEADER, ["Ann", "Smith", "+49 30 1111111"]]),
                          _huge_dimension)
    assert len(data) < 8 * 1024
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(data)
    # Unbounded, openpyxl pads a million rows to 16,384 columns each (minutes of work); the
    # reader now yields narrow rows and gives up after a run of empty ones.
    _, rows = open_rows(path)
    widths = [len(row) for row in rows]
    assert len(widths) == 2 + XLSX_MAX_EMPTY_RUN - 1 and max(widths) == len(HEADER)
    report = await ContactImporter(crm_db, default_region="DE").run(path)
    assert report.imported == 1
    assert f"{XLSX_MAX_EMPTY_RUN} empty rows" in report.stopped_early


def test_data_past_the_column_cap_is_refused(tmp_path: Path) -> None:
    def far_cell(xml: bytes) -> bytes:
        cell = b'<row r="3"><c r="XFD3" t="inlineStr"><is><t>x</t></is></c></row>'
        return xml.replace(b"</sheetData>", cell + b"</sheetData>")

    path = tmp_path / "wide.xlsx"
    path.write_bytes(_rewrite_sheet(_workbook([HEADER, ["Ann", "Smith", "1"]]), far_cell))
    _, rows = open_rows(path)
    with pytest.raises(ImportFileError, match="row 3 has data past column 1000"):
        list(rows)


def test_a_zip_bomb_is_refused_before_parsing(tmp_path: Path) -> None:
    zeros = b"\0" * (600 * 1024 * 1024)  # deflates to about 600 KB
    path = tmp_path / "inflate.xlsx"
    path.write_bytes(_rewrite_sheet(_workbook([HEADER]), lambda xml: xml,
                                    {"xl/media/padding.bin": zeros}))
    del zeros
    assert path.stat().st_size < 2 * 1024 * 1024
    _, rows = open_rows(path)
    with pytest.raises(ImportFileError, match="unpacks to 600 MiB"):
        list(rows)
