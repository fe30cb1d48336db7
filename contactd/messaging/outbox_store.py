"""The outbox's SQL: storing new messages idempotently, claiming due ones, recording outcomes
in batches, and the look-ups of the expiry sweep and of receipts for earlier runs' messages.

Every outcome UPDATE carries the transition table's guard (`WHERE state IN sources`), so a
late or repeated outcome can never move a message backwards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    Update,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.db.executemany import execute_many
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, MessageState
from contactd.messaging import outbox_timeline as timeline
from contactd.messaging.outbox_types import OutboundMessage, Outcome
from contactd.messaging.state import can_move, sources_of

__all__ = [
    "OutboundMessage",
    "Outcome",
    "claim",
    "insert_messages",
    "next_due",
    "release",
    "requeue_interrupted",
    "sent_sms_by_provider_id",
    "stale",
    "write_outcomes",
]

S = MessageState
OUTBOX = cast(Table, OutboxMessage.__table__)
# Order matters when a receipt follows its own `sent` in the same batch.
WRITE_ORDER = (S.SENT, S.QUEUED, S.DELIVERED, S.FAILED, S.EXPIRED)


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
                interaction_id = await timeline.add_row(session, m)
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
                interaction_id = await timeline.add_row(session, message)
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
        "next_attempt_at": m.not_before,
        "meta": m.meta,
        "created_at": datetime.now(UTC),
    }


async def write_outcomes(
    db: Database, batch: list[Outcome], interaction_of: Callable[[int], int | None]
) -> list[Outcome]:
    """One transaction: an executemany UPDATE per (state, columns) group, then the timeline.

    Returns the outcomes that moved their message, in batch order. A repeat (an SMSC that
    delivers a receipt again because our answer was lost) or a move the state table forbids
    from the row's current state changes nothing, so it is neither counted nor published.
    An SMS whose `sent` and `delivered` are both in the batch (the usual case: the receipt
    follows the submit_sm_resp within milliseconds) takes both steps in one UPDATE.
    """
    # A Core connection, not an ORM session: these statements touch no ORM object, and the
    # session's bookkeeping cost more than the statements (profile of the SMS bench).
    async with db.engine.begin() as conn:
        current: dict[int, MessageState] = {
            row.id: row.state
            for row in await conn.execute(_STATES, {"b_ids": list({u.id for u in batch})})
        }
        moved: set[int] = set()  # id() of the outcomes applied
        pairs = _sent_then_delivered(batch, current)
        if pairs:
            merged = []
            for sent, delivered in pairs:
                values = {**sent.values, **delivered.values}
                merged.append(Outcome(S.DELIVERED, sent.id, values))
                current[sent.id] = S.DELIVERED
                moved.update((id(sent), id(delivered)))
            for keys, items in _by_columns(merged).items():
                await execute_many(
                    conn, _outcome_update(S.DELIVERED, keys, S.SENT), _params(keys, items)
                )
        for state in WRITE_ORDER:
            group = []
            for u in batch:
                if u.state is state and u.id in current and can_move(current[u.id], state):
                    current[u.id] = state
                    group.append(u)
                    moved.add(id(u))
            for keys, items in _by_columns(group).items():
                await execute_many(conn, _outcome_update(state, keys), _params(keys, items))
        applied = [u for u in batch if id(u) in moved]
        await timeline.write_outcomes(conn, timeline.outcome_updates(applied, interaction_of))
    return applied


def _params(keys: tuple[str, ...], items: list[Outcome]) -> list[dict[str, Any]]:
    return [{"b_id": u.id, **{f"b_{k}": u.values[k] for k in keys}} for u in items]


_STATES = select(OUTBOX.c.id, OUTBOX.c.state).where(
    OUTBOX.c.id.in_(bindparam("b_ids", expanding=True))
)


@functools.cache
def _outcome_update(
    state: MessageState, keys: tuple[str, ...], via: MessageState | None = None
) -> Update:
    """Built once per (state, columns): building the expression cost more than running it.

    With `via`, the row moves to `state` through `via` in one step: the guard is `via`'s.
    """
    guard = sources_of(via if via is not None else state)
    # The states are our own enum's values, written into the SQL once: as bound parameters
    # they were converted and checked again for every row of every executemany.
    return (
        update(OUTBOX)
        .where(OUTBOX.c.id == bindparam("b_id"))
        .where(OUTBOX.c.state.in_([_sql_state(src) for src in sorted(guard)]))
        .values(state=_sql_state(state), **{k: bindparam(f"b_{k}") for k in keys})
    )


def _sql_state(state: MessageState) -> ColumnElement[Any]:
    return literal_column(f"'{state.value}'")


def _sent_then_delivered(
    batch: list[Outcome], current: dict[int, MessageState]
) -> list[tuple[Outcome, Outcome]]:
    """Pairs of (`sent`, `delivered`) for the same message still `sending` in the database."""
    sent: dict[int, Outcome] = {}
    for u in batch:
        if u.state is S.SENT and u.id not in sent and current.get(u.id) is S.SENDING:
            sent[u.id] = u
    if not sent:
        return []
    pairs = []
    for u in batch:
        if u.state is S.DELIVERED:
            first = sent.pop(u.id, None)
            if first is not None:
                pairs.append((first, u))
    return pairs


def _by_columns(group: list[Outcome]) -> dict[tuple[str, ...], list[Outcome]]:
    """Rows updated with the same set of columns share one executemany statement."""
    out: dict[tuple[str, ...], list[Outcome]] = {}
    for u in group:
        keys = tuple(sorted(k for k in u.values if k != "final"))
        out.setdefault(keys, []).append(u)
    return out


# -- the dispatcher's and the receipt matcher's SQL ------------------------------------------
CLAIM_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.channel,
    OutboxMessage.to_address,
    OutboxMessage.body,
    OutboxMessage.subject,
    OutboxMessage.html_body,
    OutboxMessage.meta,
    OutboxMessage.attempts,
    OutboxMessage.expires_at,
    OutboxMessage.contact_id,
    OutboxMessage.campaign_id,
    OutboxMessage.interaction_id,
)
# id, channel, contact_id, campaign_id, interaction_id: who a message is for.
WhoRow = Row[int, Channel, int | None, int | None, int | None]
WHO_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.channel,
    OutboxMessage.contact_id,
    OutboxMessage.campaign_id,
    OutboxMessage.interaction_id,
)


# Core columns, built once: the ORM path and rebuilding the expression per claim cost more
# than the statement itself (py-spy on the SMS bench).
_DUE = (
    select(OUTBOX.c.id)
    .where(
        OUTBOX.c.state == S.QUEUED,
        OUTBOX.c.channel == bindparam("b_channel"),
        OUTBOX.c.next_attempt_at.is_(None) | (OUTBOX.c.next_attempt_at <= bindparam("b_now")),
    )
    .order_by(OUTBOX.c.id)
    .limit(bindparam("b_limit"))
    .scalar_subquery()
)
_CLAIM = (
    update(OUTBOX)
    .where(OUTBOX.c.id.in_(_DUE), OUTBOX.c.state == S.QUEUED)
    .values(state=S.SENDING, attempts=OUTBOX.c.attempts + 1)
    .returning(*(OUTBOX.c[column.key] for column in CLAIM_COLUMNS))
)


async def requeue_interrupted(db: Database) -> int:
    """Rows left `sending` by a stop go back to `queued` (at least once); returns how many."""
    async with db.transaction() as session:
        result = await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.state == S.SENDING)
            .values(state=S.QUEUED, next_attempt_at=None)
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def release(db: Database, ids: list[int]) -> None:
    """Claimed rows that were never sent go back to `queued`, their attempt not counted."""
    async with db.transaction() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.state == S.SENDING)
            .values(state=S.QUEUED, attempts=OutboxMessage.attempts - 1)
        )


async def claim(db: Database, channel: Channel, limit: int, now: datetime) -> list[Row[Any]]:
    """Move up to `limit` due rows of `channel` from queued to sending, oldest first.

    One UPDATE … RETURNING: a claim is one statement, not a SELECT and an UPDATE. `attempts`
    comes back already counting this attempt.
    """
    async with db.engine.begin() as conn:  # Core, as write_outcomes
        rows = (
            await conn.execute(_CLAIM, {"b_channel": channel, "b_now": now, "b_limit": limit})
        ).all()
    return sorted(rows, key=lambda row: int(row.id))


async def next_due(db: Database, channels: Sequence[Channel], now: datetime) -> datetime | None:
    """When the earliest queued row of `channels` is due (now for one without a retry time)."""
    async with db.session() as session:
        nxt = await session.scalar(
            select(func.min(func.coalesce(OutboxMessage.next_attempt_at, now))).where(
                OutboxMessage.state == S.QUEUED, OutboxMessage.channel.in_(list(channels))
            )
        )
    if nxt is None:
        return None
    if isinstance(nxt, str):  # SQLite hands back an aggregate over a coalesce as text
        nxt = datetime.fromisoformat(nxt)
    if nxt.tzinfo is None:
        nxt = nxt.replace(tzinfo=UTC)
    return nxt


async def stale(db: Database, now: datetime, receipt_timeout: timedelta) -> list[WhoRow]:
    """Queued rows past their expiry, and SMS still waiting for a receipt after the timeout."""
    async with db.session() as session:
        return list(
            (
                await session.execute(
                    select(*WHO_COLUMNS).where(
                        (
                            (OutboxMessage.state == S.QUEUED)
                            & OutboxMessage.expires_at.is_not(None)
                            & (OutboxMessage.expires_at <= now)
                        )
                        | (
                            (OutboxMessage.state == S.SENT)
                            & (OutboxMessage.channel == Channel.SMS)
                            & (OutboxMessage.sent_at <= now - receipt_timeout)
                        )
                    )
                )
            ).all()
        )


async def sent_sms_by_provider_id(db: Database, provider_id: str) -> WhoRow | None:
    """The SMS whose first part the provider named `provider_id` (stored as provider_id)."""
    async with db.session() as session:
        return (
            await session.execute(
                select(*WHO_COLUMNS).where(
                    OutboxMessage.channel == Channel.SMS, OutboxMessage.provider_id == provider_id
                )
            )
        ).first()
