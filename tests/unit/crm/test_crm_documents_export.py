from __future__ import annotations

import csv
import hashlib
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from contactd.crm.documents import DocumentService, LineItem
from contactd.crm.errors import TemplateError
from contactd.crm.exports import export_contacts
from contactd.crm.search import Filters
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.spreadsheet import neutralise
from contactd.db.session import Database
from contactd.enums import CustomFieldType, DocumentKind, PartyKind, ProductKind


async def test_invoice_pdf_from_contact_and_products(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    org = await contacts.create_organisation("Ōsaka Trading", PartyKind.BUYER, vat_number="JP1")
    cid = await contacts.create_contact(ContactInput(
        first_name="Zoë", last_name="Łukasiewicz", organisation_id=org,
        emails=["z@example.com"], addresses=[{"street": "Main 1", "city": "Kraków",
                                              "postal_code": "30-001", "country": "PL"}]))
    widget = await contacts.create_product("W-1", "Widget", ProductKind.PRODUCT, Decimal("9.99"))
    setup = await contacts.create_product("S-1", "Setup", ProductKind.SERVICE, Decimal("100"))
    docs = DocumentService(crm_db, tmp_path, sender="contactd Ltd")
    await docs.install_defaults()
    await docs.install_defaults()  # idempotent
    doc = await docs.generate("invoice", cid, items=[LineItem(widget, Decimal(3)),
                                                     LineItem(setup)])
    path = docs.path_of(doc)
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and path.is_relative_to(tmp_path / "documents")
    assert doc.sha256 == hashlib.sha256(data).hexdigest() and doc.size_bytes == len(data)
    assert doc.kind is DocumentKind.INVOICE and "Łukasiewicz" in doc.title
    assert not list(path.parent.glob("*.part"))


async def test_templates_are_checked_and_sandboxed(
    crm_db: Database, contacts: ContactService, tmp_path: Path
) -> None:
    docs = DocumentService(crm_db, tmp_path)
    with pytest.raises(TemplateError):
        await docs.save_template("bad", DocumentKind.LETTER, "{% for x in %}")
    await docs.save_template("evil", DocumentKind.LETTER,
                             "{{ contact.__class__.__mro__[1].__subclasses__() }}")
    cid = await contacts.create_contact(ContactInput(last_name="Safe"))
    with pytest.raises(TemplateError):
        await docs.generate("evil", cid)


def test_neutralise() -> None:
    for risky in ("=1+1", "+49301234567", "-2", "@SUM(A1)", "\t=x"):
        assert neutralise(risky) == "'" + risky
    assert neutralise("plain") == "plain" and neutralise(3) == 3


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_export_neutralises_formulas(
    crm_db: Database, contacts: ContactService, tmp_path: Path, fmt: str
) -> None:
    await contacts.define_field("code", "Code", CustomFieldType.TEXT)
    await contacts.create_contact(ContactInput(
        first_name="=HYPERLINK(\"http://evil\")", last_name="@Attacker", phones=["030 1234567"],
        notes="-5", tags=["vip"], custom={"code": "+1"}))
    await contacts.create_contact(ContactInput(first_name="Normal", last_name="Person"))
    target = tmp_path / f"out.{fmt}"
    result = await export_contacts(crm_db, target, Filters(tags=("vip",)),
                                   custom_keys=["code", "=sum"])
    assert result.rows == 1
    if fmt == "csv":
        with target.open(encoding="utf-8-sig", newline="") as stream:
            rows = list(csv.reader(stream))
        mark = "'"  # CSV: a leading apostrophe on every formula-like cell
    else:
        sheet = load_workbook(target).active
        assert sheet is not None
        # XLSX: typed string cells (never formulas, issue 12 #7), text exactly as stored
        # (no apostrophe in front of a phone number, issue 12 #12).
        assert all(c.data_type == "s" for r in sheet.iter_rows() for c in r
                   if isinstance(c.value, str))
        rows = [["" if v is None else str(v) for v in r]
                for r in sheet.iter_rows(values_only=True)]
        mark = ""
    header, row = rows
    assert header[-1] == mark + "=sum"
    values = dict(zip(header, row, strict=True))
    assert values["first_name"] == mark + "=HYPERLINK(\"http://evil\")"
    assert values["last_name"] == mark + "@Attacker"
    assert values["phones"] == mark + "+49301234567"
    assert values["notes"] == mark + "-5" and values["code"] == mark + "+1"
    assert values["tags"] == "vip"
    everyone = await export_contacts(crm_db, tmp_path / "all.csv")
    assert everyone.rows == 2
