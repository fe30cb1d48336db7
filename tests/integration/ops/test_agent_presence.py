"""Issue 20: agents' states live where every daemon sees them. Two daemons' agent boards on
one real PostgreSQL (each with its bus, relay to the bus, shared agent states and live floor):
a daemon started after an agent went Ready shows that agent; a pause with its reason reaches
it; an agent whose daemon stops cleanly, or dies, leaves its floor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import func, select

from contactd.db.base import Base
from contactd.db.models import AgentPresence
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard
from contactd.dialer.floor_relay import AgentStateRelay
from contactd.dialer.presence import SharedAgentStates
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.web.live import FloorHub

pytestmark = pytest.mark.postgres
BEAT_S, EXPIRE_S = 0.2, 1.5
WAIT_S = 10.0


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Database]:
    db = Database(postgres_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with db:
        yield db


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.05)


async def rows(db: Database, count: int) -> None:
    """Until `count` agents are stored (the writes are off the agents' path)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        async with db.session() as session:
            found = await session.scalar(select(func.count()).select_from(AgentPresence))
        if found == count:
            return
        assert time.monotonic() < deadline, f"{found} agents stored, expected {count}"
        await asyncio.sleep(0.05)


def presence(db: Database, bus: EventBus, node: str) -> SharedAgentStates:
    return SharedAgentStates(db, bus, node, heartbeat_s=BEAT_S, expire_s=EXPIRE_S)


async def test_a_later_daemon_sees_agents_of_another_and_loses_them_when_it_goes(
    pg: Database,
) -> None:
    bus_a, board_a = EventBus(), AgentBoard()
    async with AgentStateRelay(board_a, bus_a), presence(pg, bus_a, "pbx-a") as a:
        board_a.login("alice", "PJSIP/webrtc-alice", 7, time.monotonic())  # Ready
        board_a.login("bob", "PJSIP/1002", 7, time.monotonic())
        board_a.pause("bob", time.monotonic(), "break")
        await rows(pg, 2)

        # Daemon B starts now: neither agent changes again, yet its floor shows both.
        bus_b = EventBus()
        async with FloorHub(pg, bus_b, HealthRegistry(), None) as floor_b, \
                presence(pg, bus_b, "pbx-b"):
            assert floor_b.agents["alice"]["state"] == "free"
            assert floor_b.agents["alice"]["campaign_id"] == 7
            assert floor_b.agents["bob"]["state"] == "paused"
            assert floor_b.agents["bob"]["pause_code"] == "break"
            # A pause with its reason reaches B's floor without a relay, from the rows.
            board_a.pause("alice", time.monotonic(), "training")
            await until(lambda: floor_b.agents["alice"]["state"] == "paused",
                        "alice paused on B's floor")
            assert floor_b.agents["alice"]["pause_code"] == "training"
            # Signing out on A: gone from B's floor.
            board_a.logout("bob")
            await until(lambda: "bob" not in floor_b.agents, "bob gone from B's floor")
            # A dies (no clean stop: its rows stay, no longer refreshed): alice leaves B's
            # floor once her row is older than the expiry.
            await a._tasks.close()  # the process is gone: no step, no clean stop
            died = time.monotonic()
            await until(lambda: "alice" not in floor_b.agents, "alice gone after A died")
            assert time.monotonic() - died >= EXPIRE_S - 2 * BEAT_S  # not before it expired


async def test_a_clean_stop_removes_the_daemons_agents_at_once(pg: Database) -> None:
    bus_b = EventBus()
    async with FloorHub(pg, bus_b, HealthRegistry(), None) as floor_b, \
            presence(pg, bus_b, "pbx-b"):
        bus_a, board_a = EventBus(), AgentBoard()
        async with AgentStateRelay(board_a, bus_a), presence(pg, bus_a, "pbx-a"):
            board_a.login("carol", "PJSIP/1003", 3, time.monotonic())
            await until(lambda: floor_b.agents.get("carol", {}).get("state") == "free",
                        "carol on B's floor")
        stopped = time.monotonic()
        await until(lambda: "carol" not in floor_b.agents, "carol gone after A stopped")
        assert time.monotonic() - stopped < EXPIRE_S  # from the removed rows, not the expiry
