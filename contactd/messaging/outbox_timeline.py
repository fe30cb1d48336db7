"""An outbound message as a row on its contact's timeline, whose outcome follows its state.

The row is made in the transaction that stores the message (so the timeline never shows a
message the outbox does not have), and each committed state change is copied to it in the
transaction that records the change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from contactd.db.executemany import execute_many
from contactd.db.models.crm import Interaction
from contactd.enums import Channel, Direction, InteractionKind, MessageState
from contactd.messaging.outbox_types import OutboundMessage, Outcome

INTERACTIONS = cast(Table, Interaction.__table__)


async def add_row(session: AsyncSession, message: OutboundMessage) -> int:
    """The message's timeline row, made QUEUED; returns its id."""
    kind = InteractionKind.SMS if message.channel is Channel.SMS else InteractionKind.EMAIL
    row = Interaction(
        contact_id=message.contact_id,
        kind=kind,
        direction=Direction.OUTBOUND,
        channel=message.channel,
        campaign_id=message.campaign_id,
        subject=message.subject,
        body=message.body,
        remote_address=message.to,
        outcome=MessageState.QUEUED.value,
    )
    session.add(row)
    await session.flush()
    return row.id


def outcome_updates(
    batch: Iterable[Outcome], interaction_of: Callable[[int], int | None]
) -> list[dict[str, Any]]:
    """Parameters for `write_outcomes`: one per timeline row, the last state its message took
    in the batch (a message both sent and delivered in it shows `delivered`)."""
    last: dict[int, str] = {}
    for item in batch:
        interaction_id = interaction_of(item.id)
        if interaction_id is not None:
            last[interaction_id] = item.state.value
    return [{"b_id": row, "b_outcome": outcome} for row, outcome in last.items()]


_SET_OUTCOME = (
    update(INTERACTIONS)
    .where(INTERACTIONS.c.id == bindparam("b_id"))
    .values(outcome=bindparam("b_outcome"))
)


async def write_outcomes(conn: AsyncConnection, updates: list[dict[str, Any]]) -> None:
    await execute_many(conn, _SET_OUTCOME, updates)
