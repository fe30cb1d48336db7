"""Agents' states in the shared database, so that every daemon's floor shows every agent.

The relay (contactd/cluster.py) carries each agent change to the daemons that are running when
it happens; a daemon started later, or one that missed a NOTIFY while its link was down, would
never see an agent who has not changed since. So each daemon also keeps its own agents' rows in
`agent_state`:

- every `AgentStateChanged` of its board is written (the latest per agent, batched every
  FLUSH_S by this component's task: the board and the call path never wait for the database);
- while it runs it pushes its rows' `expires_at` forward every third of
  `[general] agent_state_expiry_s`;
- on start it drops the rows of its own previous life (its board starts empty) and shows the
  other daemons' live rows on its floor, as `PeerEvent`s, then follows the relay;
- every heartbeat it shows again the other daemons' rows newer than what its floor shows (a
  NOTIFY lost while the relay reconnected), and takes off its floor the other daemons' agents
  without a live row (their daemon stopped or was killed, or signed them out while this
  daemon was not listening).

A row is a viewer's fact only: the pacer of each daemon counts its own board's agents (their
phones are on its own Asterisk), never these rows. On SQLite (one daemon) the rows are written
and nobody else reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Final

from sqlalchemy import delete, select, update

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.cluster import PeerEvent
from contactd.db.models.dialer import AgentStateRow
from contactd.db.session import Database
from contactd.dialer.agents import LOGGED_OUT
from contactd.dialer.floor_events import AgentStateChanged
from contactd.events import EventBus
from contactd.health import ComponentHealth

log = logging.getLogger(__name__)

FLUSH_S: Final = 0.2  # changes written together: one transaction per batch, not per change
FORGET_S: Final = 86_400.0  # rows expired this long ago are deleted by any daemon
KIND: Final = AgentStateChanged.__name__


@dataclass
class _Peer:
    """Another daemon's agent this daemon's floor shows, and when it last heard of them."""

    node: str
    heard: float  # monotonic
    at: datetime  # when the change shown happened on the agent's daemon


class SharedAgentStates:
    """Writes this daemon's agents to `agent_state` and shows the other daemons' on its bus."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        node: str,
        *,
        expiry_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db, self._bus, self.node, self.expiry_s = db, bus, node, expiry_s
        self._clock = clock
        self._pending: dict[str, AgentStateChanged] = {}
        self._wake = asyncio.Event()
        self._peers: dict[str, _Peer] = {}  # agent name -> the daemon showing them
        self._tasks = TaskOwner("agent-state", log)
        self.state = LoopState("agent state")
        self.heartbeat = LoopState("agent state heartbeat")

    @property
    def heartbeat_s(self) -> float:
        return self.expiry_s / 3

    def probe(self) -> ComponentHealth:
        """Degraded while the writes or the heartbeat fail (the writer's failure first)."""
        return self.state.probe() if not self.state.healthy else self.heartbeat.probe()

    async def __aenter__(self) -> SharedAgentStates:
        self._bus.subscribe(AgentStateChanged, self._on_local)
        self._bus.subscribe(PeerEvent, self._on_peer)
        async with self._db.transaction() as session:  # our board starts empty
            await session.execute(delete(AgentStateRow).where(AgentStateRow.node == self.node))
        loaded = await self._show_live_rows()
        log.info("agents of other daemons loaded", extra={"agents": len(loaded)})
        self._tasks.spawn(run_resilient(self._flush, self.state, logger=log), "write")
        self._tasks.spawn(run_resilient(self._beat, self.heartbeat, logger=log), "heartbeat")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bus.unsubscribe(AgentStateChanged, self._on_local)
        self._bus.unsubscribe(PeerEvent, self._on_peer)
        await self._tasks.close()
        # A clean stop: our agents are gone with our board, at once rather than at expiry.
        with contextlib.suppress(Exception):
            async with self._db.transaction() as session:
                await session.execute(delete(AgentStateRow).where(AgentStateRow.node == self.node))

    # ---- this daemon's agents ---------------------------------------------------------------
    def _on_local(self, event: AgentStateChanged) -> None:
        self._pending[event.agent] = event  # only the latest of each agent is written
        self._wake.set()

    async def _flush(self) -> None:
        await self._wake.wait()
        await asyncio.sleep(FLUSH_S)  # gathers the changes that follow into one transaction
        self._wake.clear()
        batch, self._pending = self._pending, {}
        try:
            await self._write(batch)
        except BaseException:
            self._pending = batch | self._pending  # newer changes win; retried next step
            self._wake.set()
            raise

    async def _write(self, batch: dict[str, AgentStateChanged]) -> None:
        expires = self._clock() + timedelta(seconds=self.expiry_s)
        async with self._db.transaction() as session:
            await session.execute(
                delete(AgentStateRow).where(
                    AgentStateRow.node == self.node, AgentStateRow.agent.in_(list(batch))
                )
            )
            session.add_all(
                AgentStateRow(
                    node=self.node,
                    agent=e.agent,
                    campaign_id=e.campaign_id,
                    state=e.state,
                    pause_code=e.pause_code,
                    since=e.since,
                    changed_at=e.at,
                    expires_at=expires,
                )
                for e in batch.values()
                if e.state != LOGGED_OUT
            )

    async def _beat(self) -> None:
        """Our rows stay live; the other daemons' rows are shown again where the floor missed
        a change, and their agents without a live row leave the floor."""
        now = self._clock()
        async with self._db.transaction() as session:
            await session.execute(
                update(AgentStateRow)
                .where(AgentStateRow.node == self.node)
                .values(expires_at=now + timedelta(seconds=self.expiry_s))
            )
            await session.execute(
                delete(AgentStateRow).where(
                    AgentStateRow.expires_at < now - timedelta(seconds=FORGET_S)
                )
            )
        live = await self._show_live_rows()
        heard_before = time.monotonic() - self.expiry_s  # a change may still be on its way
        for agent, peer in list(self._peers.items()):
            if (peer.node, agent) not in live and peer.heard < heard_before:
                log.info(
                    "agent of a silent daemon taken off the floor",
                    extra={"agent": agent, "node": peer.node},
                )
                del self._peers[agent]
                await self._bus.publish(
                    PeerEvent(
                        node=peer.node,
                        kind=KIND,
                        data={
                            "agent": agent,
                            "campaign_id": None,
                            "state": LOGGED_OUT,
                            "since": 0.0,
                        },
                    )
                )
        await asyncio.sleep(self.heartbeat_s)

    # ---- the other daemons' agents ----------------------------------------------------------
    def _on_peer(self, event: PeerEvent) -> None:
        if event.kind != KIND or not isinstance(event.data.get("agent"), str):
            return
        agent = event.data["agent"]
        if event.data.get("state") == LOGGED_OUT:
            self._peers.pop(agent, None)
            return
        at = event.at
        with contextlib.suppress(TypeError, ValueError):
            stamped = datetime.fromisoformat(event.data["at"])  # when it happened on its daemon
            at = stamped if stamped.tzinfo is not None else at
        self._peers[agent] = _Peer(event.node, time.monotonic(), at)

    async def _show_live_rows(self) -> set[tuple[str, str]]:
        """The other daemons' live rows onto this daemon's floor, where it shows an older
        state or none (a daemon started later; a NOTIFY lost while the relay reconnected);
        a change the relay brought after the row was written is newer, and kept. Returns the
        (node, agent) of the live rows."""
        async with self._db.session() as session:
            rows = (
                (
                    await session.execute(
                        select(AgentStateRow)
                        .where(
                            AgentStateRow.node != self.node,
                            AgentStateRow.expires_at >= self._clock(),
                        )
                        .order_by(AgentStateRow.changed_at)
                    )
                )
                .scalars()
                .all()
            )
        for row in rows:
            shown = self._peers.get(row.agent)
            if shown is not None and shown.node == row.node and shown.at >= row.changed_at:
                continue
            await self._bus.publish(
                PeerEvent(
                    node=row.node,
                    kind=KIND,
                    at=row.changed_at,
                    data={
                        "agent": row.agent,
                        "campaign_id": row.campaign_id,
                        "state": row.state,
                        "since": row.since,
                        "pause_code": row.pause_code,
                        "at": row.changed_at.isoformat(),
                    },
                )
            )
        return {(row.node, row.agent) for row in rows}
