"""Contact matching (issue 12 #14): a shared number is one person only when names agree."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from contactd.commands.crm import print_report
from contactd.crm.errors import DuplicateContactError
from contactd.crm.imports.importer import ContactImporter
from contactd.crm.imports.report import ImportReport
from contactd.crm.matching import Match, match, names_compatible
from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import Contact, ContactPhone, PossibleDuplicate
from contactd.db.session import Database

PEOPLE = ["Ann Smith", "Bob Jones", "Cleo Park", "Dan Wu", "Eva Moreau"]


def test_rule() -> None:
    assert names_compatible("Ann", "Smith", "ann", "S.")
    assert names_compatible("Zoë", "", "Zoe", "Dupré")
    assert not names_compatible("Ann", "Smith", "Bob", "Jones")
    assert match("Ann", "Smith", ["+4930111"], "Bob", "Jones", ["+4930111"]) \
        is Match.POSSIBLE_DUPLICATE
    assert match("Ann", "Smith", ["a@x.de"], "Bob", "Jones", ["a@x.de"]) is Match.SAME
    assert match("Ann", "Smith", ["+4930111"], "Ann", "", ["+4930111"]) is Match.SAME
    assert match("Ann", "Smith", ["+4930111"], "Bob", "", ["+4930222"]) is Match.DIFFERENT


def office_file(tmp_path: Path, offices: int) -> Path:
    lines = ["Name\tPhone"]
    for office in range(offices):
        for person in PEOPLE:
            lines.append(f"{person} {office}\t030 {1000000 + office}")
        lines.append(f"Ann Smith {office}\t+49 30 {1000000 + office}")  # a real repeat
    path = tmp_path / "offices.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("stored_before", [False, True])
@pytest.mark.parametrize("processes", [False, True])
async def test_people_sharing_an_office_number_are_kept(
    crm_db: Database, tmp_path: Path, stored_before: bool, processes: bool
) -> None:
    if stored_before:  # the writer-side path: the contacts table is not empty
        await ContactService(crm_db, default_region="DE").create_contact(
            ContactInput(first_name="Someone", phones=["+1 212 555 0100"])
        )
    offices = 40
    report = await ContactImporter(
        crm_db, default_region="DE", processes=processes, batch_rows=37
    ).run(office_file(tmp_path, offices))
    assert report.imported == offices * len(PEOPLE)
    assert report.duplicates == offices
    # each later person of an office contradicts every earlier one: 0+1+2+3+4 pairs
    assert report.possible_duplicates == offices * 10
    async with crm_db.session() as session:
        contacts = list(await session.scalars(select(Contact)))
        pairs = list(await session.execute(
            select(PossibleDuplicate.contact_id, PossibleDuplicate.other_id)))
        phone_of = {
            c.id: p.e164 for c in contacts
            for p in await session.scalars(select(ContactPhone).where(
                ContactPhone.contact_id == c.id))
        }
    names = {f"{c.first_name} {c.last_name}" for c in contacts}
    assert names >= {f"{person} {office}" for person in PEOPLE for office in range(offices)}
    assert len(pairs) == offices * 10
    assert all(a < b and phone_of[a] == phone_of[b] for a, b in pairs)


async def test_create_contact_refuses_only_the_same_person(crm_db: Database) -> None:
    service = ContactService(crm_db, default_region="DE")
    ann = await service.create_contact(
        ContactInput(first_name="Ann", last_name="Smith", phones=["030 1234567"])
    )
    bob = await service.create_contact(
        ContactInput(first_name="Bob", last_name="Jones", phones=["030 1234567"])
    )
    assert bob != ann
    async with crm_db.session() as session:
        pairs = list(await session.execute(
            select(PossibleDuplicate.contact_id, PossibleDuplicate.other_id)))
    assert [tuple(p) for p in pairs] == [(ann, bob)]
    with pytest.raises(DuplicateContactError):
        await service.create_contact(
            ContactInput(first_name="ann", last_name="S.", phones=["+49 30 1234567"])
        )


def test_cli_report_counts_possible_duplicates(tmp_path: Path) -> None:
    report = ImportReport(path=tmp_path / "x.csv", dry_run=False, imported=5,
                          possible_duplicates=10)
    out = io.StringIO()
    print_report(report, None, out)
    assert "possible duplicates: 10 " in out.getvalue()
