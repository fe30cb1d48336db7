"""The outbox's SQL: storing new messages idempotently and recording outcomes in batches.

Every outcome UPDATE carries the transition table's guard (`WHERE state IN sources`), so a
late or repeated outcome can never move a message backwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.db.models.crm import Interaction
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind, MessageState
from contactd.messaging.state import sources_of

S = MessageState
OUTBOX = cast(Table, OutboxMessage.__table__)
INTERACTIONS = cast(Table, Interaction.__table__)
# Order matters when a receipt follows its own `sent` in the same batch.
WRITE_ORDER = (S.SENT, S.QUEUED, S.DELIVERED, S.FAILED, S.EXPIRED)


@dataclass(frozen=True)
class OutboundMessage:
    """What a caller asks to send; `idempotency_key` makes asking twice harmless."""

    idempotency_key: str
    channel: Channel
    to: str
    body: str = ""
    subject: str = ""
    html_body: str | None = None
    contact_id: int | None = None
    campaign_id: int | None = None
    interaction_id: int | None = None
    template: str | None = None
    language: str = "en"
    expires_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """A state change for the writer; `done` resolves once it is committed."""

    state: MessageState
    id: int
    values: dict[str, Any]
    done: asyncio.Future[None] | None = None


async def insert_messages(
    db: Database, messages: Sequence[OutboundMessage]
) -> tuple[list[int], int]:
    """Store new messages, skip known keys; returns every id (in order) and how many were new."""
    keys = [m.idempotency_key for m in messages]
    async with db.transaction() as session:
        existing = await _ids_for(session, keys)
        unique = {m.idempotency_key: m for m in reversed(messages)}  # the first one wins
        fresh = [m for k, m in reversed(unique.items()) if k not in existing]
        rows = []
        for m in fresh:
            interaction_id = m.interaction_id
            if interaction_id is None and m.contact_id is not None:
                interaction_id = await _timeline_row(session, m)
            rows.append(_row(m, interaction_id))
        if rows:
            try:
                await session.execute(insert(OutboxMessage), rows)
            except IntegrityError:
                # Another enqueuer stored one of the keys meanwhile: take theirs one by one.
                await session.rollback()
                results = [await _insert_one(db, m) for m in messages]
                return [r[0] for r in results], sum(r[1] for r in results)
            existing.update(await _ids_for(session, [m.idempotency_key for m in fresh]))
    return [existing[k] for k in keys], len(rows)


async def _ids_for(session: AsyncSession, keys: list[str]) -> dict[str, int]:
    result = await session.execute(
        select(OutboxMessage.idempotency_key, OutboxMessage.id).where(
            OutboxMessage.idempotency_key.in_(keys)
        )
    )
    return {key: message_id for key, message_id in result}


async def _insert_one(db: Database, message: OutboundMessage) -> tuple[int, int]:
    try:
        async with db.transaction() as session:
            interaction_id = message.interaction_id
            if interaction_id is None and message.contact_id is not None:
                interaction_id = await _timeline_row(session, message)
            row = OutboxMessage(**_row(message, interaction_id))
            session.add(row)
            await session.flush()
            return row.id, 1
    except IntegrityError:
        async with db.session() as session:
            found = await session.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.idempotency_key == message.idempotency_key
                )
            )
        assert found is not None
        return found, 0


def _row(m: OutboundMessage, interaction_id: int | None) -> dict[str, Any]:
    return {
        "idempotency_key": m.idempotency_key,
        "channel": m.channel,
        "state": S.QUEUED,
        "contact_id": m.contact_id,
        "campaign_id": m.campaign_id,
        "interaction_id": interaction_id,
        "to_address": m.to,
        "subject": m.subject,
        "body": m.body,
        "html_body": m.html_body,
        "template": m.template,
        "language": m.language,
        "expires_at": m.expires_at,
        "meta": m.meta,
        "created_at": datetime.now(UTC),
    }


async def _timeline_row(session: AsyncSession, m: OutboundMessage) -> int:
    """The outbound message as a row on the contact's timeline; its outcome follows the state."""
    kind = InteractionKind.SMS if m.channel is Channel.SMS else InteractionKind.EMAIL
    row = Interaction(
        contact_id=m.contact_id,
        kind=kind,
        direction=Direction.OUTBOUND,
        channel=m.channel,
        campaign_id=m.campaign_id,
        subject=m.subject,
        body=m.body,
        remote_address=m.to,
        outcome=S.QUEUED.value,
    )
    session.add(row)
    await session.flush()
    return row.id


async def write_outcomes(
    db: Database, batch: list[Outcome], timeline: list[dict[str, Any]]
) -> None:
    """One transaction: an executemany UPDATE per (state, columns) group, then the timeline."""
    async with db.transaction() as session:
        for state in WRITE_ORDER:
            group = [u for u in batch if u.state is state]
            for keys, items in _by_columns(group).items():
                stmt = (
                    update(OUTBOX)
                    .where(OUTBOX.c.id == bindparam("b_id"))
                    # Not IN (…): expanding parameters cannot be used with executemany.
                    .where(or_(*(OUTBOX.c.state == src for src in sources_of(state))))
                    .values(state=state, **{k: bindparam(f"b_{k}") for k in keys})
                )
                params = [{"b_id": u.id, **{f"b_{k}": u.values[k] for k in keys}} for u in items]
                await session.execute(stmt, params)
        if timeline:
            await session.execute(
                update(INTERACTIONS)
                .where(INTERACTIONS.c.id == bindparam("b_id"))
                .values(outcome=bindparam("b_outcome")),
                timeline,
            )


def _by_columns(group: list[Outcome]) -> dict[tuple[str, ...], list[Outcome]]:
    """Rows updated with the same set of columns share one executemany statement."""
    out: dict[tuple[str, ...], list[Outcome]] = {}
    for u in group:
        keys = tuple(sorted(k for k in u.values if k != "final"))
        out.setdefault(keys, []).append(u)
    return out
