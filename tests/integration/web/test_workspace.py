"""The agent workspace's routes on a panel with the daemon's dialer (never linked to Asterisk
here: tests/integration/chromium/test_workspace.py runs the real call). The hand-off is
announced on the bus as the dialer's connector does it (AgentCallOffered)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event, func, select

from contactd.ami.client import AmiClient
from contactd.auth.service import UserService
from contactd.calls.service import CallService
from contactd.config import InboundQueueSettings, InboundSettings, Settings
from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import AuditEntry, DoNotCall
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.models.users import User
from contactd.db.session import Database
from contactd.dialer.agents import AgentState
from contactd.dialer.announce import AgentCallOffered
from contactd.dialer.inbound import InboundQueues
from contactd.dialer.service import DialerService
from contactd.enums import CallOutcome, CampaignMode, CampaignStatus, LeadStatus, Role
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.web.app import create_app
from contactd.web.live import LiveHub
from contactd.web.services import SERVICES, PanelServices
from contactd.web.views import workspace as workspace_view
from tests.integration.web.conftest import CSRF_RE, PASSWORD, sign_in

Client = TestClient[web.Request, web.Application]
PHONE = "PJSIP/1001"


@dataclass
class Desk:
    server: TestServer
    db: Database
    bus: EventBus
    dialer: DialerService
    campaign_id: int
    lead_id: int
    clients: list[Client]

    async def agent(self, username: str) -> tuple[Client, str]:
        client: Client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        response = await sign_in(client, username)
        assert response is not None and response.status == 303
        page = await (await client.get("/workspace")).text()
        found = CSRF_RE.search(page)
        assert found
        return client, found.group(1)

    async def call_for(self, username: str, lead_status: LeadStatus = LeadStatus.DONE) -> str:
        """A call of the campaign's lead that the dialer handed to `username`, now ended."""
        attempt_id = str(uuid.uuid4())
        async with self.db.transaction() as session:
            session.add(CallAttempt(id=attempt_id, campaign_id=self.campaign_id,
                                    lead_id=self.lead_id, phone_e164="+442079460101"))
            lead = await session.get(Lead, self.lead_id)
            assert lead is not None
            lead.status, lead.attempts, lead.last_outcome = lead_status, 1, CallOutcome.HUMAN
        self.dialer.agents.claim(self.campaign_id, attempt_id, datetime.now(UTC).timestamp())
        await self.bus.publish(AgentCallOffered(attempt_id=attempt_id, agent=username,
                                                campaign_id=self.campaign_id))
        return attempt_id


@pytest_asyncio.fixture
async def desk(db: Database, panel_settings: Settings) -> AsyncIterator[Desk]:
    users = UserService(db)
    await users.add("ada", PASSWORD, Role.ADMIN)
    await users.add("alex", PASSWORD, Role.AGENT, extension=PHONE)
    await users.add("bea", PASSWORD, Role.AGENT, extension="PJSIP/1002")
    await users.add("noph", PASSWORD, Role.AGENT)
    contacts = ContactService(db, default_region="GB")
    contact_id = await contacts.create_contact(ContactInput(
        first_name="Grace", last_name="Hopper", phones=["+44 20 7946 0101"]))
    async with db.transaction() as session:
        campaign = Campaign(name="spring", mode=CampaignMode.PROGRESSIVE,
                            status=CampaignStatus.RUNNING,
                            script="Hello {{ first_name }}!", retry_rules={"busy": 900})
        session.add(campaign)
        await session.flush()
        lead = Lead(campaign_id=campaign.id, contact_id=contact_id, phone_e164="+442079460101")
        session.add(lead)
        await session.flush()
        campaign_id, lead_id = campaign.id, lead.id
    bus = EventBus()
    calls = CallService(db, bus, AmiClient(panel_settings.ami), panel_settings.asterisk)
    dialer = DialerService(db, bus, panel_settings, calls)
    app = create_app(panel_settings, db, HealthRegistry(),
                     PanelServices(bus=bus, dialer=dialer, calls=calls, contacts=contacts))
    server = TestServer(app)
    await server.start_server()
    found = Desk(server, db, bus, dialer, campaign_id, lead_id, [])
    try:
        yield found
    finally:
        for client in found.clients:
            await client.close()
        await server.close()


async def _post(client: Client, path: str, csrf: str, **form: str) -> str:
    """A form post; the page it comes back to (following the 303)."""
    response = await client.post(path, data={"csrf_token": csrf, **form})
    assert response.status == 200, await response.text()
    return await response.text()


async def _join(desk: Desk, username: str) -> tuple[Client, str]:
    client, csrf = await desk.agent(username)
    page = await _post(client, "/workspace/join", csrf, campaign_id=str(desk.campaign_id))
    assert "You joined the campaign" in page
    return client, csrf


