"""Inbound queues blended with a campaign, on the real Asterisk sandbox.

A blended agent (workspace: campaign + queue "support", phone a simulated agent on a Local
channel) says Ready; a caller routed to the queue (CONTACTD_ROUTE=inqueue, as the IVR's
transfer sets it) waits in contactd-inqueue, contactd hands them to the agent (AMI Setvar),
the card pops over SSE, and while the agent talks the campaign's view counts them out. A
second caller, with nobody free, hangs up while waiting: abandoned, with a missed-call task.
The first call ends by the agent hanging up: recorded answered, on the agent's name.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from panoramisk import Manager
from sqlalchemy import select

from contactd.ami.client import AmiClient
from contactd.auth.service import UserService
from contactd.calls.service import CallService
from contactd.config import InboundQueueSettings, InboundSettings, Settings, load_settings
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Interaction, Task
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard, AgentState
from contactd.dialer.floor_events import InboundAbandoned, InboundAnswered, InboundQueued
from contactd.dialer.inbound import InboundQueues
from contactd.dialer.service import DialerService
from contactd.enums import CampaignMode, CampaignStatus, Role, TaskSource
from contactd.events import DomainEvent, EventBus
from contactd.health import HealthRegistry
from contactd.web.app import create_app
from contactd.web.services import PanelServices
from tests.integration.web.conftest import CSRF_RE, PASSWORD, sign_in
from tests.peers.asterisk import AsteriskSandbox

pytestmark = pytest.mark.asterisk

Client = TestClient[web.Request, web.Application]
AGENT_PHONE = "Local/7008@contactd-test-world"  # answers at once, hangs up ~9 s later
GRACE = "+442079460101"


@dataclass
class Rig:
    db: Database
    board: AgentBoard
    campaign_id: int
    client: Client
    csrf: str
    events: asyncio.Queue[DomainEvent]


async def _next(events: asyncio.Queue[DomainEvent], kind: type[DomainEvent]) -> Any:
    async with asyncio.timeout(20):
        while True:
            event = await events.get()
            if isinstance(event, kind):
                return event


async def _sse(stream: ClientResponse) -> tuple[str, dict[str, Any]]:
    kind = ""
    async with asyncio.timeout(20):
        while True:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                return kind, json.loads(line[6:])


def _caller(number: str, hold_s: int) -> dict[str, Any]:
    """A caller the IVR transferred to queue "support": Local/s@contactd-route's ;2 half
    runs the route, the ;1 half (the caller's phone) waits `hold_s` once answered."""
    return {
        "Action": "Originate",
        "Channel": "Local/s@contactd-route",
        "Application": "Wait",
        "Data": str(hold_s),
        "CallerID": f'"Caller" <{number}>',
        "Async": "true",
        "Timeout": "10000",
        "Variable": ["CONTACTD_ROUTE=inqueue", "CONTACTD_QUEUE=support"],
    }


@pytest.fixture
async def rig(db: Database, asterisk: AsteriskSandbox, tmp_path: Any) -> AsyncIterator[Rig]:
    settings: Settings = load_settings(None, {"CONTACTD_GENERAL__DATA_DIR": str(tmp_path)})
    settings = settings.model_copy(
        update={
            "ami": asterisk.ami_settings(),
            "inbound": InboundSettings(queues={"support": InboundQueueSettings()}),
        }
    )
    await UserService(db).add("alex", PASSWORD, Role.AGENT, extension=AGENT_PHONE)
    contacts = ContactService(db, default_region="GB")
    await contacts.create_contact(
        ContactInput(first_name="Grace", last_name="Hopper", phones=[GRACE])
    )
    async with db.transaction() as session:
        campaign = Campaign(
            name="spring", mode=CampaignMode.PREDICTIVE, status=CampaignStatus.PAUSED
        )
        session.add(campaign)
        await session.flush()
        campaign_id = campaign.id
    bus = EventBus()
    seen: asyncio.Queue[DomainEvent] = asyncio.Queue()
    for kind in (InboundQueued, InboundAnswered, InboundAbandoned):
        bus.subscribe(kind, seen.put_nowait)
    ami = AmiClient(settings.ami)
    calls = CallService(db, bus, ami, settings.asterisk)
    board = AgentBoard(auto_ready_s=None)
    dialer = DialerService(db, bus, settings, calls, agents=board)
    tasks = TaskService(db, bus=bus)
    router = Router(db, contacts, tasks, bus=bus)
    inbound = InboundQueues(settings.inbound, board, ami, router, bus)
    ami.events.on("UserEvent", inbound.on_user_event)
    app = create_app(
        settings,
        db,
        HealthRegistry(),
        PanelServices(
            bus=bus, dialer=dialer, calls=calls, contacts=contacts, tasks=tasks, inbound=inbound
        ),
    )
    server = TestServer(app)
    async with ami, calls, inbound:
        await ami.wait_connected(20)
        await server.start_server()
        client: Client = TestClient(server)
        await client.start_server()
        try:
            response = await sign_in(client, "alex")
            assert response is not None and response.status == 303
            page = await (await client.get("/workspace")).text()
            assert 'name="queue" value="support"' in page  # the queue is offered beside
            found = CSRF_RE.search(page)
            assert found
            yield Rig(db, board, campaign_id, client, found.group(1), seen)
        finally:
            await client.close()
            await server.close()
            await calls.drain()


async def test_a_blended_agent_takes_a_queued_caller_and_a_waiting_caller_abandons(
    rig: Rig, ami: Manager
) -> None:
    joined = await rig.client.post(
        "/workspace/join",
        data={"csrf_token": rig.csrf, "campaign_id": str(rig.campaign_id), "queue": "support"},
    )
    assert "Inbound queues: support" in await joined.text()
    await rig.client.post("/workspace/ready", data={"csrf_token": rig.csrf})
    stream = await rig.client.get("/workspace/events")

    await ami.send_action(_caller(GRACE, 30))
    queued = await _next(rig.events, InboundQueued)
    assert queued.queue == "support" and queued.caller == GRACE
    answered = await _next(rig.events, InboundAnswered)
    assert (answered.agent, answered.call_id) == ("alex", queued.call_id)
    kind, push = await _sse(stream)
    card = push["card"]
    assert (kind, card["name"], card["queue"], card["attempt_id"]) == (
        "offer",
        "Grace Hopper",
        "support",
        queued.call_id,
    )

    # Busy with the inbound caller: the campaign's pacer sees no free agent and nobody
    # talking on its behalf, and the dialer's claim finds nobody.
    alex = rig.board.agents["alex"]
    assert (alex.state, alex.inbound) == (AgentState.TALKING, True)
    view = rig.board.view(rig.campaign_id, 0.0)
    assert (view.free, view.talking) == (0, ())
    assert rig.board.claim(rig.campaign_id, "predictive-call", 0.0) is None

    # A second caller finds nobody free and hangs up while waiting.
    await ami.send_action(_caller("+442079460199", 2))
    second = await _next(rig.events, InboundQueued)
    abandoned = await _next(rig.events, InboundAbandoned)
    assert abandoned.call_id == second.call_id and abandoned.waited_s < 10

    # The agent hangs up: the first call is recorded answered, on the agent's name.
    kind, push = await _sse(stream)
    assert (kind, push["attempt_id"]) == ("ended", queued.call_id)
    stream.close()
    assert rig.board.agents["alex"].state is AgentState.WRAPPING
    async with rig.db.session() as session:
        rows = {row.data["call_id"]: row for row in await session.scalars(select(Interaction))}
        missed = list(
            await session.scalars(select(Task).where(Task.source == TaskSource.MISSED_CALL))
        )
    first, lost = rows[queued.call_id], rows[second.call_id]
    assert (first.outcome, first.user_id is not None, first.data["agent"]) == (
        "answered",
        True,
        "alex",
    )
    assert first.data["within_service_level"] is True
    assert lost.outcome == "abandoned" and lost.remote_address == "+442079460199"
    assert [t.interaction_id for t in missed] == [lost.id]
