"""Editing a contact from a form: the edit names the version it was made on; a record that
changed since is refused (StaleEditError with the current version), never overwritten. Every
change writes an audit row (before -> after) in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.orm.exc import StaleDataError

from contactd.auth import audit
from contactd.auth.audit import Actor
from contactd.crm import repo
from contactd.crm.custom_fields import validate
from contactd.crm.errors import StaleEditError
from contactd.crm.service import ContactService
from contactd.db.models import Contact, Tag, User, contact_tags
from contactd.errors import NotFoundError, ValidationError

EDITABLE: Final = frozenset({
    "first_name", "last_name", "organisation_id", "kind", "job_title", "language", "timezone",
    "owner_id", "preferred_channel", "notes",
})


def _plain(value: Any) -> Any:
    """A JSON-safe form of a value for the audit row."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


async def edit_contact(
    contacts: ContactService, contact_id: int, *, version: int, changes: Mapping[str, Any],
    custom: Mapping[str, Any] | None = None, actor: Actor,
) -> int:
    """Apply `changes` (plain fields) and `custom` (an empty value clears a field) if the
    contact is still at `version`; returns the new version (the same if nothing changed)."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationError(f"cannot change {', '.join(sorted(unknown))}")
    defs = await contacts.field_defs()
    async with contacts.db.transaction() as session:
        contact = await session.get(Contact, contact_id)
        if contact is None or contact.merged_into_id is not None:
            raise NotFoundError(f"no contact {contact_id}", contact_id=contact_id)
        if contact.version != version:
            raise StaleEditError(
                "someone else changed this contact since you opened it; "
                "your edit was not saved", contact_id=contact_id, current_version=contact.version,
            )
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for name, value in changes.items():
            if getattr(contact, name) != value:
                before[name], after[name] = _plain(getattr(contact, name)), _plain(value)
                setattr(contact, name, value)
        if custom is not None:
            kept = {k: v for k, v in {**contact.custom, **custom}.items()
                    if not (isinstance(v, str) and not v.strip())}
            values = validate(defs, kept)
            if values != contact.custom:
                before["custom"], after["custom"] = contact.custom, values
                contact.custom = values
        if not after:
            return version
        try:
            await session.flush()
        except StaleDataError:
            # Changed between our read and our write: the UPDATE matched no row.
            raise StaleEditError(
                "someone else changed this contact while you saved; your edit was not saved",
                contact_id=contact_id,
            ) from None
        audit.record(session, actor, "contact.update", "contact", contact_id, before, after)
        await repo.refresh_search_text(await session.connection(), [contact_id])
        return contact.version


async def bulk_tag(contacts: ContactService, ids: list[int], tag: str, *, actor: Actor) -> int:
    """Tag every live contact of `ids` that lacks the tag; returns how many gained it."""
    name = tag.strip()
    if not name or len(name) > 64:
        raise ValidationError("a tag is 1 to 64 characters", field="tag")
    async with contacts.db.transaction() as session:
        found = await session.scalar(select(Tag).where(Tag.name == name))
        if found is None:
            found = Tag(name=name)
            session.add(found)
            await session.flush()
        live = set((await session.scalars(select(Contact.id).where(
            Contact.id.in_(ids), Contact.merged_into_id.is_(None)))).all())
        have = set((await session.scalars(select(contact_tags.c.contact_id).where(
            contact_tags.c.contact_id.in_(live), contact_tags.c.tag_id == found.id))).all())
        todo = sorted(live - have)
        if todo:
            await session.execute(insert(contact_tags),
                                  [{"contact_id": cid, "tag_id": found.id} for cid in todo])
        for cid in todo:
            audit.record(session, actor, "contact.tag", "contact", cid, None, {"tag": name})
        return len(todo)


async def bulk_assign(
    contacts: ContactService, ids: list[int], owner_id: int | None, *, actor: Actor
) -> int:
    """Give every live contact of `ids` this owner (None: nobody); returns how many changed."""
    async with contacts.db.transaction() as session:
        if owner_id is not None and await session.get(User, owner_id) is None:
            raise ValidationError(f"no user {owner_id}", field="owner_id")
        changed = 0
        for contact in await session.scalars(select(Contact).where(
                Contact.id.in_(ids), Contact.merged_into_id.is_(None))):
            if contact.owner_id != owner_id:
                audit.record(session, actor, "contact.update", "contact", contact.id,
                             {"owner_id": contact.owner_id}, {"owner_id": owner_id})
                contact.owner_id = owner_id  # through the ORM: the version moves on
                changed += 1
        return changed
