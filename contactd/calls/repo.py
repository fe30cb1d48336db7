"""Stored call attempts: the row written before the Originate, and guarded state updates.

Updates are `UPDATE … WHERE state IN (legal sources)`: the state machine (calls.machine) is
enforced by the database itself, so a duplicated or late event can never move a row back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, bindparam, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.calls.events import CallAnswered, CallBridged, CallEnded, CallEvent, CallRinging
from contactd.calls.machine import OPEN_STATES, sources_of
from contactd.db.models.calls import CallAttempt
from contactd.db.session import Database
from contactd.enums import AttemptState

T: Table = CallAttempt.__table__  # type: ignore[assignment]
S = AttemptState


@dataclass(frozen=True, kw_only=True)
class NewAttempt:
    attempt_id: str
    phone_e164: str
    campaign_id: int | None = None
    lead_id: int | None = None
    contact_id: int | None = None
    agent_id: int | None = None
    interaction_id: int | None = None
    detect_machine: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> dict[str, Any]:
        return {
            "id": self.attempt_id,
            "phone_e164": self.phone_e164,
            "campaign_id": self.campaign_id,
            "lead_id": self.lead_id,
            "contact_id": self.contact_id,
            "agent_id": self.agent_id,
            "interaction_id": self.interaction_id,
            "detect_machine": self.detect_machine,
            "state": S.DIALING,
            "created_at": self.created_at,
        }


def _guard(target: AttemptState) -> Any:
    # Inline literals (our own enum values): an expanding IN cannot run as executemany.
    states = or_(*(T.c.state == literal_column(f"'{s.value}'") for s in sorted(sources_of(target))))
    return (T.c.id == bindparam("b_id")) & states


_UPDATES: dict[type[CallEvent], Any] = {
    CallRinging: update(T).where(_guard(S.RINGING)).values(state=S.RINGING),
    CallAnswered: update(T)
    .where(_guard(S.ANSWERED))
    .values(
        state=S.ANSWERED,
        answered_at=bindparam("b_answered_at"),
        amd_status=bindparam("b_amd_status"),
        amd_cause=bindparam("b_amd_cause"),
        channel=bindparam("b_channel"),
    ),
    CallBridged: update(T)
    .where(_guard(S.BRIDGED))
    .values(state=S.BRIDGED, bridged_at=bindparam("b_at")),
    CallEnded: update(T)
    .where(_guard(S.ENDED))
    .values(
        state=S.ENDED,
        outcome=bindparam("b_outcome"),
        hangup_cause=bindparam("b_cause"),
        originate_reason=bindparam("b_reason"),
        ended_at=bindparam("b_at"),
        ring_s=bindparam("b_ring_s"),
        talk_s=bindparam("b_talk_s"),
        detail=bindparam("b_detail"),
    ),
}
# Applied in this order inside one batch, which is the order the machine allows.
APPLY_ORDER: tuple[type[CallEvent], ...] = (CallRinging, CallAnswered, CallBridged, CallEnded)


def _params(event: CallEvent) -> dict[str, Any]:
    params: dict[str, Any] = {"b_id": event.attempt_id, "b_at": event.at}
    if isinstance(event, CallAnswered):
        params.update(
            b_answered_at=event.answered_at or event.at,
            b_amd_status=event.amd_status,
            b_amd_cause=(event.amd_cause or "")[:64] or None,
            b_channel=event.channel,
        )
    elif isinstance(event, CallEnded):
        params.update(
            b_outcome=event.outcome,
            b_cause=event.cause,
            b_reason=event.originate_reason,
            b_ring_s=event.ring_s,
            b_talk_s=event.talk_s,
            b_detail=event.detail[:300] or None,
        )
    return params


class AttemptRepository:
    """`node`: this daemon's name, written on each attempt it stores. Open attempts are read
    for this node only (and rows stored before nodes were named): with several daemons on one
    database, each reconciles the calls its own Asterisk can see, and no other."""

    def __init__(self, db: Database, node: str | None = None) -> None:
        self.db, self.node = db, node

    async def insert_many(self, attempts: Sequence[NewAttempt]) -> None:
        async with self.db.transaction() as session:
            await self.insert_in(session, attempts)

    async def insert_in(self, session: AsyncSession, attempts: Sequence[NewAttempt]) -> None:
        if attempts:
            await session.execute(T.insert(), [a.row() | {"node": self.node} for a in attempts])

    async def apply_many(self, events: Sequence[CallEvent]) -> None:
        async with self.db.transaction() as session:
            await self.apply_in(session, events)

    @staticmethod
    async def apply_in(session: AsyncSession, events: Sequence[CallEvent]) -> None:
        """Apply events in machine order; illegal moves simply match no row."""
        for kind in APPLY_ORDER:
            params = [_params(e) for e in events if type(e) is kind]
            if params:
                await session.execute(_UPDATES[kind], params)

    async def get(self, attempt_id: str) -> CallAttempt | None:
        async with self.db.session() as session:
            return await session.get(CallAttempt, attempt_id)

    async def open_attempts(self) -> list[CallAttempt]:
        async with self.db.session() as session:
            query = select(CallAttempt).where(CallAttempt.state.in_(sorted(OPEN_STATES)))
            if self.node is not None:
                query = query.where(or_(CallAttempt.node == self.node,
                                        CallAttempt.node.is_(None)))
            return list(await session.scalars(query))

    async def count_by_state(self) -> dict[AttemptState, int]:
        async with self.db.session() as session:
            rows = await session.execute(select(CallAttempt.state, CallAttempt.id))
            out: dict[AttemptState, int] = {}
            for state, _id in rows:
                out[state] = out.get(state, 0) + 1
            return out
