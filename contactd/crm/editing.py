"""Editing a contact from a form: the edit names the version it was made on; a record that
changed since is refused (StaleEditError with the current version), never overwritten. Every
change writes an audit row (before -> after) in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any, Final

from sqlalchemy.orm.exc import StaleDataError

from contactd.auth import audit
from contactd.auth.audit import Actor
from contactd.crm import repo
from contactd.crm.errors import StaleEditError
from contactd.crm.fields import validate
from contactd.crm.service import ContactService
from contactd.db.models import Contact
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
