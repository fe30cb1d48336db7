"""Each agent's wrap-ups, stored for the agents report.

The agent board keeps wrap-up lengths in memory for the pacer only; reports read what was
stored. This follows the board's state changes on the bus and, when an agent leaves
wrap-up (by the button, the timer, a pause or a sign-out), writes one audit entry
`agent.wrap` with its length in seconds, dated when it ended. Writes are batched by one task,
so the board's synchronous steps never wait for the database.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Final

from sqlalchemy import select

from contactd.background import TaskOwner
from contactd.db.models import AuditEntry, User
from contactd.db.session import Database
from contactd.dialer.floor_events import AgentStateChanged
from contactd.events import EventBus

log = logging.getLogger(__name__)

WRAP_ACTION: Final = "agent.wrap"
WRAPPING: Final = "wrapping"  # AgentState.WRAPPING's value, as the events carry it


@dataclass(frozen=True)
class Wrap:
    agent: str
    campaign_id: int | None
    ended: float  # epoch seconds
    seconds: float


class WrapLog:
    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db, self._bus = db, bus
        self._last: dict[str, AgentStateChanged] = {}
        self._todo: list[Wrap] = []
        self._wake = asyncio.Event()
        self._tasks = TaskOwner("wrap-log", log)

    async def __aenter__(self) -> WrapLog:
        self._bus.subscribe(AgentStateChanged, self._on_change)
        self._tasks.spawn(self._run(), "write")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bus.unsubscribe(AgentStateChanged, self._on_change)
        await self._tasks.close()
        if self._todo:  # what ended just before the stop is kept too
            await self._write(self._todo)

    def _on_change(self, event: AgentStateChanged) -> None:
        before = self._last.get(event.agent)
        self._last[event.agent] = event
        if before is not None and before.state == WRAPPING and event.state != WRAPPING:
            seconds = max(0.0, event.since - before.since)
            self._todo.append(Wrap(event.agent, before.campaign_id, event.since, seconds))
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._todo = self._todo, []
            try:
                await self._write(batch)
            except Exception:
                self._todo[:0] = batch  # kept for the next try
                log.exception("wrap-ups not stored; trying again", extra={"count": len(batch)})
                await asyncio.sleep(1.0)  # back-off before the retry, not synchronisation
                self._wake.set()

    async def _write(self, batch: list[Wrap]) -> None:
        names = sorted({w.agent for w in batch})
        async with self._db.transaction() as session:
            found = await session.execute(
                select(User.username, User.id).where(User.username.in_(names)))
            ids: dict[str, int] = {str(name): int(uid) for name, uid in found.all()}
            for wrap in batch:
                session.add(AuditEntry(
                    at=datetime.fromtimestamp(wrap.ended, UTC),
                    user_id=ids.get(wrap.agent),
                    action=WRAP_ACTION,
                    entity="campaign",
                    entity_id=None if wrap.campaign_id is None else str(wrap.campaign_id),
                    details={"before": None, "after": {"seconds": round(wrap.seconds, 1)}},
                ))
