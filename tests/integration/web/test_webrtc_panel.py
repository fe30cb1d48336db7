"""Browser phones through the panel, against the Asterisk sandbox: an admin adds an agent on
the Users page and the agent's WebRTC endpoint exists in Asterisk; the signed-in agent's
script fetches minted SIP credentials (CSRF-checked, never in the page) and they register
over WebSocket; an agent with no desk phone joins a campaign on the browser phone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contactd.ami.client import AmiClient
from contactd.auth.service import UserService
from contactd.calls.service import CallService
from contactd.config import Settings, WebRtcSettings
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.dialer.service import DialerService
from contactd.enums import CampaignMode, CampaignStatus, Role
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.web.app import create_app
from contactd.web.services import PanelServices
from contactd.webrtc import WebRtcPhones, active_agents
from tests.integration.web.conftest import CSRF_RE, PASSWORD, sign_in
from tests.peers.asterisk import AsteriskSandbox
from tests.peers.sipws import SipWsClient

pytestmark = pytest.mark.asterisk

Client = TestClient[web.Request, web.Application]


@dataclass
class Panel:
    server: TestServer
    phones: WebRtcPhones
    services: PanelServices
    clients: list[Client]

    async def signed_in(self, username: str, page: str) -> tuple[Client, str, str]:
        client: Client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        response = await sign_in(client, username)
        assert response is not None and response.status == 303
        text = await (await client.get(page)).text()
        found = CSRF_RE.search(text)
        assert found
        return client, found.group(1), text


@pytest_asyncio.fixture
async def panel(
    db: Database, panel_settings: Settings, asterisk: AsteriskSandbox
) -> AsyncIterator[Panel]:
    webrtc = WebRtcSettings(
        enabled=True,
        include_file=asterisk.etc_dir / "contactd-webrtc.conf",
        ws_url=asterisk.ws_url,
        sip_domain="127.0.0.1",
    )
    settings = panel_settings.model_copy(update={"webrtc": webrtc, "ami": asterisk.ami_settings()})
    users = UserService(db)
    await users.add("ada", PASSWORD, Role.ADMIN)
    await users.add("dora", PASSWORD, Role.AGENT, display_name="Dora")
    bus = EventBus()
    ami = AmiClient(settings.ami)
    calls = CallService(db, bus, ami, settings.asterisk)
    dialer = DialerService(db, bus, settings, calls)
    async with ami, WebRtcPhones(webrtc, ami) as phones:
        await ami.wait_connected(10)
        await phones.provision(await active_agents(db))  # what the daemon does at start
        services = PanelServices(bus=bus, dialer=dialer, calls=calls, webrtc=phones)
        server = TestServer(create_app(settings, db, HealthRegistry(), services))
        await server.start_server()
        found = Panel(server, phones, services, [])
        try:
            yield found
        finally:
            for client in found.clients:
                await client.close()
            await server.close()


async def test_an_admin_adds_an_agent_whose_browser_phone_registers(
    panel: Panel, asterisk: AsteriskSandbox, db: Database
) -> None:
    admin, csrf, _ = await panel.signed_in("ada", "/users")
    response = await admin.post(
        "/users",
        data={
            "csrf_token": csrf,
            "username": "cara",
            "password": PASSWORD,
            "role": "agent",
            "display_name": "Cara Agent",
        },
    )
    assert "User cara added." in await response.text()
    shown = await asterisk.acli("pjsip show endpoint webrtc-cara")
    assert "Unable to find" not in shown and "webrtc-cara" in shown

    agent, csrf, page = await panel.signed_in("cara", "/workspace")
    refused = await agent.post("/workspace/phone/credentials")  # no CSRF token: refused
    assert refused.status == 403
    reply = await agent.post("/workspace/phone/credentials", headers={"X-CSRF-Token": csrf})
    assert reply.status == 200 and reply.headers["Cache-Control"] == "no-store"
    creds = await reply.json()
    assert creds["username"] == "webrtc-cara" and creds["ws_url"] == asterisk.ws_url
    assert creds["password"] not in page
    assert creds["password"] not in await (await agent.get("/workspace")).text()
    async with SipWsClient(creds["ws_url"]) as sip:
        assert await sip.register(creds["username"], creds["password"], "127.0.0.1") == 200

    # No desk phone configured: the dialer's board rings the browser phone.
    async with db.transaction() as session:
        campaign = Campaign(
            name="webrtc", mode=CampaignMode.PROGRESSIVE, status=CampaignStatus.RUNNING
        )
        session.add(campaign)
        await session.flush()
        campaign_id = campaign.id
    joined = await agent.post(
        "/workspace/join", data={"csrf_token": csrf, "campaign_id": str(campaign_id)}
    )
    assert "You joined the campaign" in await joined.text()
    assert panel.services.dialer is not None
    assert panel.services.dialer.agents.agents["cara"].dial == "PJSIP/webrtc-cara"


async def test_an_agent_of_a_panel_without_browser_phones_is_told(
    db: Database, panel_settings: Settings
) -> None:
    await UserService(db).add("eve", PASSWORD, Role.AGENT)
    server = TestServer(create_app(panel_settings, db, HealthRegistry(), PanelServices()))
    await server.start_server()
    client: Client = TestClient(server)
    await client.start_server()
    try:
        await sign_in(client, "eve")
        text = await (await client.get("/account")).text()
        found = CSRF_RE.search(text)
        assert found
        reply = await client.post(
            "/workspace/phone/credentials", headers={"X-CSRF-Token": found.group(1)}
        )
        assert reply.status == 404
        assert "webrtc.enabled" in (await reply.json())["error"]
    finally:
        await client.close()
        await server.close()
