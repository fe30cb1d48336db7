"""Search as you type: one short word is looked up on contacts.name_key (surname, first name,
folded) in name order; a word no name begins with falls back to the full-text prefix."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from contactd.crm.imports.importer import ContactImporter
from contactd.crm.search import ContactSearch, Filters, Sort, name_prefix, search_statement
from contactd.crm.service import ContactInput, ContactService
from contactd.db.session import Database


async def test_half_a_surname_finds_the_contact_first(
    crm_db: Database, contacts: ContactService
) -> None:
    schmidt = await contacts.create_contact(ContactInput(first_name="Hans", last_name="Schmidt"))
    # Matches "schm" only in its notes and company: full text would list it too; by name not.
    await contacts.create_contact(
        ContactInput(first_name="Karl", last_name="Klein", notes="schmoozing at the fair")
    )
    schmal = await contacts.create_contact(ContactInput(first_name="Ida", last_name="Schmal"))
    müller = await contacts.create_contact(ContactInput(first_name="Jürgen", last_name="Müller"))
    ivanov = await contacts.create_contact(ContactInput(first_name="Иван", last_name="Иванов"))
    search = ContactSearch(crm_db)

    hits = (await search.search("Schm", as_you_type=True)).hits
    assert [h.display_name for h in hits] == ["Ida Schmal", "Hans Schmidt"]
    assert [h.contact_id for h in hits] == [schmal, schmidt]
    # Case and accents folded, both ways; Cyrillic lower-cased.
    assert [h.contact_id for h in (await search.search("mull", as_you_type=True)).hits] == [müller]
    assert [h.contact_id for h in (await search.search("MÜL", as_you_type=True)).hits] == [müller]
    assert [h.contact_id for h in (await search.search("ива", as_you_type=True)).hits] == [ivanov]
    # The next page starts after the last name shown.
    first = (await search.search("schm", limit=1, as_you_type=True)).hits
    rest = (await search.search("schm", limit=5, after=first[0].key, as_you_type=True)).hits
    assert [h.contact_id for h in first + rest] == [schmal, schmidt]
    # Without as_you_type (a segment, a campaign), full text as before: notes match too.
    assert len((await search.search("schm")).hits) == 3
    # No surname begins "fair": the notes are still found, by full text.
    assert [h.display_name for h in (await search.search("fair", as_you_type=True)).hits] == [
        "Karl Klein"
    ]
    # A rename moves the contact in the name index.
    await contacts.update_contact(schmidt, last_name="Weber")
    assert [h.contact_id for h in (await search.search("schm", as_you_type=True)).hits] == [schmal]
    assert [h.contact_id for h in (await search.search("webe", as_you_type=True)).hits] == [schmidt]


async def test_imported_contacts_have_name_keys(crm_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "first_name,last_name,phone\nZoë,Ødegård,030 1234567\nAnna,Öz,\n", encoding="utf-8"
    )
    report = await ContactImporter(crm_db, default_region="DE").run(path)
    assert report.imported == 2
    async with crm_db.engine.connect() as conn:
        keys = (await conn.execute(text("SELECT name_key FROM contacts ORDER BY id"))).scalars()
        assert list(keys) == ["odegard zoe", "oz anna"]
    hits = (await ContactSearch(crm_db).search("ode", as_you_type=True)).hits
    assert [h.display_name for h in hits] == ["Zoë Ødegård"]


def test_which_queries_take_the_name_index() -> None:
    assert name_prefix(["sch"], Sort.RELEVANCE, None) == "sch"
    assert name_prefix(["schmi"], Sort.RELEVANCE, None) is None  # long: full text, bm25
    assert name_prefix(["030"], Sort.RELEVANCE, None) is None  # digits: numbers
    assert name_prefix(["an", "sc"], Sort.RELEVANCE, None) is None
    assert name_prefix(["sch"], Sort.NAME, None) is None
    assert name_prefix(["sch"], Sort.RELEVANCE, (-1.5, 4)) is None  # a full-text page
    stmt, _ = search_statement(Filters(query="sch"), "sqlite", as_you_type=True)
    assert "name_key" in str(stmt) and "contacts_fts" not in str(stmt)
    # Segments, exports and campaigns select by full text, whatever the word's length.
    stmt, _ = search_statement(Filters(query="sch"), "sqlite")
    assert "name_key" not in str(stmt) and "contacts_fts" in str(stmt)