async def test_an_agent_joins_pauses_with_a_reason_and_says_ready(desk: Desk) -> None:
    client, csrf = await _join(desk, "alex")
    board = desk.dialer.agents
    assert (board.agents["alex"].dial, board.agents["alex"].state) == (PHONE, AgentState.PAUSED)
    refused = await _post(client, "/workspace/pause", csrf, pause_code="nap")
    assert "pause reason &#39;nap&#39; is not one of break" in refused
    page = await _post(client, "/workspace/pause", csrf, pause_code="training")
    assert re.search(r'id="agent-state"[^>]*>Paused · Training', page)
    page = await _post(client, "/workspace/ready", csrf)
    assert board.agents["alex"].state is AgentState.FREE
    assert re.search(r'id="agent-state"[^>]*>Ready<', page)
    async with desk.db.session() as session:
        audit = list(await session.execute(
            select(AuditEntry.action, AuditEntry.details).order_by(AuditEntry.id)))
    actions = [(a, d["after"].get("pause_code")) for a, d in audit if a.startswith("agent.")]
    assert actions == [("agent.join", None), ("agent.pause", "training"), ("agent.ready", None)]


async def test_a_campaign_with_a_team_takes_only_that_teams_agents(desk: Desk) -> None:
    async with desk.db.transaction() as session:
        campaign = await session.get(Campaign, desk.campaign_id)
        assert campaign is not None
        campaign.team = "north"
        user = (await session.scalars(select(User).where(User.username == "bea"))).one()
        user.team = "north"
    client, csrf = await desk.agent("alex")  # no team
    page = await (await client.get("/workspace")).text()
    assert f'value="{desk.campaign_id}"' not in page  # not offered
    refused = await _post(client, "/workspace/join", csrf, campaign_id=str(desk.campaign_id))
    assert "campaign &#39;spring&#39; takes agents of team &#39;north&#39;" in refused
    assert "alex" not in desk.dialer.agents.agents
    await _join(desk, "bea")
    assert desk.dialer.agents.agents["bea"].campaign_id == desk.campaign_id


async def test_an_agent_without_a_phone_cannot_join(desk: Desk) -> None:
    client, csrf = await desk.agent("noph")
    page = await _post(client, "/workspace/join", csrf, campaign_id=str(desk.campaign_id))
    assert "your account has no phone (extension)" in page
    assert "noph" not in desk.dialer.agents.agents


async def _next_event(stream: ClientResponse) -> tuple[str, dict[str, Any]]:
    kind = ""
    async with asyncio.timeout(10):
        while True:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                return kind, json.loads(line[6:])


async def test_the_card_is_pushed_to_the_agents_tab_and_a_callback_is_scheduled(
    desk: Desk,
) -> None:
    client, csrf = await _join(desk, "alex")
    await _post(client, "/workspace/ready", csrf)
    stream = await client.get("/workspace/events")
    assert stream.headers["Content-Type"] == "text/event-stream"
    attempt_id = await desk.call_for("alex")
    kind, push = await _next_event(stream)
    card = push["card"]
    assert (kind, card["attempt_id"], card["name"]) == ("offer", attempt_id, "Grace Hopper")
    assert card["script"] == "Hello Grace!" and "callback" in card["dispositions"]
    # A tab opened now (a reload) shows the same card, from memory, on the page and first
    # thing on its stream (the call may come between the page's render and its stream).
    assert "Grace Hopper" in await (await client.get("/workspace")).text()
    late = await client.get("/workspace/events")
    assert await _next_event(late) == ("offer", push)
    late.close()

    # Another agent cannot say what alex's call came to.
    other, other_csrf = await _join(desk, "bea")
    refused = await _post(other, "/workspace/disposition", other_csrf, attempt_id=attempt_id,
                          disposition="sale")
    assert "was not given to you" in refused
    # 09:30 in the agent's browser at UTC-5 (getTimezoneOffset() = 300) is 14:30 UTC.
    page = await _post(client, "/workspace/disposition", csrf, attempt_id=attempt_id,
                       disposition="callback", callback_at="2030-05-06T09:30",
                       tz_offset="300")
    assert "Disposition saved" in page and "Grace Hopper" not in page
    kind, push = await _next_event(stream)
    assert (kind, push["attempt_id"]) == ("disposed", attempt_id)
    stream.close()
    async with desk.db.session() as session:
        lead = await session.get(Lead, desk.lead_id)
        attempt = await session.get(CallAttempt, attempt_id)
    assert lead is not None and attempt is not None
    assert (lead.status, lead.callback_at) == (
        LeadStatus.CALLBACK, datetime(2030, 5, 6, 14, 30, tzinfo=UTC))
    assert (attempt.disposition, lead.callback_user_id) == ("callback", attempt.agent_id)


