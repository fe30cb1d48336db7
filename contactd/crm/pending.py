"""What a crash left between "stored" and "routed": interactions still carrying a pending mark.

Inbound SMS, e-mail and web forms are each stored first (durably, marked pending) and routed
after; a recorder's sweep at start routes, oldest first, whatever still carries its mark. The
mark is a key of `Interaction.data` (each channel names its own, so one never sweeps
another's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select

from contactd.db.models.crm import Interaction
from contactd.db.session import Database


async def pending_row(db: Database, interaction_id: int, key: str,
                      mark: str) -> Interaction | None:
    """The interaction when its `data[key]` is still `mark` (waiting to be routed); None when
    it is unknown or was routed already. The caller holds its recorder's lock."""
    async with db.session() as session:
        row = await session.get(Interaction, interaction_id)
    return row if row is not None and row.data.get(key) == mark else None


async def sweep_pending(db: Database, key: str, mark: str,
                        route: Callable[[int], Awaitable[bool]]) -> int:
    """Route every interaction whose `data[key]` is `mark`; how many were routed now."""
    async with db.session() as session:
        waiting = list(await session.scalars(
            select(Interaction.id).where(Interaction.data[key].as_string() == mark)
            .order_by(Interaction.id)))
    routed = 0
    for interaction_id in waiting:
        routed += await route(interaction_id)
    return routed
