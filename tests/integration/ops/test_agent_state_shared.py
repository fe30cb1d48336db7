"""Issue 20, scale-out: agents' states live where every daemon sees them.

Two `contactd run` daemons on one PostgreSQL database. An agent says Ready on daemon A's
workspace; daemon B, started only afterwards, shows them Ready on its live floor (the
/floor/events stream the page draws). A pauses them with a reason: B's floor shows the reason.
A is killed with `kill -9`: once A's rows expire, the agent leaves B's floor.

No call is placed here (tests/integration/ops/test_scale_out.py dials), so both daemons log in
to one Asterisk sandbox: a second sandbox would only add its start-up time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from sqlalchemy import select

from contactd.auth.service import UserService
from contactd.config import load_settings
from contactd.db.bootstrap import open_database
from contactd.db.models.dialer import AgentStateRow, Campaign
from contactd.enums import CampaignMode, Role
from tests.integration.web.conftest import CSRF_RE, PASSWORD
from tests.peers.asterisk import AsteriskSandbox
from tests.peers.contactd import daemon_process, write_config

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

EXPIRY_S: Final = 3.0  # [general] agent_state_expiry_s of both daemons
WAIT_S: Final = 20.0
LOOK_S: Final = 0.2  # between two looks at the shared database (another process writes it)


def node_config(folder: Path, sandbox: AsteriskSandbox, node: str, url: str) -> Path:
    folder.mkdir()
    return write_config(
        folder,
        sandbox,
        general={"node": node, "agent_state_expiry_s": EXPIRY_S},
        database={"url": url},
        audiosocket={"enabled": False},
        dialer={"tab_closed_pause_s": 600},  # no workspace tab is open in this test
    )


@pytest.fixture
async def http() -> AsyncIterator[tuple[aiohttp.ClientSession, aiohttp.ClientSession]]:
    """The agent's browser (on A) and the supervisor's (on B): cookies of their own."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as agent,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as supervisor,
    ):
        yield agent, supervisor


async def sign_in(client: aiohttp.ClientSession, base: str, username: str) -> None:
    async with client.get(f"{base}/login") as form:
        token = CSRF_RE.search(await form.text())
    assert token
    async with client.post(
        f"{base}/login",
        allow_redirects=False,
        data={
            "username": username,
            "password": PASSWORD,
            "csrf_token": token.group(1),
            "next": "/",
        },
    ) as response:
        assert response.status == 303, await response.text()


async def workspace_post(client: aiohttp.ClientSession, base: str, path: str, **form: str) -> str:
    async with client.get(f"{base}/workspace") as page:
        token = CSRF_RE.search(await page.text())
    assert token
    async with client.post(f"{base}{path}", data={"csrf_token": token.group(1), **form}) as done:
        assert done.status == 200
        return await done.text()


class Floor:
    """B's /floor/events stream, read as the page reads it: a snapshot, then deltas."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.agents: dict[str, dict[str, Any]] = {}

    async def _next(self) -> tuple[str, dict[str, Any]]:
        kind, data = "", ""
        while True:
            line = (await self._response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and kind:
                return kind, json.loads(data)

    async def until(self, agent: str, **fields: Any) -> dict[str, Any] | None:
        """Until the floor shows `agent` with `fields` (None in `state`: not shown at all)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                shown = self.agents.get(agent)
                if fields.get("state") is None and shown is None and fields:
                    return None
                if shown is not None and all(shown.get(k) == v for k, v in fields.items()):
                    return shown
                kind, data = await self._next()
                if kind == "snapshot":
                    self.agents = {a["name"]: a for a in data["agents"]}
                elif kind == "agent":
                    if data["state"] == "logged_out":
                        self.agents.pop(data["name"], None)
                    else:
                        self.agents[data["name"]] = data


async def agent_row(config: Path, agent: str) -> AgentStateRow | None:
    async with (
        await open_database(load_settings(config, {}), upgrade=False) as db,
        db.session() as session,
    ):
        return await session.scalar(select(AgentStateRow).where(AgentStateRow.agent == agent))


async def until_stored(config: Path, agent: str, state: str) -> AgentStateRow:
    async with asyncio.timeout(WAIT_S):
        while True:
            row = await agent_row(config, agent)
            if row is not None and row.state == state:
                return row
            await asyncio.sleep(LOOK_S)  # polling the shared database (another process)


async def test_a_daemon_started_later_shows_the_other_daemons_agents_until_it_dies(
    asterisk: AsteriskSandbox,
    postgres_url: str,
    tmp_path: Path,
    http: tuple[aiohttp.ClientSession, aiohttp.ClientSession],
) -> None:
    config_a = node_config(tmp_path / "a", asterisk, "pbx-a", postgres_url)
    config_b = node_config(tmp_path / "b", asterisk, "pbx-b", postgres_url)
    async with await open_database(load_settings(config_a, {})) as db:
        users = UserService(db)
        await users.add("sue", PASSWORD, Role.SUPERVISOR)
        await users.add("alex", PASSWORD, Role.AGENT, extension="PJSIP/1001")
        async with db.transaction() as session:
            campaign = Campaign(name="spring", mode=CampaignMode.PROGRESSIVE)
            session.add(campaign)
            await session.flush()
            campaign_id = campaign.id
    agent, supervisor = http

    async with daemon_process(config_a, tmp_path / "a.log") as a:
        await a.wait_ready()
        base_a = f"http://127.0.0.1:{a.port}"
        await sign_in(agent, base_a, "alex")
        page = await workspace_post(agent, base_a, "/workspace/join", campaign_id=str(campaign_id))
        assert "You joined the campaign" in page, page
        await workspace_post(agent, base_a, "/workspace/ready")
        # A writes the change off the call path, a moment later: B starts once it is stored.
        row = await until_stored(config_a, "alex", "free")
        assert row.node == "pbx-a" and row.campaign_id == campaign_id

        async with daemon_process(config_b, tmp_path / "b.log") as b:
            await b.wait_ready()
            health = await b.health()
            assert health is not None
            assert health["components"]["agent-state"]["status"] == "ok", health
            base_b = f"http://127.0.0.1:{b.port}"
            await sign_in(supervisor, base_b, "sue")
            async with supervisor.get(f"{base_b}/floor/events") as stream:
                assert stream.status == 200
                floor = Floor(stream)
                # B started after alex said Ready, and alex has not changed since.
                shown = await floor.until("alex", state="free")
                assert shown is not None and shown["campaign_id"] == campaign_id
                # B's board does not hold alex (B does not pace for them): the floor says
                # whose does.
                async with supervisor.get(f"{base_b}/floor") as page:
                    token = CSRF_RE.search(await page.text())
                assert token
                async with supervisor.post(
                    f"{base_b}/floor/pause-agent",
                    data={"csrf_token": token.group(1), "agent": "alex"},
                ) as refused:
                    assert "signed in on daemon pbx-a" in await refused.text()

                await workspace_post(agent, base_a, "/workspace/pause", pause_code="lunch")
                await floor.until("alex", state="paused", pause_code="lunch")

                await a.kill9()
                await floor.until("alex", state=None)
            # A fresh look at B's floor (a page opened now) does not show alex either.
            async with supervisor.get(f"{base_b}/floor/events") as again:
                fresh = Floor(again)
                kind, data = await fresh._next()
                assert kind == "snapshot"
                assert [x["name"] for x in data["agents"]] == []
        logged = [
            line
            for line in b.log_lines()
            if line.get("msg") == "agent of a silent daemon taken off the floor"
        ]
        assert [(x["agent"], x["node"]) for x in logged] == [("alex", "pbx-a")], b.log()
