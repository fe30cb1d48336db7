"""Agents' states in the shared database, so that every daemon on it sees every agent.

Several daemons on one PostgreSQL each drive their own Asterisk, and an agent works on the
daemon whose workspace they opened. The cluster relay carries each change to the others as it
happens, but a daemon started later, or one that missed a change while its link was down, would
not know the agents who have not changed since. So each daemon also keeps its agents' rows in
`agent_presence` (written on change, a few at a time, off the call path) and refreshes their
`seen_at` while it lives. Every daemon reads the others' rows at start and every heartbeat:
agents it did not know appear on its floor; an agent whose row vanished (signed out, or the
daemon stopped) or went stale (the daemon died) leaves it.

The rows are for viewers. Pacing stays per daemon: an agent's phone is on that daemon's PBX,
so only that daemon can connect calls to them (docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.cluster import PeerEvent
from contactd.db.models import AgentPresence
from contactd.db.session import Database
from contactd.dialer.agents import LOGGED_OUT
from contactd.dialer.floor_events import AgentStateChanged
from contactd.events import EventBus

log = logging.getLogger(__name__)

HEARTBEAT_S: Final = 5.0
EXPIRE_S: Final = 20.0  # a row not refreshed for this long belongs to a daemon that died


class SharedAgentStates:
    """Writes this daemon's agents to `agent_presence` and shows the other daemons' agents on
    this daemon's bus (as the cluster relay's `PeerEvent`s, which only live views read)."""

    def __init__(
        self, db: Database, bus: EventBus, node: str, *, heartbeat_s: float = HEARTBEAT_S,
        expire_s: float = EXPIRE_S, clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db, self.bus, self.node = db, bus, node
        self.heartbeat_s, self.expire_s = heartbeat_s, expire_s
        self._clock, self._monotonic = clock, monotonic
        self.state = LoopState("agent presence")
        self._changed: dict[str, AgentStateChanged] = {}  # newest change per agent, unwritten
        self._wake = asyncio.Event()
        self._next_beat = 0.0
        self.others: dict[str, tuple[str, str, datetime]] = {}  # agent -> (node, state, since)
        self._tasks = TaskOwner("agent-presence", log)

    async def __aenter__(self) -> SharedAgentStates:
        self.bus.subscribe(AgentStateChanged, self._on_change)
        await self._look_at_others()
        self._tasks.spawn(run_resilient(self._step, self.state, logger=log), "presence")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bus.unsubscribe(AgentStateChanged, self._on_change)
        await self._tasks.close()
        try:  # a clean stop: this daemon's agents leave the other floors at their next look
            async with self.db.transaction() as session:
                await session.execute(delete(AgentPresence).where(AgentPresence.node == self.node))
        except Exception as exc:  # the database may be what stopped us
            log.warning("agent presence rows not removed at stop", extra={"error": str(exc)})

    def _on_change(self, event: AgentStateChanged) -> None:
        self._changed[event.agent] = event
        self._wake.set()

    async def _step(self) -> None:
        """Write what changed (at once), and every heartbeat refresh this daemon's rows and
        look at the others'."""
        wait = max(0.0, self._next_beat - self._monotonic())
        if not self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
        self._wake.clear()
        await self._write()
        if self._monotonic() >= self._next_beat:
            await self._beat()
            await self._look_at_others()
            self._next_beat = self._monotonic() + self.heartbeat_s

    def _wall(self, since: float) -> datetime:
        """An event's `since` (this process's monotonic clock) as a wall-clock time."""
        return datetime.fromtimestamp(self._clock() - (self._monotonic() - since), UTC)

    async def _write(self) -> None:
        changes, self._changed = self._changed, {}
        if not changes:
            return
        now = datetime.fromtimestamp(self._clock(), UTC)
        try:
            async with self.db.transaction() as session:
                gone = [a for a, e in changes.items() if e.state == LOGGED_OUT]
                if gone:
                    await session.execute(delete(AgentPresence).where(
                        AgentPresence.agent.in_(gone), AgentPresence.node == self.node))
                rows = [{"agent": e.agent, "node": self.node, "campaign_id": e.campaign_id,
                         "state": e.state, "pause_code": e.pause_code,
                         "since": self._wall(e.since), "seen_at": now}
                        for e in changes.values() if e.state != LOGGED_OUT]
                if rows:
                    await session.execute(self._upsert(rows))
        except BaseException:
            for agent, event in changes.items():  # written at the next step instead
                self._changed.setdefault(agent, event)
            raise

    def _upsert(self, rows: list[dict[str, Any]]) -> Any:
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        stmt = dialect.insert(AgentPresence).values(rows)
        columns = ("node", "campaign_id", "state", "pause_code", "since", "seen_at")
        return stmt.on_conflict_do_update(
            index_elements=["agent"], set_={c: stmt.excluded[c] for c in columns})

    async def _beat(self) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(AgentPresence).where(AgentPresence.node == self.node)
                .values(seen_at=datetime.fromtimestamp(self._clock(), UTC)))

    async def _look_at_others(self) -> None:
        """Publish the other daemons' agents this daemon has not seen in that state, and the
        departure of those whose row is gone or stale."""
        edge = datetime.fromtimestamp(self._clock(), UTC) - timedelta(seconds=self.expire_s)
        async with self.db.session() as session:
            rows = (await session.execute(select(AgentPresence).where(
                AgentPresence.node != self.node, AgentPresence.seen_at >= edge))).scalars().all()
        seen: dict[str, tuple[str, str, datetime]] = {}
        for row in rows:
            seen[row.agent] = (row.node, row.state, row.since)
            if self.others.get(row.agent) != seen[row.agent]:
                await self._show(row.node, row.agent, row.campaign_id, row.state,
                                 row.pause_code, row.since)
        for agent, (node, _state, since) in self.others.items():
            if agent not in seen:
                log.info("agent left another daemon's floor",
                         extra={"agent": agent, "node": node})
                await self._show(node, agent, None, LOGGED_OUT, None, since)
        self.others = seen

    async def _show(self, node: str, agent: str, campaign_id: int | None, state: str,
                    pause_code: str | None, since: datetime) -> None:
        local_since = self._monotonic() - (self._clock() - since.timestamp())
        await self.bus.publish(PeerEvent(node=node, kind=AgentStateChanged.__name__, data={
            "agent": agent, "campaign_id": campaign_id, "state": state,
            "since": local_since, "pause_code": pause_code}))
