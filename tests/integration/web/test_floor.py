"""The live floor (/floor): a snapshot, then the calls, agents, campaigns, queues and health
changes as the bus carries them; one fan-out for every tab, and pausing from the floor. The
dialer is never linked to Asterisk here (tests/integration/chromium/test_floor.py is)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event

from contactd.ami.client import AmiClient
from contactd.auth.service import UserService
from contactd.calls.events import CallAnswered, CallDialing, CallEnded
from contactd.calls.service import CallService
from contactd.cluster import PeerEvent, decode, encode
from contactd.config import Settings
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.dialer.agents import AgentState
from contactd.dialer.floor_events import InboundAbandoned, InboundAnswered, InboundQueued
from contactd.dialer.floor_relay import AgentStateRelay
from contactd.dialer.service import DialerService
from contactd.enums import CallOutcome, CampaignMode, CampaignStatus, Role
from contactd.events import EventBus
from contactd.health import ComponentHealth, HealthRegistry
from contactd.web.app import create_app
from contactd.web.services import PanelServices
from tests.integration.web.conftest import CSRF_RE, PASSWORD, sign_in

Client = TestClient[web.Request, web.Application]
Push = tuple[str, dict[str, Any]]


@dataclass
class Floor:
    server: TestServer
    db: Database
    bus: EventBus
    dialer: DialerService
    campaign_id: int
    ami: list[ComponentHealth]
    clients: list[Client]

    async def user(self, username: str) -> tuple[Client, str]:
        client: Client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        response = await sign_in(client, username)
        assert response is not None and response.status == 303
        found = CSRF_RE.search(await (await client.get("/account")).text())
        assert found
        return client, found.group(1)


@pytest_asyncio.fixture
async def floor(db: Database, panel_settings: Settings) -> AsyncIterator[Floor]:
    users = UserService(db)
    await users.add("sam", PASSWORD, Role.SUPERVISOR)
    await users.add("alex", PASSWORD, Role.AGENT, extension="PJSIP/1001")
    async with db.transaction() as session:
        campaign = Campaign(
            name="spring", mode=CampaignMode.PREDICTIVE, status=CampaignStatus.RUNNING
        )
        session.add(campaign)
        await session.flush()
        campaign_id = campaign.id
    bus = EventBus()
    calls = CallService(db, bus, AmiClient(panel_settings.ami), panel_settings.asterisk)
    dialer = DialerService(db, bus, panel_settings, calls)
    ami = [ComponentHealth("ok")]
    health = HealthRegistry()
    health.register("ami", lambda: ami[0])
    app = create_app(panel_settings, db, health, PanelServices(bus=bus, dialer=dialer, calls=calls))
    server = TestServer(app)
    await server.start_server()
    found = Floor(server, db, bus, dialer, campaign_id, ami, [])
    try:
        async with AgentStateRelay(dialer.agents, bus):
            yield found
    finally:
        for client in found.clients:
            await client.close()
        await server.close()


async def _next(stream: ClientResponse, timeout_s: float = 10.0) -> Push:
    kind = ""
    async with asyncio.timeout(timeout_s):
        while True:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                return kind, json.loads(line[6:])


async def _until(
    stream: ClientResponse, wanted: Callable[[Push], bool], timeout_s: float = 10.0
) -> Push:
    async with asyncio.timeout(timeout_s):
        while True:
            push = await _next(stream, timeout_s)
            if wanted(push):
                return push


async def _snapshot_with_campaign(stream: ClientResponse) -> dict[str, Any]:
    kind, snap = await _next(stream)
    assert kind == "snapshot"
    return snap


async def test_the_floor_shows_a_snapshot_then_calls_agents_and_queues_as_they_move(
    floor: Floor,
) -> None:
    board = floor.dialer.agents
    board.login("alex", "PJSIP/1001", floor.campaign_id, 100.0)
    client, _ = await floor.user("sam")
    page = await (await client.get("/floor")).text()
    assert "Live floor" in page and 'href="/floor"' in page
    stream = await client.get("/floor/events")
    assert stream.headers["Content-Type"] == "text/event-stream"
    # The relay may still be carrying alex's login: then it comes as the first delta.
    kind, snap = await _next(stream)
    assert kind == "snapshot"
    if not snap["agents"]:
        kind, agent = await _until(stream, lambda p: p[0] == "agent")
        snap["agents"] = [agent]
    assert [(a["name"], a["state"], a["since"]) for a in snap["agents"]] == [
        ("alex", "free", 100.0)
    ]

    attempt = str(uuid.uuid4())
    await floor.bus.publish(
        CallDialing(attempt_id=attempt, phone_e164="+442079460101", campaign_id=floor.campaign_id)
    )
    kind, call = await _until(stream, lambda p: p[0] == "call")
    assert (call["id"], call["state"], call["number"], call["campaign_id"]) == (
        attempt,
        "ringing",
        "+442079460101",
        floor.campaign_id,
    )
    await floor.bus.publish(CallAnswered(attempt_id=attempt, answered_by="human"))  # type: ignore[arg-type]
    kind, call = await _until(stream, lambda p: p[0] == "call")
    assert call["state"] == "talking"
    board.claim(floor.campaign_id, attempt, 130.0)
    kind, agent = await _until(stream, lambda p: p[0] == "agent")
    assert (agent["name"], agent["state"], agent["since"]) == ("alex", "talking", 130.0)
    await floor.bus.publish(CallEnded(attempt_id=attempt, outcome=CallOutcome.HUMAN, cause=16))
    kind, call = await _until(stream, lambda p: p[0] == "call")
    assert (call["id"], call["state"], call["outcome"]) == (attempt, "ended", "human")

    # An inbound queue: one caller answered after 5 s (within the 20 s service level), one
    # who hung up waiting, one still waiting.
    for queued in ("c1", "c2", "c3"):
        await floor.bus.publish(InboundQueued(queue="support", call_id=queued, caller="+1"))
    await floor.bus.publish(
        InboundAnswered(queue="support", call_id="c1", agent="alex", waited_s=5.0)
    )
    await floor.bus.publish(InboundAbandoned(queue="support", call_id="c2", waited_s=40.0))
    kind, queue = await _until(stream, lambda p: p[0] == "queue" and p[1]["abandoned"] == 1)
    assert (queue["waiting"], queue["answered"], queue["service_level"]) == (1, 1, 0.5)
    assert queue["oldest"] is not None

    # A tab opened now starts from the same state, from memory.
    late = await client.get("/floor/events")
    kind, snap = await _next(late)
    assert snap["calls"] == [] and snap["queues"][0]["waiting"] == 1
    assert [(a["name"], a["state"]) for a in snap["agents"]] == [("alex", "talking")]
    assert [c["name"] for c in snap["campaigns"]] == ["spring"]
    late.close()
    stream.close()


async def test_open_floor_tabs_cost_no_database_query(floor: Floor) -> None:
    """The same events with 1 and with 5 tabs open: no query either way."""
    client, _ = await floor.user("sam")
    board = floor.dialer.agents
    queries: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        queries.append(statement)

    per_tabs = []
    for tabs in (1, 5):
        streams = [await client.get("/floor/events") for _ in range(tabs)]
        for stream in streams:
            snap = await _snapshot_with_campaign(stream)
            if not snap["campaigns"]:  # the hub's first read of the campaigns is under way
                await _until(stream, lambda p: p[0] == "campaign")
        event.listen(floor.db.engine.sync_engine, "before_cursor_execute", count)
        queries.clear()
        name = f"agent{tabs}"
        board.login(name, "PJSIP/1002", floor.campaign_id, 1.0)
        attempt = str(uuid.uuid4())
        await floor.bus.publish(
            CallDialing(
                attempt_id=attempt, phone_e164="+442079460102", campaign_id=floor.campaign_id
            )
        )
        await floor.bus.publish(CallEnded(attempt_id=attempt, outcome=CallOutcome.BUSY, cause=17))
        board.logout(name)
        for stream in streams:
            await _until(stream, lambda p: p[0] == "agent" and p[1]["state"] == "logged_out")
            stream.close()
        event.remove(floor.db.engine.sync_engine, "before_cursor_execute", count)
        per_tabs.append(len(queries))
    assert per_tabs == [0, 0], queries


async def test_a_link_going_down_shows_within_five_seconds(floor: Floor) -> None:
    client, _ = await floor.user("sam")
    stream = await client.get("/floor/events")
    await _next(stream)
    floor.ami[0] = ComponentHealth("down", "AMI connection refused")
    _kind, health = await _until(stream, lambda p: p[0] == "health", timeout_s=5.0)
    assert health["components"]["ami"] == {"status": "down", "detail": "AMI connection refused"}
    floor.ami[0] = ComponentHealth("ok")
    _kind, health = await _until(stream, lambda p: p[0] == "health", timeout_s=5.0)
    assert health["components"]["ami"]["status"] == "ok"
    stream.close()


async def test_a_supervisor_pauses_a_campaign_and_an_agent_from_the_floor(
    floor: Floor,
) -> None:
    board = floor.dialer.agents
    board.login("alex", "PJSIP/1001", floor.campaign_id, 1.0)
    agent, agent_csrf = await floor.user("alex")
    assert (await agent.get("/floor")).status == 403  # supervisors only
    refused = await agent.post(
        "/floor/pause-agent", data={"csrf_token": agent_csrf, "agent": "alex"}
    )
    assert refused.status == 403
    client, csrf = await floor.user("sam")
    stream = await client.get("/floor/events")
    page = await (
        await client.post("/floor/pause-campaign", data={"csrf_token": csrf, "campaign": "spring"})
    ).text()
    assert "Campaign spring paused." in page
    _kind, campaign = await _until(
        stream, lambda p: p[0] == "campaign" and p[1]["status"] == "paused"
    )
    assert campaign["name"] == "spring"
    async with floor.db.session() as session:
        stored = await session.get(Campaign, floor.campaign_id)
        assert stored is not None and stored.status is CampaignStatus.PAUSED
    page = await (
        await client.post("/floor/pause-agent", data={"csrf_token": csrf, "agent": "alex"})
    ).text()
    assert "Agent alex paused." in page
    assert board.agents["alex"].state is AgentState.PAUSED
    _kind, paused = await _until(stream, lambda p: p[0] == "agent" and p[1]["state"] == "paused")
    assert paused["pause_code"] == "supervisor"  # the floor says why: "Paused · by a supervisor"
    # The agent's own reason replaces it, and the floor follows; Ready clears it.
    board.pause("alex", 2.0, "phone_lost")
    _kind, lost = await _until(
        stream, lambda p: p[0] == "agent" and p[1]["pause_code"] == "phone_lost"
    )
    assert lost["state"] == "paused"
    board.ready("alex", 3.0)
    _kind, ready = await _until(stream, lambda p: p[0] == "agent" and p[1]["state"] == "free")
    assert ready["pause_code"] is None
    page = await (
        await client.post("/floor/pause-agent", data={"csrf_token": csrf, "agent": "nobody"})
    ).text()
    assert "agent nobody is not signed in to a campaign" in page
    stream.close()


async def test_another_daemons_calls_show_on_this_floor(floor: Floor) -> None:
    """Several daemons on one PostgreSQL: their calls reach this bus as PeerEvents (the
    cluster relay) and the floor shows them as its own; this daemon's services never do."""
    client, _ = await floor.user("sam")
    stream = await client.get("/floor/events")
    kind, _snap = await _next(stream)
    assert kind == "snapshot"
    attempt = str(uuid.uuid4())
    dialing = CallDialing(attempt_id=attempt, phone_e164="+442079460199",
                          campaign_id=floor.campaign_id)
    node, items = decode(encode("pbx-2", [dialing])[0])
    await floor.bus.publish(PeerEvent(node=node, kind=items[0][0], data=items[0][1]))
    kind, call = await _until(stream, lambda p: p[0] == "call")
    assert (call["id"], call["state"], call["number"]) == (attempt, "ringing", "+442079460199")
    stream.close()
