"""The browser harness reaches a contactd web server: the base the panel's tests build on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Page

from contactd.db.bootstrap import open_database
from contactd.health import ComponentHealth, HealthRegistry
from contactd.web.app import WebServer, create_app
from tests.peers.ports import free_port

pytestmark = [pytest.mark.chromium, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def web_url(tmp_path: Path) -> AsyncIterator[str]:
    from contactd.config import load_settings

    settings = load_settings(None, {"CONTACTD_GENERAL__DATA_DIR": str(tmp_path)})
    health = HealthRegistry()
    health.register("database", lambda: ComponentHealth("ok", "sqlite"))
    async with await open_database(settings) as db:  # migrated, as the daemon's is
        port = free_port()
        async with WebServer(create_app(settings, db, health), "127.0.0.1", port):
            yield f"http://127.0.0.1:{port}"


async def test_chromium_loads_the_health_page(page: Page, web_url: str) -> None:
    response = await page.goto(f"{web_url}/healthz")
    assert response is not None and response.status == 200
    body = json.loads(await page.inner_text("body"))
    assert body["status"] == "ok"
    assert body["components"]["database"]["status"] == "ok"