async def test_do_not_call_lists_the_number_and_a_live_call_cannot_be_disposed(
    desk: Desk,
) -> None:
    client, csrf = await _join(desk, "alex")
    await _post(client, "/workspace/ready", csrf)
    live = await desk.call_for("alex", lead_status=LeadStatus.DIALING)
    page = await _post(client, "/workspace/disposition", csrf, attempt_id=live,
                       disposition="do_not_call")
    assert "the call has not ended yet" in page
    async with desk.db.transaction() as session:
        lead = await session.get(Lead, desk.lead_id)
        assert lead is not None
        lead.status = LeadStatus.DONE  # the call ended and the dialer settled it
    await _post(client, "/workspace/disposition", csrf, attempt_id=live,
                disposition="do_not_call")
    async with desk.db.session() as session:
        lead = await session.get(Lead, desk.lead_id)
        listed = await session.scalar(select(func.count()).select_from(DoNotCall).where(
            DoNotCall.e164 == "+442079460101", DoNotCall.campaign_id.is_(None)))
    assert lead is not None and (lead.status, listed) == (LeadStatus.DNC, 1)


async def test_open_tabs_cost_no_database_query_per_event(desk: Desk) -> None:
    """The card is read once per call, however many tabs the agent has open."""
    client, csrf = await _join(desk, "alex")
    await _post(client, "/workspace/ready", csrf)
    queries: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        queries.append(statement)

    event.listen(desk.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        per_call = []
        for tabs in (1, 3):
            streams = [await client.get("/workspace/events") for _ in range(tabs)]
            queries.clear()
            attempt_id = await desk.call_for("alex")
            for stream in streams:
                kind, push = await _next_event(stream)
                if push["card"]["attempt_id"] != attempt_id:  # the last call's, as it opened
                    kind, push = await _next_event(stream)
                assert (kind, push["card"]["attempt_id"]) == ("offer", attempt_id)
                stream.close()
            reads = [q for q in queries if q.lstrip().upper().startswith("SELECT")]
            per_call.append(len(reads))
            desk.dialer.agents.call_ended(attempt_id, datetime.now(UTC).timestamp())
            desk.dialer.agents.ready("alex", datetime.now(UTC).timestamp())
    finally:
        event.remove(desk.db.engine.sync_engine, "before_cursor_execute", count)
    assert per_call[0] == per_call[1] > 0, per_call


async def _until(hub: LiveHub, done: Callable[[], bool]) -> None:
    """Waits for the hub's tabs to change until `done()` holds."""
    async with asyncio.timeout(10):
        while not done():
            hub.changed.clear()
            await hub.changed.wait()


async def test_a_closed_workspace_pauses_a_ready_agent_after_the_grace(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace_view, "KEEPALIVE_S", 0.05)  # a gone tab is noticed at once
    hub = desk.server.app[workspace_view.LIVE]
    hub.tab_grace_s = 0.1
    client, csrf = await _join(desk, "alex")
    await _post(client, "/workspace/ready", csrf)
    # A reload: the new tab opens before the old one is gone; the agent stays Ready.
    first = await client.get("/workspace/events")
    second = await client.get("/workspace/events")
    await _until(hub, lambda: hub.tabs("alex") == 2)
    first.close()
    await _until(hub, lambda: hub.tabs("alex") == 1)
    assert hub.away("alex") is None
    assert desk.dialer.agents.agents["alex"].state is AgentState.FREE
    second.close()
    await _until(hub, lambda: hub.away("alex") is not None)
    grace = hub.away("alex")
    assert grace is not None
    await asyncio.wait_for(grace, 10)
    assert desk.dialer.agents.agents["alex"].state is AgentState.PAUSED
    page = await (await client.get("/workspace")).text()
    assert re.search(r'id="agent-state"[^>]*>Paused · The workspace was closed', page)


async def test_an_agent_signs_in_to_inbound_queues_only_or_is_told_what_is_missing(
    desk: Desk,
) -> None:
    services = desk.server.app[SERVICES]
    services.inbound = InboundQueues(
        InboundSettings(queues={"support": InboundQueueSettings(),
                                "vip": InboundQueueSettings(agents=("bea",))}),
        desk.dialer.agents, None, None, desk.bus)
    client, csrf = await desk.agent("alex")
    page = await (await client.get("/workspace")).text()
    assert 'value="support"' in page and 'value="vip"' not in page  # vip is bea's only
    refused = await _post(client, "/workspace/join", csrf, campaign_id="")
    assert "choose a campaign or an inbound queue" in refused
    refused = await _post(client, "/workspace/join", csrf, campaign_id="", queue="vip")
    assert "no inbound queue &#39;vip&#39; you may sign in to" in refused
    page = await _post(client, "/workspace/join", csrf, campaign_id="", queue="support")
    assert "Inbound calls" in page and "Inbound queues: support" in page
    await _post(client, "/workspace/ready", csrf)
    alex = desk.dialer.agents.agents["alex"]
    assert (alex.campaign_id, alex.queues, alex.state) == (
        None, frozenset({"support"}), AgentState.FREE)
    assert desk.dialer.agents.view(desk.campaign_id, 0.0).free == 0  # not the campaign's
