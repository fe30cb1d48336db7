"""Organisations (buyers, suppliers, partners) with their people and products, and the
products and services catalogue: what their list and card pages read, and audited edits."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from sqlalchemy import or_, select

from contactd.auth import audit
from contactd.auth.audit import Actor
from contactd.db.models import Contact, Organisation, Product, ProductLink
from contactd.db.session import Database
from contactd.enums import PartyKind, ProductKind, ProductRelation
from contactd.errors import NotFoundError, ValidationError

LIST_LIMIT: Final = 200


@dataclass(frozen=True)
class OrganisationCard:
    organisation: Organisation
    people: list[Contact]
    products: list[tuple[Product, ProductRelation]]


@dataclass(frozen=True)
class ProductCard:
    product: Product
    # ("organisation" or "contact", its id, its name, buys/supplies)
    parties: list[tuple[str, int, str, ProductRelation]]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_organisations(db: Database, *, name: str = "",
                             kind: PartyKind | None = None) -> list[Organisation]:
    stmt = select(Organisation)
    if name:
        stmt = stmt.where(Organisation.name.ilike(_like(name), escape="\\"))
    if kind is not None:
        stmt = stmt.where(Organisation.kind == kind)
    async with db.session() as session:
        return list(await session.scalars(stmt.order_by(Organisation.name).limit(LIST_LIMIT)))


async def organisation_card(db: Database, organisation_id: int,
                            owners: Collection[int] | None = None) -> OrganisationCard:
    """`owners`: only people owned by these users (an agent's team), else everyone."""
    async with db.session() as session:
        org = await session.get(Organisation, organisation_id)
        if org is None:
            raise NotFoundError(f"no organisation {organisation_id}")
        stmt = select(Contact).where(
            Contact.organisation_id == organisation_id, Contact.merged_into_id.is_(None))
        if owners is not None:
            stmt = stmt.where(Contact.owner_id.in_(owners))
        people = await session.scalars(
            stmt.order_by(Contact.last_name, Contact.first_name).limit(LIST_LIMIT))
        products = await session.execute(
            select(Product, ProductLink.relation).join(ProductLink)
            .where(ProductLink.organisation_id == organisation_id).order_by(Product.name))
        return OrganisationCard(org, list(people), [(p, r) for p, r in products])


ORG_FIELDS: Final = ("name", "kind", "vat_number", "website", "notes")


async def update_organisation(db: Database, organisation_id: int, changes: dict[str, Any], *,
                              actor: Actor) -> None:
    async with db.transaction() as session:
        org = await session.get(Organisation, organisation_id)
        if org is None:
            raise NotFoundError(f"no organisation {organisation_id}")
        before, after = {}, {}
        for key, value in changes.items():
            if key in ORG_FIELDS and getattr(org, key) != value:
                old = getattr(org, key)
                before[key] = old.value if isinstance(old, PartyKind) else old
                after[key] = value.value if isinstance(value, PartyKind) else value
                setattr(org, key, value)
        if after:
            audit.record(session, actor, "organisation.update", "organisation",
                         organisation_id, before, after)


def parse_price(raw: str) -> Decimal:
    try:
        price = Decimal(raw.strip().replace(",", "."))
    except InvalidOperation:
        raise ValidationError(f"{raw!r} is not a price", field="unit_price") from None
    if not price.is_finite() or price < 0 or price >= Decimal("1e10"):
        raise ValidationError("a price is a number from 0 up to 9999999999.99",
                              field="unit_price")
    return price.quantize(Decimal("0.01"))


async def list_products(db: Database, *, text: str = "") -> list[Product]:
    stmt = select(Product)
    if text:
        pattern = _like(text)
        stmt = stmt.where(or_(Product.name.ilike(pattern, escape="\\"),
                              Product.sku.ilike(pattern, escape="\\")))
    async with db.session() as session:
        return list(await session.scalars(stmt.order_by(Product.name).limit(LIST_LIMIT)))


async def product_card(db: Database, product_id: int) -> ProductCard:
    async with db.session() as session:
        product = await session.get(Product, product_id)
        if product is None:
            raise NotFoundError(f"no product {product_id}")
        rows = await session.execute(
            select(ProductLink.relation, Organisation.id, Organisation.name, Contact.id,
                   Contact.first_name, Contact.last_name)
            .select_from(ProductLink)
            .outerjoin(Organisation, Organisation.id == ProductLink.organisation_id)
            .outerjoin(Contact, Contact.id == ProductLink.contact_id)
            .where(ProductLink.product_id == product_id))
        parties = [
            ("organisation", oid, oname, rel) if oid is not None
            else ("contact", cid, f"{first} {last}".strip(), rel)
            for rel, oid, oname, cid, first, last in rows
        ]
        return ProductCard(product, parties)


PRODUCT_FIELDS: Final = ("name", "kind", "description", "unit_price", "currency", "active")


async def update_product(db: Database, product_id: int, changes: dict[str, Any], *,
                         actor: Actor) -> None:
    async with db.transaction() as session:
        product = await session.get(Product, product_id)
        if product is None:
            raise NotFoundError(f"no product {product_id}")
        before, after = {}, {}
        for key, value in changes.items():
            if key in PRODUCT_FIELDS and getattr(product, key) != value:
                before[key], after[key] = _plain(getattr(product, key)), _plain(value)
                setattr(product, key, value)
        if after:
            audit.record(session, actor, "product.update", "product", product_id, before, after)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, ProductKind | PartyKind):
        return value.value
    return value
