"""A panel with the daemon's record services behind it (contacts, tasks, messaging's durable
outbox, the event bus), one user per role, and an API token for each of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contactd.auth.audit import CLI
from contactd.auth.service import UserService
from contactd.auth.sessions import ApiTokens
from contactd.config import Settings
from contactd.crm.fts import create_fts
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.session import Database
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.messaging.service import MessagingService
from contactd.web.app import create_app
from contactd.web.services import PanelServices
from tests.integration.web.conftest import PASSWORD, USERS

Client = TestClient[web.Request, web.Application]


@dataclass
class LivePanel:
    app: web.Application
    client: Client
    tokens: dict[str, str]  # username -> API token
    user_ids: dict[str, int]

    def auth(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}


@pytest_asyncio.fixture(name="live_panel")
async def live_panel_fixture(db: Database, panel_settings: Settings) -> AsyncIterator[LivePanel]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)  # the shared fixture builds the tables, not the index
    users = UserService(db)
    tokens, ids = {}, {}
    for name, role in USERS.items():
        user = await users.add(name, PASSWORD, role)
        ids[name] = user.id
        tokens[name] = await ApiTokens(db).create(user.id, "tests", CLI)
    bus = EventBus()
    async with MessagingService(panel_settings, db, bus) as messaging:
        services = PanelServices(bus=bus, messaging=messaging,
                                 contacts=ContactService(db, default_region="GB"),
                                 tasks=TaskService(db, bus=bus))
        app = create_app(panel_settings, db, HealthRegistry(), services)
        async with TestClient(TestServer(app)) as client:
            yield LivePanel(app, client, tokens, ids)
