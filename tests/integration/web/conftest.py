"""A panel on a fresh database with one user per role; `signed_in` gives a client with a
session (cookie jar) and that session's CSRF token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contactd.auth.service import UserService
from contactd.config import Settings, load_settings
from contactd.db.session import Database
from contactd.enums import Role
from contactd.health import HealthRegistry
from contactd.web.app import create_app

PASSWORD = "correct horse battery"
USERS = {"ada": Role.ADMIN, "sam": Role.SUPERVISOR, "alex": Role.AGENT}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Signed:
    client: TestClient[web.Request, web.Application]
    csrf: str


async def sign_in(client: TestClient[web.Request, web.Application], username: str,
                  password: str = PASSWORD, next_: str = "/") -> web.StreamResponse | None:
    form = await client.get("/login")
    token = CSRF_RE.search(await form.text())
    assert token, "the login page carries a CSRF token"
    return await client.post(  # type: ignore[return-value]
        "/login",
        data={"username": username, "password": password, "csrf_token": token.group(1),
              "next": next_},
        allow_redirects=False,
    )


async def csrf_of(client: TestClient[web.Request, web.Application]) -> str:
    found = CSRF_RE.search(await (await client.get("/account")).text())
    assert found, "a signed-in page carries the session's CSRF token"
    return found.group(1)


@pytest.fixture
def panel_settings(tmp_path: Path) -> Settings:
    return load_settings(None, {"CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
                                "CONTACTD_WEB__LOGIN_MAX_FAILURES": "3"})


@pytest.fixture
async def app(db: Database, panel_settings: Settings) -> web.Application:
    users = UserService(db)
    for name, role in USERS.items():
        await users.add(name, PASSWORD, role)
    return create_app(panel_settings, db, HealthRegistry())


@pytest.fixture
async def server(app: web.Application) -> AsyncIterator[TestServer]:
    """One server for the test; every client below has its own cookie jar (its own browser)."""
    test_server = TestServer(app)
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(server) as test_client:
        yield test_client


@pytest.fixture
async def signed_in(
    server: TestServer,
) -> AsyncIterator[Callable[[str], Awaitable[Signed]]]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(username: str) -> Signed:
        test_client: TestClient[web.Request, web.Application] = TestClient(server)
        await test_client.start_server()
        clients.append(test_client)
        response = await sign_in(test_client, username)
        assert response is not None and response.status == 303
        return Signed(test_client, await csrf_of(test_client))

    try:
        yield make
    finally:
        for test_client in clients:
            await test_client.close()
