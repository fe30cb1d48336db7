"""The `agent_state` rows each daemon keeps (contactd/cluster_agents.py), on SQLite in-process:
what a daemon writes, what one started later shows, and what it never shows (a dead daemon's
agents). Two components with different node names on one database stand for two daemons; the
relay between them is tests/integration/ops/test_cluster_relay.py's, the whole on PostgreSQL
is test_agent_state_shared.py's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select

from contactd.cluster import PeerEvent
from contactd.cluster_agents import SharedAgentStates
from contactd.db.models.dialer import AgentStateRow
from contactd.db.session import Database
from contactd.dialer.floor_events import AgentStateChanged
from contactd.events import EventBus

EXPIRY_S: Final = 0.6
WAIT_S: Final = 10.0
LOOK_S: Final = 0.05


class Peers:
    """The other daemons' agents as a floor on this bus is told of them."""

    def __init__(self, bus: EventBus) -> None:
        self.shown: dict[str, PeerEvent] = {}
        self.changed = asyncio.Event()
        bus.subscribe(PeerEvent, self._on)

    def _on(self, event: PeerEvent) -> None:
        if event.data["state"] == "logged_out":
            self.shown.pop(event.data["agent"], None)
        else:
            self.shown[event.data["agent"]] = event
        self.changed.set()

    async def until(self, agent: str, state: str) -> None:
        async with asyncio.timeout(WAIT_S):
            while agent not in self.shown or self.shown[agent].data["state"] != state:
                self.changed.clear()
                await self.changed.wait()

    async def until_gone(self, agent: str) -> None:
        async with asyncio.timeout(WAIT_S):
            while agent in self.shown:
                self.changed.clear()
                await self.changed.wait()


async def rows(db: Database) -> list[tuple[str, str, str, str | None]]:
    async with db.session() as session:
        found = (await session.execute(select(AgentStateRow))).scalars().all()
    return sorted((r.node, r.agent, r.state, r.pause_code) for r in found)


async def until_rows(db: Database, expected: list[tuple[str, str, str, str | None]]) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            if await rows(db) == expected:
                return
            await asyncio.sleep(LOOK_S)  # the writer's own task stores them a moment later


def change(agent: str, state: str, pause_code: str | None = None) -> AgentStateChanged:
    return AgentStateChanged(
        agent=agent, campaign_id=3, state=state, since=100.0, pause_code=pause_code
    )


async def test_a_daemon_started_later_shows_live_agents_only_and_drops_a_silent_daemons(
    db: Database,
) -> None:
    # A daemon killed long ago left a Ready agent behind: nobody may show them Ready.
    async with db.transaction() as session:
        past = datetime.now(UTC) - timedelta(seconds=60)
        session.add(
            AgentStateRow(
                node="pbx-dead",
                agent="zed",
                campaign_id=3,
                state="free",
                since=1.0,
                changed_at=past,
                expires_at=past,
            )
        )
    bus_a, bus_b = EventBus(), EventBus()
    async with SharedAgentStates(db, bus_a, "pbx-a", expiry_s=EXPIRY_S):
        # The board's changes: the latest of each agent is stored; a logout removes the row.
        await bus_a.publish(change("alice", "free"))
        await bus_a.publish(change("bob", "free"))
        await bus_a.publish(change("alice", "paused", "lunch"))
        await bus_a.publish(change("bob", "logged_out"))
        await until_rows(
            db, [("pbx-a", "alice", "paused", "lunch"), ("pbx-dead", "zed", "free", None)]
        )

        peers_b = Peers(bus_b)
        async with SharedAgentStates(db, bus_b, "pbx-b", expiry_s=EXPIRY_S):
            # B, started later, shows alice as A stored her, and never the dead daemon's zed.
            assert {
                k: (e.node, e.data["state"], e.data["pause_code"]) for k, e in peers_b.shown.items()
            } == {"alice": ("pbx-a", "paused", "lunch")}
            # A's heartbeats keep alice live past several expiries.
            await asyncio.sleep(EXPIRY_S * 3)  # time passing is what is tested here
            assert "alice" in peers_b.shown
            # A change B's relay never brought (no relay here; a NOTIFY lost while it
            # reconnected) reaches B's floor from the row, at B's next heartbeat.
            await bus_a.publish(change("alice", "free"))
            await peers_b.until("alice", "free")
            await bus_a.publish(change("alice", "paused", "break"))
            await peers_b.until("alice", "paused")
            assert peers_b.shown["alice"].data["pause_code"] == "break"
        # A clean stop of B removes none of A's rows (it had none of its own).
        assert ("pbx-a", "alice", "paused", "break") in await rows(db)
    # A stopped: its rows went with it.
    assert await rows(db) == [("pbx-dead", "zed", "free", None)]


async def test_agents_of_a_daemon_that_stops_refreshing_leave_the_floor(db: Database) -> None:
    bus_a, bus_b = EventBus(), EventBus()
    peers_b = Peers(bus_b)
    async with SharedAgentStates(db, bus_b, "pbx-b", expiry_s=EXPIRY_S):
        a = SharedAgentStates(db, bus_a, "pbx-a", expiry_s=EXPIRY_S)
        await a.__aenter__()
        await bus_a.publish(change("alice", "free"))
        await until_rows(db, [("pbx-a", "alice", "free", None)])
        # As the relay would: B's floor hears of alice from A.
        await bus_b.publish(
            PeerEvent(
                node="pbx-a",
                kind="AgentStateChanged",
                data={"agent": "alice", "campaign_id": 3, "state": "free", "since": 100.0},
            )
        )
        assert "alice" in peers_b.shown
        # A dies: its tasks stop and nothing deletes its rows (as after kill -9).
        await a._tasks.close()
        await peers_b.until_gone("alice")
        assert await rows(db) == [("pbx-a", "alice", "free", None)]
