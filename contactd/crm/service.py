"""Customer records: create with dedupe, look up by caller ID or e-mail, classify, link products.

What the web panel, the IVR and the importer's single-record siblings call. Lookups are one
indexed query; writes keep `contacts.search_*` (and so the full-text index) in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import TracebackType
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from contactd.crm import repo
from contactd.crm.bulk_phones import PhoneNormaliser
from contactd.crm.custom_fields import FieldDef, validate
from contactd.crm.errors import DuplicateContactError, StaleEditError
from contactd.crm.imports.validate import EMAIL
from contactd.crm.lookup import CallerLookup, ContactMatch
from contactd.crm.matching import names_compatible
from contactd.db.models import (
    Address,
    Contact,
    ContactEmail,
    ContactPhone,
    CustomFieldDef,
    Organisation,
    Product,
    ProductLink,
    Segment,
    Tag,
)
from contactd.db.session import Database
from contactd.enums import (
    CustomFieldEntity,
    CustomFieldType,
    PartyKind,
    ProductKind,
    ProductRelation,
)
from contactd.errors import NotFoundError, ValidationError
from contactd.phones import PhoneInfo
from contactd.recent import Generation, Recent

FIELD_DEFS_REUSE_S = 2.0


@dataclass
class ContactInput:
    first_name: str = ""
    last_name: str = ""
    organisation_id: int | None = None
    kind: PartyKind | None = None
    job_title: str = ""
    language: str = "en"
    owner_id: int | None = None
    notes: str = ""
    phones: list[str] = field(default_factory=list)  # as typed; the first is primary
    emails: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)
    addresses: list[dict[str, str]] = field(default_factory=list)


class ContactService:
    """Entered as an async context manager it keeps the fast caller-ID lookup connection open
    (see contactd.crm.lookup); used without, lookups go through the pool."""

    def __init__(self, db: Database, *, default_region: str | None) -> None:
        self.db = db
        self.phones = PhoneNormaliser(default_region)
        self.lookup = CallerLookup(db, default_region=default_region)
        # Every list and card page shows the custom fields, which change about never: a field
        # defined here shows at once, one defined by another daemon within FIELD_DEFS_REUSE_S.
        self._fields_changed = Generation()
        self._field_defs: Recent[CustomFieldEntity, list[FieldDef]] = Recent(
            FIELD_DEFS_REUSE_S, self._fields_changed, limit=len(CustomFieldEntity)
        )

    async def __aenter__(self) -> ContactService:
        await self.lookup.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.lookup.__aexit__(exc_type, exc, tb)

    # -- lookups --------------------------------------------------------------------------

    async def lookup_phone(self, raw: str) -> ContactMatch | None:
        """Caller ID -> contact, in one indexed query; None for unknown or unreadable numbers."""
        return await self.lookup.by_phone(raw)

    async def lookup_email(self, address: str) -> ContactMatch | None:
        return await self.lookup.by_email(address)

    async def find_duplicates(
        self, phones: Sequence[str], emails: Sequence[str], *, exclude: int | None = None
    ) -> list[int]:
        """Live contacts sharing any of these E.164 numbers or e-mails."""
        async with self.db.engine.connect() as conn:
            found = await repo.contacts_with(conn, phones, emails)
        found.discard(exclude or 0)
        return sorted(found)

    async def same_person(
        self, phones: Sequence[str], emails: Sequence[str], first_name: str, last_name: str
    ) -> tuple[list[int], list[int]]:
        """Live contacts that are this person by the matching rule (contactd.crm.matching):
        a shared e-mail, or a shared number with a compatible name; and those sharing a
        number whose names contradict (another person: a possible duplicate)."""
        async with self.db.engine.connect() as conn:
            by_mail = await repo.contacts_with(conn, [], emails)
            by_phone = set(await repo.contacts_with(conn, phones, [])) - by_mail
            names = await repo.names_of(conn, by_phone)
        same = set(by_mail)
        others: list[int] = []
        for cid in sorted(by_phone):
            if names_compatible(*names.get(cid, ("", "")), first_name, last_name):
                same.add(cid)
            else:
                others.append(cid)
        return sorted(same), others

    # -- contacts -------------------------------------------------------------------------

    async def create_contact(self, data: ContactInput, *, allow_duplicate: bool = False) -> int:
        """Validate, refuse duplicates (same number or e-mail) unless allowed, store, index."""
        parsed: list[PhoneInfo] = []
        for raw in data.phones:
            info = self.phones.try_parse(raw)
            if isinstance(info, str):
                raise ValidationError(info, field="phones", value=raw)
            if all(p.e164 != info.e164 for p in parsed):
                parsed.append(info)
        emails: list[str] = []
        for raw in data.emails:
            address = raw.strip().lower()
            if EMAIL.fullmatch(address) is None:
                raise ValidationError(f"{raw!r} is not an e-mail address", field="emails")
            if address not in emails:
                emails.append(address)
        if not (data.first_name or data.last_name or data.organisation_id or parsed or emails):
            raise ValidationError("a contact needs a name, a company, a number or an e-mail")
        custom = validate(await self.field_defs(), data.custom)
        possible: list[int] = []
        if not allow_duplicate:
            dupes, possible = await self.same_person(
                [p.e164 for p in parsed], emails, data.first_name.strip(), data.last_name.strip()
            )
            if dupes:
                raise DuplicateContactError(
                    f"a contact with this number or e-mail exists (id {dupes[0]})",
                    existing=dupes,
                )
        async with self.db.transaction() as session:
            contact = Contact(
                first_name=data.first_name.strip(), last_name=data.last_name.strip(),
                organisation_id=data.organisation_id, kind=data.kind, job_title=data.job_title,
                language=data.language, owner_id=data.owner_id, notes=data.notes, custom=custom,
            )
            contact.phones = [
                ContactPhone(e164=p.e164, type=p.type, region=p.region,
                             time_zones=" ".join(p.time_zones), is_primary=i == 0)
                for i, p in enumerate(parsed)
            ]
            contact.emails = [
                ContactEmail(address=e, is_primary=i == 0) for i, e in enumerate(emails)
            ]
            contact.tags = [await tag_in(session, name) for name in dict.fromkeys(data.tags)]
            session.add(contact)
            await session.flush()
            for values in data.addresses:
                session.add(Address(contact_id=contact.id, **values))
            conn = await session.connection()
            await repo.refresh_search_text(conn, [contact.id])
            await repo.flag_possible_duplicates(conn, [(c, contact.id) for c in possible])
            return contact.id

    async def update_contact(
        self, contact_id: int, *, expected_version: int | None = None, **changes: Any
    ) -> None:
        """Change plain fields (names, notes, owner, custom values…); re-index.

        `expected_version`: the `Contact.version` the editor read; StaleEditError if it
        changed since."""
        allowed = {"first_name", "last_name", "organisation_id", "kind", "job_title", "language",
                   "timezone", "owner_id", "preferred_channel", "notes", "custom"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValidationError(f"cannot change {', '.join(sorted(unknown))}")
        async with self.db.transaction() as session:
            contact = await _live(session, contact_id)
            if expected_version is not None and contact.version != expected_version:
                raise StaleEditError(f"contact {contact_id} changed since it was read; reload it",
                                     contact_id=contact_id, current_version=contact.version)
            if "custom" in changes:
                merged = {**contact.custom, **changes["custom"]}
                changes["custom"] = validate(await self.field_defs(), merged)
            for name, value in changes.items():
                setattr(contact, name, value)
            await session.flush()
            await repo.refresh_search_text(await session.connection(), [contact_id])

    async def add_phone(self, contact_id: int, raw: str, *, label: str = "") -> str:
        info = self.phones.parse(raw)
        async with self.db.transaction() as session:
            await _live(session, contact_id)
            conn = await session.connection()
            await conn.execute(
                repo.insert_ignore(conn, repo.phones),
                [{"contact_id": contact_id, "e164": info.e164, "type": info.type.value,
                  "label": label, "region": info.region, "time_zones": " ".join(info.time_zones),
                  "is_primary": False}],
            )
            await repo.refresh_search_text(conn, [contact_id])
        return info.e164

    async def tag(self, contact_id: int, *names: str) -> None:
        async with self.db.transaction() as session:
            contact = await session.get(Contact, contact_id, options=[selectinload(Contact.tags)])
            if contact is None:
                raise NotFoundError(f"no contact {contact_id}")
            for name in names:
                tag = await tag_in(session, name)
                if tag not in contact.tags:
                    contact.tags.append(tag)

    # -- organisations, products, links ---------------------------------------------------

    async def create_organisation(
        self, name: str, kind: PartyKind, *, owner_id: int | None = None,
        custom: dict[str, Any] | None = None, **extra: Any,
    ) -> int:
        values = validate(await self.field_defs(CustomFieldEntity.ORGANISATION), custom or {})
        async with self.db.transaction() as session:
            org = Organisation(name=name, kind=kind, owner_id=owner_id, custom=values, **extra)
            session.add(org)
            await session.flush()
            return org.id

    async def create_product(
        self, sku: str, name: str, kind: ProductKind, unit_price: Decimal, *,
        currency: str = "EUR", description: str = "",
    ) -> int:
        if unit_price < 0:
            raise ValidationError("a price cannot be negative", field="unit_price")
        async with self.db.transaction() as session:
            product = Product(sku=sku, name=name, kind=kind, unit_price=unit_price,
                              currency=currency, description=description)
            session.add(product)
            await session.flush()
            return product.id

    async def link_product(
        self, product_id: int, relation: ProductRelation, *, contact_id: int | None = None,
        organisation_id: int | None = None, since: date | None = None,
    ) -> int:
        """Record who buys or supplies what (a contact or an organisation, not both)."""
        if (contact_id is None) == (organisation_id is None):
            raise ValidationError("link a product to a contact or an organisation, not both")
        async with self.db.transaction() as session:
            link = ProductLink(product_id=product_id, relation=relation, contact_id=contact_id,
                               organisation_id=organisation_id, since=since)
            session.add(link)
            await session.flush()
            return link.id

    async def products_of(
        self, *, contact_id: int | None = None, organisation_id: int | None = None
    ) -> list[tuple[Product, ProductRelation]]:
        stmt = select(Product, ProductLink.relation).join(ProductLink)
        if contact_id is not None:
            stmt = stmt.where(ProductLink.contact_id == contact_id)
        if organisation_id is not None:
            stmt = stmt.where(ProductLink.organisation_id == organisation_id)
        async with self.db.session() as session:
            return [(p, r) for p, r in (await session.execute(stmt.order_by(Product.name)))]

    async def parties_of(self, product_id: int, relation: ProductRelation) -> list[int]:
        """Contacts (directly or through their organisation) that buy/supply a product."""
        c = repo.contacts
        direct = select(ProductLink.contact_id).where(
            ProductLink.product_id == product_id, ProductLink.relation == relation,
            ProductLink.contact_id.is_not(None),
        )
        via_org = select(c.c.id).join(
            ProductLink, ProductLink.organisation_id == c.c.organisation_id
        ).where(ProductLink.product_id == product_id, ProductLink.relation == relation)
        async with self.db.engine.connect() as conn:
            ids = set((await conn.execute(direct)).scalars()) | set(
                (await conn.execute(via_org)).scalars()
            )
        return sorted(i for i in ids if i is not None)

    # -- custom fields and segments --------------------------------------------------------

    async def define_field(
        self, key: str, label: str, type_: CustomFieldType, *, choices: Sequence[str] = (),
        required: bool = False, entity: CustomFieldEntity = CustomFieldEntity.CONTACT,
    ) -> int:
        if not key.isidentifier():
            raise ValidationError(f"field key {key!r} must be a plain identifier", field="key")
        if type_ is CustomFieldType.CHOICE and not choices:
            raise ValidationError("a choice field needs choices", field="choices")
        async with self.db.transaction() as session:
            definition = CustomFieldDef(entity=entity, key=key, label=label, type=type_,
                                        choices=list(choices), required=required)
            session.add(definition)
            await session.flush()
            defined = definition.id
        self._fields_changed.bump()
        return defined

    async def field_defs(
        self, entity: CustomFieldEntity = CustomFieldEntity.CONTACT
    ) -> list[FieldDef]:
        reused = self._field_defs.get(entity)
        if reused is not None:
            return list(reused)
        read_at = self._field_defs.generation
        async with self.db.session() as session:
            defs = await self.field_defs_in(session, entity)
        self._field_defs.put(entity, defs, read_at=read_at)
        return list(defs)

    @staticmethod
    async def field_defs_in(
        session: AsyncSession, entity: CustomFieldEntity = CustomFieldEntity.CONTACT
    ) -> list[FieldDef]:
        """`field_defs` read in the caller's session (a batch that makes contacts)."""
        rows = await session.scalars(select(CustomFieldDef).where(CustomFieldDef.entity == entity))
        return [FieldDef(d.key, d.label, d.type, tuple(d.choices), d.required) for d in rows]

    async def save_segment(self, name: str, filters: dict[str, Any]) -> int:
        """A segment is a saved filter (see contactd.crm.search.Filters), evaluated when used."""
        from contactd.crm.search import Filters

        Filters.from_dict(filters)  # refuse a filter that cannot be applied later
        async with self.db.transaction() as session:
            segment = await session.scalar(select(Segment).where(Segment.name == name))
            if segment is None:
                segment = Segment(name=name, filter=filters)
                session.add(segment)
            else:
                segment.filter = filters
            await session.flush()
            return segment.id


async def _live(session: AsyncSession, contact_id: int) -> Contact:
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.merged_into_id is not None:
        raise NotFoundError(f"no contact {contact_id}", contact_id=contact_id)
    return contact


async def tag_in(session: AsyncSession, name: str) -> Tag:
    """The tag called `name`, made in the caller's transaction when it does not exist yet."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ValidationError(f"tag {name!r} must be 1-64 characters", field="tags")
    tag = await session.scalar(select(Tag).where(Tag.name == name))
    if tag is None:
        tag = Tag(name=name)
        session.add(tag)
        await session.flush()
    return tag
