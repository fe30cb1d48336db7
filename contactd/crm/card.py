"""What the contact card shows: the record with its numbers, e-mails, tags, organisation,
custom fields, consent in force per channel and linked products; and the timeline, a page at
a time, keyset-paged on (time, kind, id) so a page never repeats or skips an entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from contactd.crm.custom_fields import FieldDef
from contactd.crm.timeline import EntryKind, TimelineEntry, read_timeline
from contactd.db.models import (
    Address,
    Campaign,
    Consent,
    Contact,
    CustomFieldDef,
    Organisation,
    Product,
    ProductLink,
    User,
)
from contactd.db.session import Database
from contactd.enums import Channel, ConsentStatus, CustomFieldEntity, ProductRelation
from contactd.errors import NotFoundError, ValidationError

TIMELINE_PAGE: Final = 25
_SEP: Final = "~"


@dataclass(frozen=True)
class ContactCard:
    contact: Contact  # phones, emails, tags and organisation loaded
    fields: list[FieldDef]
    consents: dict[Channel, ConsentStatus]  # the newest row per channel
    addresses: list[Address]
    products: list[tuple[Product, ProductRelation]]
    owner_name: str | None


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a timeline page ends: the next page starts strictly below it."""

    at: datetime
    kind: str
    id: int

    def encode(self) -> str:
        return f"{self.at.isoformat()}{_SEP}{self.kind}{_SEP}{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        try:
            at, kind, ident = raw.split(_SEP)
            cursor = cls(datetime.fromisoformat(at), EntryKind(kind).value, int(ident))
        except ValueError:
            raise ValidationError("before is not a timeline position", field="before") from None
        if cursor.at.tzinfo is None:
            raise ValidationError("before must carry its time zone", field="before")
        return cursor

    @classmethod
    def of(cls, entry: TimelineEntry) -> Cursor:
        return cls(entry.at, entry.kind.value, entry.id)


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    next: Cursor | None
    users: dict[int, str]  # display names of the agents named by the entries
    campaigns: dict[int, str]


async def load_card(db: Database, contact_id: int) -> ContactCard:
    return await db.read(lambda session: read_card(session, contact_id))


def read_card(session: Session, contact_id: int) -> ContactCard:
    """`load_card` inside a caller's read (see `Database.read`)."""
    # One joined statement: a contact has a few phones, e-mails and tags, and five
    # statements (one per collection) cost twice as much as their few extra rows.
    contact = (
        (
            session.scalars(
                select(Contact)
                .where(Contact.id == contact_id)
                .options(
                    joinedload(Contact.phones),
                    joinedload(Contact.emails),
                    joinedload(Contact.tags),
                    joinedload(Contact.organisation),
                )
            )
        )
        .unique()
        .one_or_none()
    )
    if contact is None or contact.merged_into_id is not None:
        raise NotFoundError(f"no contact {contact_id}", contact_id=contact_id)
    defs = session.scalars(
        select(CustomFieldDef)
        .where(CustomFieldDef.entity == CustomFieldEntity.CONTACT)
        .order_by(CustomFieldDef.id)
    )
    newest = (
        select(Consent.channel, func.max(Consent.recorded_at).label("at"))
        .where(Consent.contact_id == contact_id)
        .group_by(Consent.channel)
        .subquery()
    )
    consents = session.execute(
        select(Consent.channel, Consent.status)
        .join(newest, (newest.c.channel == Consent.channel) & (newest.c.at == Consent.recorded_at))
        .where(Consent.contact_id == contact_id)
    )
    addresses = session.scalars(
        select(Address).where(Address.contact_id == contact_id).order_by(Address.id)
    )
    org_id = contact.organisation_id
    party = ProductLink.contact_id == contact_id
    if org_id is not None:
        party = party | (ProductLink.organisation_id == org_id)
    products = session.execute(
        select(Product, ProductLink.relation).join(ProductLink).where(party).order_by(Product.name)
    )
    owner = None
    if contact.owner_id is not None:
        owner = session.scalar(select(User.display_name).where(User.id == contact.owner_id))
    return ContactCard(
        contact=contact,
        fields=[FieldDef(d.key, d.label, d.type, tuple(d.choices), d.required) for d in defs],
        consents={channel: status for channel, status in consents},
        addresses=list(addresses),
        products=[(p, r) for p, r in products],
        owner_name=owner,
    )


async def timeline_page(
    db: Database, contact_id: int, *, before: Cursor | None = None, size: int = TIMELINE_PAGE
) -> TimelinePage:
    """Newest first, `size` entries strictly below `before`, and the cursor of the next page."""
    return await db.read(
        lambda session: read_timeline_page(session, contact_id, before=before, size=size)
    )


def read_timeline_page(
    session: Session,
    contact_id: int,
    *,
    before: Cursor | None = None,
    size: int = TIMELINE_PAGE,
) -> TimelinePage:
    """`timeline_page` inside a caller's read (see `Database.read`)."""
    # timeline() cuts on time alone; entries sharing the cursor's instant are read again
    # (one microsecond later) and those at or above the cursor dropped here.
    edge = None if before is None else before.at + timedelta(microseconds=1)
    found = read_timeline(session, contact_id, limit=size + 1 + _ties(before), before=edge)
    if before is not None:
        found = [e for e in found if Cursor.of(e) < before]
    entries = found[:size]
    more = len(found) > size
    user_ids = {
        i
        for e in entries
        for i in (e.detail.get("user_id"), e.detail.get("assignee_id"))
        if isinstance(i, int)
    }
    campaign_ids = {i for e in entries if isinstance(i := e.detail.get("campaign_id"), int)}
    users: dict[int, str] = {}
    campaigns: dict[int, str] = {}
    if user_ids:
        rows = session.execute(
            select(User.id, User.display_name, User.username).where(User.id.in_(user_ids))
        )
        users = {uid: name or login for uid, name, login in rows}
    if campaign_ids:
        named = session.execute(
            select(Campaign.id, Campaign.name).where(Campaign.id.in_(campaign_ids))
        )
        campaigns = {cid: name for cid, name in named}
    return TimelinePage(
        entries, Cursor.of(entries[-1]) if more and entries else None, users, campaigns
    )


def _ties(before: Cursor | None) -> int:
    # Room for entries at the cursor's own instant that are dropped after reading.
    return 0 if before is None else TIMELINE_PAGE


async def organisation_choices(db: Database, limit: int = 1000) -> list[tuple[int, str]]:
    return await db.read(lambda session: read_organisation_choices(session, limit))


def read_organisation_choices(session: Session, limit: int = 1000) -> list[tuple[int, str]]:
    rows = session.execute(
        select(Organisation.id, Organisation.name).order_by(Organisation.name).limit(limit)
    )
    return [(i, n) for i, n in rows]
