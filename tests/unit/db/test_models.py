"""The data model: rows round-trip with their enums, zones and relations intact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import selectinload

from contactd.db.models import (
    Address,
    Contact,
    ContactPhone,
    Interaction,
    Organisation,
    Product,
    ProductLink,
    Task,
    User,
)
from contactd.db.session import Database
from contactd.enums import (
    Channel,
    Direction,
    InteractionKind,
    PartyKind,
    PhoneType,
    ProductKind,
    ProductRelation,
    Role,
    TaskStatus,
)


async def test_contact_with_organisation_phones_interactions_and_tasks(db: Database) -> None:
    started = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    async with db.transaction() as session:
        agent = User(username="anna", password_hash="x", role=Role.AGENT)
        org = Organisation(name="Müller GmbH", kind=PartyKind.SUPPLIER)
        person = Contact(first_name="Jürgen", last_name="Müller", organisation=org)
        person.phones.append(
            ContactPhone(e164="+49301234567", type=PhoneType.FIXED, time_zones="Europe/Berlin")
        )
        session.add_all([agent, person])
        await session.flush()
        call = Interaction(contact_id=person.id, kind=InteractionKind.CALL,
                           direction=Direction.INBOUND, channel=Channel.CALL,
                           started_at=started, transcript="Rückruf bitte")
        session.add(call)
        await session.flush()
        session.add(Task(title="Call back", contact_id=person.id, interaction_id=call.id,
                         assignee_id=agent.id, due_at=started + timedelta(days=1)))
    async with db.session() as session:
        loaded = await session.scalar(
            select(Contact).options(
                selectinload(Contact.phones), selectinload(Contact.organisation)
            )
        )
        assert loaded is not None
        assert loaded.display_name == "Jürgen Müller"
        assert loaded.organisation is not None and loaded.organisation.kind is PartyKind.SUPPLIER
        assert loaded.phones[0].type is PhoneType.FIXED
        interaction = await session.scalar(select(Interaction))
        assert interaction is not None
        assert interaction.started_at == started and interaction.started_at.tzinfo is not None
        assert interaction.transcript == "Rückruf bitte"
        task = await session.scalar(select(Task))
        assert task is not None and task.status is TaskStatus.OPEN
        # enums are stored as their value, readable by SQL and other tools
        raw = await session.scalar(text("SELECT kind FROM organisations"))
        assert raw == "supplier"


async def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.transaction() as session:
            session.add(Interaction(kind=InteractionKind.NOTE, direction=Direction.INTERNAL,
                                    channel=Channel.NONE, started_at=datetime(2026, 1, 1)))


async def test_an_address_belongs_to_exactly_one_owner(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            session.add(Address(city="Paris"))


async def test_duplicate_usernames_are_refused_and_nothing_else_is_lost(db: Database) -> None:
    async with db.transaction() as session:
        session.add(User(username="tom", password_hash="x", role=Role.AGENT))
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            session.add(User(username="tom", password_hash="y", role=Role.ADMIN))
    async with db.session() as session:
        users = (await session.scalars(select(User))).all()
    assert [(u.username, u.role) for u in users] == [("tom", Role.AGENT)]


async def test_product_links_and_prices(db: Database) -> None:
    async with db.transaction() as session:
        product = Product(sku="HS-200", name="Headset", kind=ProductKind.PRODUCT,
                          unit_price=Decimal("79.90"))
        org = Organisation(name="Acme", kind=PartyKind.BUYER)
        session.add_all([product, org])
        await session.flush()
        session.add(ProductLink(product_id=product.id, organisation_id=org.id,
                                relation=ProductRelation.BUYS))
    async with db.session() as session:
        link = await session.scalar(select(ProductLink))
        price = await session.scalar(select(Product.unit_price))
    assert link is not None and link.relation is ProductRelation.BUYS
    assert price == Decimal("79.90")


async def test_foreign_keys_are_enforced_on_sqlite(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            session.add(ContactPhone(contact_id=999, e164="+15551234567", type=PhoneType.MOBILE))
