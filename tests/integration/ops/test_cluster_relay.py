"""Issue 20: live events fan out between daemons over PostgreSQL LISTEN/NOTIFY, so a panel on
any daemon shows every call. Two relays (two daemons' buses) on one real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from contactd.calls.events import AnsweredBy, CallAnswered, CallDialing, CallEnded
from contactd.cluster import CHANNEL, ClusterRelay, PeerEvent, asyncpg_dsn
from contactd.dialer.floor_events import AgentStateChanged
from contactd.enums import CallOutcome
from contactd.events import EventBus

pytestmark = pytest.mark.postgres
WAIT_S = 10.0


class Seen:
    """PeerEvents a bus received; wait until `count` arrived."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[PeerEvent] = []
        self._more = asyncio.Event()
        bus.subscribe(PeerEvent, self._on)

    def _on(self, event: PeerEvent) -> None:
        self.events.append(event)
        self._more.set()

    async def until(self, count: int) -> list[PeerEvent]:
        async with asyncio.timeout(WAIT_S):
            while len(self.events) < count:
                self._more.clear()
                await self._more.wait()
        return self.events


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[EventBus, EventBus, ClusterRelay]]:
    dsn = asyncpg_dsn(postgres_url)
    bus_a, bus_b = EventBus(), EventBus()
    async with ClusterRelay(dsn, "pbx-a", bus_a) as a, ClusterRelay(dsn, "pbx-b", bus_b) as b:
        async with asyncio.timeout(WAIT_S):
            await a.listening.wait()
            await b.listening.wait()
        yield bus_a, bus_b, b


async def test_a_daemon_sees_the_other_daemons_calls_and_agents_in_order(
    pair: tuple[EventBus, EventBus, ClusterRelay],
) -> None:
    bus_a, bus_b, _ = pair
    seen_a, seen_b = Seen(bus_a), Seen(bus_b)
    await bus_a.publish(CallDialing(attempt_id="a-1", phone_e164="+4930555", campaign_id=7))
    await bus_a.publish(CallAnswered(attempt_id="a-1", answered_by=AnsweredBy.HUMAN))
    await bus_a.publish(AgentStateChanged(agent="alice", campaign_id=7, state="talking",
                                          since=12.5))
    await bus_a.publish(CallEnded(attempt_id="a-1", outcome=CallOutcome.HUMAN, cause=16))
    got = await seen_b.until(4)
    assert [(e.node, e.kind) for e in got] == [
        ("pbx-a", "CallDialing"), ("pbx-a", "CallAnswered"), ("pbx-a", "AgentStateChanged"),
        ("pbx-a", "CallEnded")]
    assert got[0].data["phone_e164"] == "+4930555" and got[0].data["campaign_id"] == 7
    assert got[1].data["answered_by"] == "human"
    assert got[2].data["agent"] == "alice" and got[2].data["state"] == "talking"
    assert got[3].data["outcome"] == "human" and got[3].data["cause"] == 16
    # B's own services never see A's calls as their own, and A never hears its own echo.
    assert seen_a.events == []


async def test_a_bad_payload_is_ignored_and_a_lost_connection_comes_back(
    pair: tuple[EventBus, EventBus, ClusterRelay], postgres_url: str,
) -> None:
    bus_a, bus_b, relay_b = pair
    seen_b = Seen(bus_b)
    other = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        await other.execute("SELECT pg_notify($1, $2)", CHANNEL, "not json")
        await other.execute("SELECT pg_notify($1, $2)", CHANNEL, '{"node": "x"}')
        # The database drops B's listening connection (a restart, a failover, an idle kill):
        # B says so in health, and listens again.
        assert relay_b.state.total_failures == 0
        await other.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'contactd-relay-pbx-b'")
        async with asyncio.timeout(WAIT_S):
            while True:  # until it noticed (in-process state, no event to wait on)
                if relay_b.state.total_failures:
                    break
                await asyncio.sleep(0.02)
            await relay_b.listening.wait()  # and listens again
        await bus_a.publish(CallDialing(attempt_id="a-2", phone_e164="+4930557"))
        got = await seen_b.until(1)
        assert [(e.kind, e.data["attempt_id"]) for e in got] == [("CallDialing", "a-2")]
    finally:
        await other.close()
