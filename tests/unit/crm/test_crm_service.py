from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from contactd.crm.errors import CustomFieldError, DuplicateContactError
from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import Contact
from contactd.enums import CustomFieldType, PartyKind, ProductKind, ProductRelation
from contactd.errors import ValidationError


async def test_create_lookup_by_caller_id_and_email(contacts: ContactService) -> None:
    org = await contacts.create_organisation("Acme GmbH", PartyKind.BUYER)
    cid = await contacts.create_contact(ContactInput(
        first_name="Ann", last_name="Lee", organisation_id=org,
        phones=["030 1234567", "+49 151 23456789"], emails=["Ann@Example.com"],
        tags=["vip"],
    ))
    for caller_id in ("+49301234567", "0049 30 1234567", "030/1234567", "+4915123456789"):
        match = await contacts.lookup_phone(caller_id)
        assert match is not None and match.contact_id == cid, caller_id
    match = await contacts.lookup_email(" ANN@example.COM ")
    assert match is not None and (match.display_name, match.organisation) == ("Ann Lee",
                                                                              "Acme GmbH")
    assert await contacts.lookup_phone("030 7654321") is None
    assert await contacts.lookup_phone("anonymous") is None


async def test_duplicates_are_refused_on_create(contacts: ContactService) -> None:
    first = await contacts.create_contact(ContactInput(last_name="A", phones=["030 1234567"]))
    with pytest.raises(DuplicateContactError) as caught:
        await contacts.create_contact(ContactInput(last_name="a", phones=["+49 30 1234567"]))
    assert caught.value.details["existing"] == [first]
    await contacts.create_contact(ContactInput(last_name="C", emails=["c@example.com"]))
    with pytest.raises(DuplicateContactError):
        await contacts.create_contact(ContactInput(last_name="D", emails=["C@EXAMPLE.COM"]))
    second = await contacts.create_contact(
        ContactInput(last_name="B", phones=["+49 30 1234567"]), allow_duplicate=True
    )
    assert await contacts.find_duplicates(["+49301234567"], []) == [first, second]


async def test_invalid_input_is_refused(contacts: ContactService) -> None:
    with pytest.raises(ValidationError):
        await contacts.create_contact(ContactInput(last_name="X", phones=["12"]))
    with pytest.raises(ValidationError):
        await contacts.create_contact(ContactInput(last_name="X", emails=["nope"]))
    with pytest.raises(ValidationError):
        await contacts.create_contact(ContactInput())


async def test_custom_fields_are_validated(contacts: ContactService) -> None:
    await contacts.define_field("tier", "Tier", CustomFieldType.CHOICE, choices=["Gold", "Blue"])
    await contacts.define_field("budget", "Budget", CustomFieldType.NUMBER)
    cid = await contacts.create_contact(
        ContactInput(last_name="K", custom={"tier": "gold", "budget": "1500"})
    )
    with pytest.raises(CustomFieldError):
        await contacts.create_contact(ContactInput(last_name="L", custom={"tier": "Red"}))
    with pytest.raises(CustomFieldError):
        await contacts.update_contact(cid, custom={"budget": "much"})
    await contacts.update_contact(cid, custom={"budget": 2000}, notes="renewal in May")
    async with contacts.db.session() as session:
        row = await session.get(Contact, cid)
        assert row is not None and row.custom == {"tier": "Gold", "budget": 2000}
        assert "renewal" in row.search_text


async def test_products_and_who_buys_or_supplies_them(contacts: ContactService) -> None:
    supplier = await contacts.create_organisation("Parts Ltd", PartyKind.SUPPLIER)
    buyer_org = await contacts.create_organisation("Shop SA", PartyKind.BUYER)
    buyer = await contacts.create_contact(ContactInput(last_name="Buyer",
                                                       organisation_id=buyer_org))
    direct = await contacts.create_contact(ContactInput(last_name="Direct"))
    product = await contacts.create_product("W-1", "Widget", ProductKind.PRODUCT, Decimal("9.90"))
    await contacts.link_product(product, ProductRelation.SUPPLIES, organisation_id=supplier)
    await contacts.link_product(product, ProductRelation.BUYS, organisation_id=buyer_org)
    await contacts.link_product(product, ProductRelation.BUYS, contact_id=direct)
    assert await contacts.parties_of(product, ProductRelation.BUYS) == [buyer, direct]
    [(bought, relation)] = await contacts.products_of(contact_id=direct)
    assert (bought.name, bought.unit_price, relation) == ("Widget", Decimal("9.90"),
                                                          ProductRelation.BUYS)
    with pytest.raises(ValidationError):
        await contacts.link_product(product, ProductRelation.BUYS, contact_id=direct,
                                    organisation_id=supplier)
    with pytest.raises(ValidationError):
        await contacts.create_product("W-2", "Bad", ProductKind.SERVICE, Decimal("-1"))


async def test_tags_and_phones_added_later(contacts: ContactService) -> None:
    cid = await contacts.create_contact(ContactInput(last_name="Later"))
    await contacts.add_phone(cid, "0151 23456789")
    await contacts.tag(cid, "vip", "vip", "north")
    match = await contacts.lookup_phone("+4915123456789")
    assert match is not None and match.contact_id == cid
    async with contacts.db.session() as session:
        row = await session.scalar(select(Contact.search_text).where(Contact.id == cid))
    assert row is not None and "4915123456789" in row


async def test_lookup_through_its_own_connection_sees_new_rows(
    contacts: ContactService,
) -> None:
    async with contacts:
        assert contacts.lookup._conn is not None
        assert await contacts.lookup_phone("030 4444444") is None
        cid = await contacts.create_contact(ContactInput(last_name="Fresh",
                                                         phones=["030 4444444"]))
        match = await contacts.lookup_phone("+49 30 4444444")
        assert match is not None and match.contact_id == cid
        await contacts.update_contact(cid, first_name="Now")
        match = await contacts.lookup_phone("+49304444444")
        assert match is not None and match.display_name == "Now Fresh"
    assert contacts.lookup._conn is None
