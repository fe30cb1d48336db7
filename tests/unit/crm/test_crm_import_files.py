"""Files as spreadsheets really write them (issue 12 #11): Excel's UTF-16 "Unicode Text",
CR-only line ends, and a notes cell too long for one row only."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from contactd.crm.imports.importer import ContactImporter, write_error_report
from contactd.crm.imports.validate import NOTES_LIMIT
from contactd.db.models import Contact
from contactd.db.session import Database


async def names(db: Database) -> list[tuple[str, str]]:
    async with db.session() as session:
        return [(c.first_name, c.last_name)
                for c in await session.scalars(select(Contact).order_by(Contact.id))]


async def test_excel_unicode_text_utf16_with_bom(crm_db: Database, tmp_path: Path) -> None:
    text = ("Vorname\tNachname\tTelefon\r\n"
            "Jürgen\tMüller\t030 1234567\r\n"
            "Zoë\tΠαπαδοπούλου\t030 7654321\r\n")
    for encoding, bom in (("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")):
        path = tmp_path / f"{encoding}.txt"
        path.write_bytes(bom + text.encode(encoding))
        report = await ContactImporter(crm_db, default_region="DE").run(path, dry_run=True)
        assert (report.imported, report.invalid, report.delimiter) == (2, 0, "tab"), encoding
    report = await ContactImporter(crm_db, default_region="DE").run(path)
    assert report.imported == 2
    assert await names(crm_db) == [("Jürgen", "Müller"), ("Zoë", "Παπαδοπούλου")]


async def test_cr_only_line_ends(crm_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b"first name,last name,phone\rAnn,Smith,030 1111111\rBob,Jones,030 2222222\r")
    report = await ContactImporter(crm_db, default_region="DE").run(path)
    assert (report.imported, report.invalid) == (2, 0)
    assert await names(crm_db) == [("Ann", "Smith"), ("Bob", "Jones")]


async def test_an_overlong_notes_cell_refuses_its_row_only(
    crm_db: Database, tmp_path: Path
) -> None:
    rows = [f"Person{i},Row,030 {1000000 + i},short note" for i in range(30)]
    rows.insert(25, f'Long,Notes,030 9999999,"{"x" * (NOTES_LIMIT + 10)}"')
    path = tmp_path / "notes.csv"
    path.write_text("first name,last name,phone,notes\n" + "\n".join(rows) + "\n", encoding="utf-8")
    report = await ContactImporter(crm_db, default_region="DE", batch_rows=10).run(path)
    assert (report.imported, report.invalid) == (30, 1)
    (error,) = report.errors
    assert (error.row, error.column) == (27, "notes") and str(NOTES_LIMIT) in error.reason
    assert ("Long", "Notes") not in await names(crm_db)


async def test_the_error_report_neutralises_every_cell(
    crm_db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "evil.csv"
    path.write_text('first name,last name,phone,=cmd\nEve,X,"=cmd|\' /C calc\'!A0",1\n'
                    "Ann,Y,+49 30 1234567,2\n", encoding="utf-8")
    report = await ContactImporter(crm_db, default_region="DE").run(path)
    assert report.invalid == 1
    target = write_error_report(report, tmp_path / "errors.csv")
    with target.open(encoding="utf-8", newline="") as stream:
        header, row = list(csv.reader(stream))
    assert header == ["row", "column", "reason", "value"]
    assert row[3] == "'=cmd|' /C calc'!A0"
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
