"""Import of messy files: encodings, BOM, delimiters, duplicates, invalid numbers, empty rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, text

from contactd.crm.errors import ImportFileError
from contactd.crm.imports import bulk
from contactd.crm.imports.batches import FIRST_ROWS, LARGEST_ROWS, LAST_ROWS, batch_size
from contactd.crm.imports.importer import ContactImporter, write_error_report
from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import (
    Address,
    Contact,
    ContactEmail,
    ContactPhone,
    CustomFieldDef,
    Organisation,
    Tag,
    contact_tags,
)
from contactd.db.session import Database
from contactd.enums import CustomFieldEntity, CustomFieldType


async def count(db: Database, what: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(what)) or 0)


async def fts_ids(db: Database, word: str) -> list[int]:
    """Contacts whose index entry has `word` (first names here)."""
    async with db.session() as session:
        rows = await session.execute(
            text("SELECT rowid FROM contacts_fts WHERE contacts_fts MATCH :q ORDER BY rowid"),
            {"q": f"search_name:{word}"},
        )
        return [r[0] for r in rows]


def importer(db: Database, **kw: object) -> ContactImporter:
    return ContactImporter(db, default_region="DE", **kw)  # type: ignore[arg-type]


async def test_semicolons_bom_and_german_headers(crm_db: Database, tmp_path: Path) -> None:
    text = (
        "Vorname;Nachname;Firma;Telefon;Handy;E-Mail;Schlagworte;PLZ;Ort;Land\n"
        "Jürgen;Müller;Bäckerei Süß;030 1234567;0151 23456789;J.Mueller@Example.de;vip, bäcker;"
        "10115;Berlin;de\n"
    )
    path = tmp_path / "kontakte.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    report = await importer(crm_db).run(path)
    assert (report.imported, report.invalid, report.delimiter) == (1, 0, "semicolon")
    assert report.encodings.get("utf-8-sig") == 1
    assert report.columns["Handy"] == "mobile" and report.columns["Schlagworte"] == "tags"
    async with crm_db.session() as session:
        contact = await session.scalar(select(Contact))
        assert contact is not None
        assert (contact.first_name, contact.last_name) == ("Jürgen", "Müller")
        numbers = set(await session.scalars(select(ContactPhone.e164)))
        assert numbers == {"+49301234567", "+4915123456789"}
        assert await session.scalar(select(ContactEmail.address)) == "j.mueller@example.de"
        assert set(await session.scalars(select(Tag.name))) == {"vip", "bäcker"}
        assert await session.scalar(select(Organisation.name)) == "Bäckerei Süß"
        address = await session.scalar(select(Address))
        assert address is not None and (address.city, address.country) == ("Berlin", "DE")
        assert "muller" in contact.search_name and "müller" in contact.search_name


async def test_mixed_encodings_in_one_file(crm_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        b"first name,last name,phone\n"
        + "Zoë,Dupré,+33 1 42 68 53 00\n".encode()
        + "Renée,Lefèvre,+33 1 42 68 53 01\n".encode("cp1252")
        + "Ana,Peña €,+34 912 345 678\n".encode("cp1252")
    )
    report = await importer(crm_db).run(path)
    assert report.imported == 3 and report.invalid == 0
    assert report.encodings["cp1252"] == 2 and report.encodings["utf-8"] == 1
    async with crm_db.session() as session:
        names = set(await session.scalars(select(Contact.last_name)))
    assert names == {"Dupré", "Lefèvre", "Peña €"}


async def test_duplicates_invalid_numbers_and_empty_rows(
    crm_db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "messy.csv"
    path.write_text(
        "Name\tPhone\tEmail\n"
        "Ann Smith\t030 1111111\tann@example.com\n"
        "\t\t\n"
        "Ann S.\t+49 30 1111111\t\n"  # same number, other format: a duplicate row
        "Bob Jones\tnot a number\tbob@example.com\n"  # invalid phone
        "Carl\t030 2222222\tcarl@example\n"  # invalid e-mail
        "Dora\t\tANN@example.com\n"  # same e-mail as Ann: duplicate
        "Eve Adams\t0049 30 3333333; 0151 23456789\t\n"
        ",,\n",
        encoding="utf-8",
    )
    report = await importer(crm_db).run(path)
    assert report.delimiter == "tab"
    assert (report.rows, report.empty) == (8, 2)
    assert (report.imported, report.duplicates, report.updated, report.invalid) == (2, 2, 0, 2)
    reasons = {(e.row, e.column) for e in report.errors}
    assert reasons == {(5, "Phone"), (6, "Email")}
    assert await count(crm_db, Contact) == 2
    assert await count(crm_db, ContactPhone) == 3
    async with crm_db.session() as session:
        ann = await session.scalar(select(Contact).where(Contact.first_name == "Ann"))
        assert ann is not None and ann.last_name == "Smith"
    target = write_error_report(report, tmp_path / "errors.csv")
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "row,column,reason,value" and lines[1].startswith("5,Phone,")


async def test_rows_matching_stored_contacts_update_them(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    stored = await contacts.create_contact(
        ContactInput(last_name="Stored", phones=["030 5555555"], notes="")
    )
    path = tmp_path / "update.csv"
    path.write_text(
        "first_name,last_name,phone,email,notes\n"
        "Sam,stored,+49305555555,sam@example.com,new note\n"  # same number, same name
        "New,Person,030 6666666,,\n",
        encoding="utf-8",
    )
    report = await importer(crm_db).run(path)
    assert (report.imported, report.updated, report.duplicates) == (1, 1, 0)
    async with crm_db.session() as session:
        row = await session.get(Contact, stored)
        assert row is not None
        # Stored values win; empty ones are filled; the new e-mail is added.
        assert (row.first_name, row.last_name, row.notes) == ("Sam", "Stored", "new note")
        mails = list(await session.scalars(
            select(ContactEmail.address).where(ContactEmail.contact_id == stored)))
        assert mails == ["sam@example.com"]
        assert "sam@example.com" in row.search_text
    match = await contacts.lookup_email("SAM@example.com")
    assert match is not None and match.contact_id == stored


async def test_dry_run_writes_nothing_and_counts_the_same(
    crm_db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "dry.csv"
    path.write_text("name,phone\nA B,030 1111111\nA b.,030 1111111\nD E,bad\n", encoding="utf-8")
    dry = await importer(crm_db).run(path, dry_run=True)
    assert (dry.imported, dry.duplicates, dry.invalid) == (1, 1, 1)
    assert await count(crm_db, Contact) == 0
    real = await importer(crm_db).run(path)
    assert (real.imported, real.duplicates, real.invalid) == (1, 1, 1)


@pytest.mark.parametrize("processes", [False, True], ids=["thread", "worker-process"])
async def test_ten_thousand_rows_with_explicit_mapping(
    crm_db: Database, tmp_path: Path, processes: bool
) -> None:
    lines = ["Kunde,Rufnummer,Kennung"]
    for i in range(10_000):
        number = f"030 {2000000 + i}" if i % 100 else "12"  # every 100th invalid
        lines.append(f"Person {i},{number},K{i % 7}")
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    async with crm_db.transaction() as session:
        session.add(CustomFieldDef(entity=CustomFieldEntity.CONTACT, key="kennung",
                                   label="Kennung", type=CustomFieldType.TEXT))
    seen: list[int] = []
    report = await importer(crm_db, batch_rows=3000, progress=seen.append,
                            processes=processes).run(
        path, mapping={"Kunde": "full_name", "Rufnummer": "phone", "Kennung": "custom:kennung"}
    )
    assert (report.imported, report.invalid) == (9_900, 100)
    assert seen == [3000, 6000, 9000, 10_000]
    assert await count(crm_db, Contact) == 9_900
    async with crm_db.session() as session:
        row = await session.scalar(select(Contact).where(Contact.last_name == "4321"))
        assert row is not None and row.first_name == "Person" and row.custom == {"kennung": "K2"}


async def test_updating_many_stored_contacts_keeps_the_index_exact(
    crm_db: Database, tmp_path: Path
) -> None:
    # 60 stored contacts gain a job title and a note from a second file: their index entries
    # are replaced in bulk (see fts), and the index must match the table exactly afterwards.
    first = tmp_path / "first.csv"
    first.write_text("name,phone\n" + "".join(f"P{i},030 {4000000 + i}\n" for i in range(60)),
                     encoding="utf-8")
    second = tmp_path / "second.csv"
    second.write_text("name,phone,notes\n" + "".join(
        f"P{i},030 {4000000 + i},renewal{i}\n" for i in range(60)), encoding="utf-8")
    await importer(crm_db).run(first)
    report = await importer(crm_db).run(second)
    assert (report.imported, report.updated) == (0, 60)
    async with crm_db.session() as session:
        hits = await session.execute(
            text("SELECT rowid FROM contacts_fts WHERE contacts_fts MATCH 'renewal7'"))
        assert [r[0] for r in hits] == [8]
        # FTS5 compares every index entry with the content table: raises if one is stale.
        await session.execute(text(
            "INSERT INTO contacts_fts(contacts_fts, rank) VALUES ('integrity-check', 1)"))
        trigger = await session.scalar(text(
            "SELECT count(*) FROM sqlite_master WHERE name = 'contacts_fts_au'"))
    assert trigger == 1
    assert await fts_ids(crm_db, "p7") == [8]


async def test_batches_sized_automatically(crm_db: Database, tmp_path: Path) -> None:
    # A small first batch (the writer starts early) and shrinking last ones (little is left
    # to write once validation ends); every row counted once.
    path = tmp_path / "auto.csv"
    path.write_text("name,phone\n" + "".join(f"P{i},030 {2000000 + i}\n" for i in range(5000)),
                    encoding="utf-8")
    seen: list[int] = []
    report = await importer(crm_db, progress=seen.append).run(path)
    assert seen == [2000, 3500, 4500, 5000]
    assert report.imported == await count(crm_db, Contact) == 5000


def test_batch_size_schedule() -> None:
    assert batch_size(0, 1_000_000) == FIRST_ROWS
    assert batch_size(FIRST_ROWS, 1_000_000) == LARGEST_ROWS
    assert batch_size(990_000, 1_000_000) == 5_000  # half of what is left
    assert batch_size(999_900, 1_000_000) == LAST_ROWS
    assert batch_size(5_000_000, None) == LARGEST_ROWS  # XLSX: the end is not known
    assert batch_size(2_000, 1_500) == LAST_ROWS  # more rows than lines counted: still goes on


async def test_xlsx_with_number_cells(crm_db: Database, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Nom", "Prénom", "Société", "Téléphone", "Courriel"])
    sheet.append(["Martin", "Claire", "ACME", 33142685300, "claire@acme.fr"])
    sheet.append([None, None, None, None, None])
    sheet.append(["Petit", "Luc", "ACME", "+33 1 42 68 53 99", None])
    path = tmp_path / "contacts.xlsx"
    book.save(path)
    report = await ContactImporter(crm_db, default_region="FR").run(path)
    # 33142685300 without + is read with its country code, as phonenumbers does.
    assert (report.kind, report.imported, report.empty, report.invalid) == ("xlsx", 2, 1, 0)
    assert await count(crm_db, Organisation) == 1
    async with crm_db.session() as session:
        numbers = set(await session.scalars(select(ContactPhone.e164)))
    assert numbers == {"+33142685300", "+33142685399"}


@pytest.mark.parametrize("stored_before", [False, True], ids=["empty-table", "stored-contact"])
async def test_a_failing_batch_leaves_only_whole_rows(
    crm_db: Database, contacts: ContactService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    stored_before: bool,
) -> None:
    # Into an empty table the reading side folds repeats; otherwise the writer does: both
    # write through bulk.write_rows.
    before = 0
    if stored_before:
        await contacts.create_contact(ContactInput(last_name="Else", phones=["030 9999999"]))
        before = 1
    path = tmp_path / "crash.csv"
    rows = [f"P{i},030 {3000000 + i},p{i}@example.com,vip" for i in range(250)]
    path.write_text("name,phone,email,tags\n" + "\n".join(rows) + "\n", encoding="utf-8")
    calls = 0
    original = bulk.write_rows

    async def crash_on_second_batch(*args: Any, **kw: Any) -> int:
        # The fault after every row of the batch (and its full-text rows) went in.
        nonlocal calls
        calls += 1
        offset = await original(*args, **kw)
        if calls == 2:
            raise RuntimeError("power cut")
        return offset

    monkeypatch.setattr(bulk, "write_rows", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        await importer(crm_db, batch_rows=100).run(path)
    # The first batch is complete; nothing of the second is left: no contact without its
    # number, e-mail and tag.
    assert await count(crm_db, Contact) == before + 100
    assert await count(crm_db, ContactPhone) == before + 100
    assert await count(crm_db, ContactEmail) == 100
    assert await count(crm_db, contact_tags) == 100
    # The full-text index holds the first batch only, and its insert trigger is back.
    assert await fts_ids(crm_db, "p99") == [before + 100]
    assert await fts_ids(crm_db, "p100") == []
    monkeypatch.setattr(bulk, "write_rows", original)
    again = await importer(crm_db).run(path)
    assert (again.imported, again.updated) == (150, 100)
    assert await count(crm_db, Contact) == before + 250
    assert await fts_ids(crm_db, "p100") == [before + 101]
    async with crm_db.transaction() as session:
        session.add(Contact(first_name="Later", last_name="Added", custom={},
                            search_name="later added", search_text=""))
    assert len(await fts_ids(crm_db, "later")) == 1


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("binary.csv", b"\x00\x01\x02garbage\x00", "binary"),
        ("nothing.csv", b"colour,size\nred,XL\n", "no column looks like"),
        ("broken.xlsx", b"PK\x03\x04not really a zip", "XLSX"),
    ],
)
async def test_unreadable_files(
    crm_db: Database, tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImportFileError) as caught:
        await importer(crm_db).run(path)
    assert message in str(caught.value)
    with pytest.raises(ImportFileError):
        await importer(crm_db).run(tmp_path / "missing.csv")


async def test_unreadable_file_reported_from_the_worker_process(
    crm_db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "nothing.csv"
    path.write_bytes(b"colour,size\nred,XL\n")
    with pytest.raises(ImportFileError) as caught:
        await importer(crm_db, processes=True).run(path)
    assert "no column looks like" in str(caught.value)


async def test_a_fault_inside_the_bulk_write_rolls_the_batch_back(
    crm_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite fails after the contacts of the batch went in and the full-text trigger was
    suspended: the batch is gone entirely and the trigger is back."""
    path = tmp_path / "fault.csv"
    path.write_text("name,phone\n" + "\n".join(f"Q{i},030 {4000000 + i}" for i in range(30))
                    + "\n", encoding="utf-8")
    monkeypatch.setattr(bulk, "PHONES_SQL", bulk.PHONES_SQL.replace("contact_phones",
                                                                    "no_such_table"))
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        await importer(crm_db).run(path)
    assert await count(crm_db, Contact) == 0
    async with crm_db.session() as session:
        trigger = await session.scalar(text(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'contacts_fts_ai'"
        ))
        pages = await session.scalar(text("PRAGMA cache_size"))
    assert trigger == 1 and pages == -2000  # and the import's page cache setting is undone
