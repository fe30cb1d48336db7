"""The import's fast paths give the answers of the thorough ones: row checks, index text, and
repeats folded by the reading side (empty table) or by the writer (contacts stored before)."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from contactd.crm.bulk_phones import PhoneNormaliser
from contactd.crm.fts import create_fts
from contactd.crm.imports import reader
from contactd.crm.imports.importer import ContactImporter
from contactd.crm.imports.mapping import detect
from contactd.crm.imports.reader import FileStats
from contactd.crm.imports.validate import ContactRow, RowValidator, search_texts
from contactd.crm.search import ContactSearch
from contactd.crm.searchtext import build_search_text
from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import Base
from contactd.db.session import Database

HEADER = ["Nachname", "Vorname", "Firma", "Telefon", "Handy", "E-Mail", "Tags", "Sprache",
          "Strasse", "PLZ", "Ort", "Land", "Notizen"]
words = st.text(alphabet="abcÄäöüßéèçñøłAZ -.,;|@+0123456789", max_size=24)


def validator() -> RowValidator:
    return RowValidator(detect(HEADER), normaliser=PhoneNormaliser("DE"))


@settings(max_examples=400, deadline=None)
@given(cells=st.lists(st.one_of(words, st.sampled_from(
    ["030 1234567", "+49 151 23456789", "0049 40 2000000; 089 123456", "12", "a@b.de",
     "x@y", "vip, neu", "de", "DE", "Deutschland", "", "  "])), min_size=0, max_size=14))
def test_fast_check_agrees_with_the_complete_one(cells: list[str]) -> None:
    check = validator()
    fast = check.check(7, cells)
    complete = check.complete(7, cells)
    if isinstance(complete, ContactRow):
        assert fast == complete.candidate()
    else:
        assert fast == complete


@settings(max_examples=400, deadline=None)
@given(first=words, last=words, org=words, title=words, notes=words,
       numbers=st.lists(st.sampled_from(["+49301234567", "+12015550123", "+33142685300",
                                         "+8613800138000", "+380441234567"]), max_size=3),
       emails=st.lists(st.sampled_from(["a@b.de", "zoë@exämple.fr"]), max_size=2))
def test_search_texts_agree_with_build_search_text(
    first: str, last: str, org: str, title: str, notes: str, numbers: list[str],
    emails: list[str],
) -> None:
    expected = build_search_text(first_name=first, last_name=last, organisation=org,
                                 job_title=title, phones=numbers, emails=emails, notes=notes)
    assert search_texts(first, last, org, title, numbers, emails, notes) == tuple(expected)


def messy_file(path: Path, n: int) -> None:
    """Rows repeating earlier ones (in and across batches) with more numbers, e-mails, tags,
    an address or a name the first lacked; invalid rows; empty rows."""
    rng = random.Random(3)
    lines = [";".join(HEADER)]
    for i in range(n):
        j = rng.randrange(max(i, 1))
        kind = rng.random()
        if i > 5 and kind < 0.15:
            lines.append(f";;;030 {2000000 + j};0151 {30000000 + i};p{i}@example.com;neu;;"
                         f"Hauptstr. {i};10115;Berlin;de;spät")
        elif i > 5 and kind < 0.25:
            lines.append(f"Wiederholt {i};;Firma {j % 5};;;P{j}@Example.com;vip|neu;fr;;;;;")
        elif kind < 0.3:
            lines.append(f"Kaputt {i};;;12;;kein@;;;;;;;")
        elif kind < 0.33:
            lines.append(";;;;;;;;;;;;")
        else:
            lines.append(f"Müller {i};Anna;Firma {i % 7};030 {2000000 + i};;"
                         f"p{i}@example.com;vip;;;;;;")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def dump(db: Database) -> dict[str, list[Any]]:
    queries = {
        "contacts": "SELECT c.id, c.first_name, c.last_name, o.name, c.job_title, c.language, "
                    "c.notes, c.custom, c.search_name, c.search_text FROM contacts c "
                    "LEFT JOIN organisations o "
                    "ON o.id = c.organisation_id WHERE c.last_name <> 'Else' ORDER BY c.id",
        "phones": "SELECT contact_id, e164, type, region, time_zones, is_primary "
                  "FROM contact_phones WHERE e164 <> '+49309999999' ORDER BY contact_id, e164",
        "emails": "SELECT contact_id, address, is_primary FROM contact_emails ORDER BY 1, 2",
        "tags": "SELECT contact_id, t.name FROM contact_tags JOIN tags t ON t.id = tag_id "
                "ORDER BY 1, 2",
        "addresses": "SELECT contact_id, street, city, postal_code, country FROM addresses "
                     "ORDER BY 1",
        "index": "SELECT rowid FROM contacts_fts WHERE contacts_fts MATCH 'muller OR berlin "
                 "OR wiederholt' ORDER BY rowid",
    }
    out: dict[str, list[Any]] = {}
    async with db.session() as session:
        for name, sql in queries.items():
            out[name] = [tuple(r) for r in await session.execute(text(sql))]
    return out


def shifted(data: dict[str, list[Any]], by: int) -> dict[str, list[Any]]:
    return {name: [(r[0] - by, *r[1:]) for r in rows] for name, rows in data.items()}


async def second_database(tmp_path: Path) -> Database:
    other = Database(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    async with other.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(create_fts)
    return other


async def test_folded_and_writer_side_dedupe_write_the_same(
    crm_db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "messy.csv"
    messy_file(path, 400)
    empty = await ContactImporter(crm_db, default_region="DE", batch_rows=37).run(path)
    assert empty.imported > 200 and empty.duplicates > 50 and empty.invalid > 10
    folded = await dump(crm_db)

    other = await second_database(tmp_path)
    try:
        stored = await ContactService(other, default_region="DE").create_contact(
            ContactInput(last_name="Else", phones=["030 9999999"]))
        again = await ContactImporter(other, default_region="DE", batch_rows=37,
                                      processes=True).run(path)
        assert (again.imported, again.duplicates, again.updated, again.invalid,
                again.empty) == (empty.imported, empty.duplicates, 0, empty.invalid, empty.empty)
        assert shifted(await dump(other), stored) == folded
    finally:
        await other.engine.dispose()

    # What the bulk path indexed is found through the service, accents folded.
    some = [r for r in folded["contacts"] if r[2].startswith("Müller")][-1]
    hits = await ContactSearch(crm_db).search(f"Anna Muller {some[2].split()[1]}", limit=5)
    assert [h.contact_id for h in hits.hits] == [some[0]]


def lines_one_by_one(data: bytes) -> tuple[list[str], FileStats]:
    """The reference: binary line iteration, each line decoded on its own."""
    stats = FileStats()
    out = []
    for number, raw in enumerate(io.BytesIO(data)):
        if number == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
            stats.encodings["utf-8-sig"] += 1
        out.append(reader._decode(raw, stats))
    return out, stats


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(
    [b"abc", "Müller".encode(), "Müller".encode("cp1252"), b"\r", b"\n", b"\n", b",", b'"',
     "€".encode("cp1252"), b"\x81", "日本".encode(), b"\xef\xbb\xbf", b"\xef", b"\xbb"]),
    max_size=120), block=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]))
def test_block_decoding_reads_lines_like_line_by_line(parts: list[bytes], block: int) -> None:
    data = b"".join(parts)
    expected, expected_stats = lines_one_by_one(data)
    stats = FileStats()
    with patch.object(reader, "BLOCK_BYTES", block):
        got = list(reader._lines(io.BytesIO(data), stats))
    assert got == expected and stats.encodings == expected_stats.encodings
