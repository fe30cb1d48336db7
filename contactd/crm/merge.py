"""Merge two contacts: the survivor takes every interaction, task, document, lead, message,
call attempt, consent, decision and link of the other, which is kept as a tombstone
(`merged_into_id`) so old references still resolve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from contactd.crm import repo
from contactd.crm.errors import MergeError
from contactd.crm.events import ContactsMerged
from contactd.db.models import (
    Address,
    CallAttempt,
    ChannelDecision,
    Consent,
    Document,
    Interaction,
    Lead,
    OutboxMessage,
    ProductLink,
    Task,
    contact_tags,
)
from contactd.db.session import Database
from contactd.events import EventBus

# Every table whose rows simply move to the survivor.
MOVED = (Interaction, Task, Document, Lead, OutboxMessage, CallAttempt, Consent,
          ChannelDecision, ProductLink, Address)


# Survivor fields that the merged contact fills when the survivor's are empty.
FILLED: Final = ("first_name", "last_name", "job_title", "organisation_id", "owner_id",
                 "timezone", "preferred_channel", "kind")


def merged_values(survivor: Any, other: Any) -> dict[str, Any]:
    """The survivor's changed fields after a merge (pure: the merge and its preview share it)."""
    fill = {
        name: getattr(other, name)
        for name in FILLED
        if not getattr(survivor, name) and getattr(other, name)
    }
    notes = "\n".join(n for n in (survivor.notes, other.notes) if n)
    custom = {**(other.custom or {}), **(survivor.custom or {})}
    return {**fill, "notes": notes, "custom": custom}


@dataclass(frozen=True)
class MergeResult:
    survivor_id: int
    merged_id: int
    moved: dict[str, int]


async def merge_contacts(
    db: Database, survivor_id: int, merged_id: int, *, bus: EventBus | None = None
) -> MergeResult:
    """One transaction: move everything, union numbers/e-mails/tags, fill empty fields."""
    if survivor_id == merged_id:
        raise MergeError("cannot merge a contact into itself")
    c = repo.contacts
    async with db.engine.begin() as conn:
        rows = {
            row.id: row
            for row in await conn.execute(select(c).where(c.c.id.in_([survivor_id, merged_id])))
        }
        if len(rows) != 2:
            raise MergeError("both contacts must exist", missing=sorted(
                {survivor_id, merged_id} - rows.keys()))
        for cid in (survivor_id, merged_id):
            if rows[cid].merged_into_id is not None:
                raise MergeError(f"contact {cid} is already merged", contact_id=cid)
        moved: dict[str, int] = {}
        for model in MOVED:
            table = cast(Table, model.__table__)
            result = await conn.execute(
                update(table).where(table.c.contact_id == merged_id)
                .values(contact_id=survivor_id)
            )
            moved[table.name] = result.rowcount
        await _move_unique(conn, survivor_id, merged_id)
        values = merged_values(rows[survivor_id], rows[merged_id])
        # The version moves on: an edit form opened before the merge is now stale.
        await conn.execute(update(c).where(c.c.id == survivor_id)
                           .values(**values, version=c.c.version + 1))
        await conn.execute(
            update(c).where(c.c.id == merged_id).values(merged_into_id=survivor_id)
        )
        # Contacts merged earlier into the loser now point at the survivor.
        await conn.execute(
            update(c).where(c.c.merged_into_id == merged_id).values(merged_into_id=survivor_id)
        )
        await repo.refresh_search_text(conn, [survivor_id, merged_id])
    if bus is not None:
        await bus.publish(ContactsMerged(survivor_id=survivor_id, merged_id=merged_id))
    return MergeResult(survivor_id, merged_id, moved)


async def _move_unique(conn: AsyncConnection, survivor_id: int, merged_id: int) -> None:
    """Numbers, e-mails and tags are unique per contact: copy the missing ones, drop the rest."""
    for table, key in ((repo.phones, "e164"), (repo.emails, "address")):
        have = set(
            (await conn.execute(select(table.c[key]).where(table.c.contact_id == survivor_id)))
            .scalars()
        )
        await conn.execute(
            update(table)
            .where(table.c.contact_id == merged_id, table.c[key].not_in(have or {""}))
            .values(contact_id=survivor_id, is_primary=False)
        )
        await conn.execute(delete(table).where(table.c.contact_id == merged_id))
    tagged = set(
        (await conn.execute(
            select(contact_tags.c.tag_id).where(contact_tags.c.contact_id == survivor_id)
        )).scalars()
    )
    await conn.execute(
        update(contact_tags)
        .where(contact_tags.c.contact_id == merged_id, contact_tags.c.tag_id.not_in(tagged or {0}))
        .values(contact_id=survivor_id)
    )
    await conn.execute(delete(contact_tags).where(contact_tags.c.contact_id == merged_id))
