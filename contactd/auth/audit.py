"""Audit trail: one row per change, written in the same transaction as the change itself,
so a change that is rolled back leaves no row and a committed one always has its row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contactd.db.models import AuditEntry


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a panel user (None for the command line) and where from."""

    user_id: int | None
    remote_addr: str | None = None


CLI = Actor(user_id=None, remote_addr="cli")


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    session.add(
        AuditEntry(
            user_id=actor.user_id,
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            details={"before": before, "after": after},
            remote_addr=actor.remote_addr,
        )
    )
