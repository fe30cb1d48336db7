"""The route table, crawled: nothing is reachable without a session, no state changes without
the CSRF token, no admin route for an agent, and no route can be added without a rule."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contactd.config import Settings
from contactd.db.session import Database
from contactd.enums import Role
from contactd.health import HealthRegistry
from contactd.web.access import PUBLIC, RANK, check_route_table, declared_access, requires
from contactd.web.app import create_app
from tests.integration.web.conftest import Signed, sign_in

SAMPLE = {"username": "alex", "path": "panel.css", "form": "callback", "contact_id": "1",
          "organisation_id": "1", "task_id": "1", "campaign_id": "1", "fmt": "csv",
          "document_id": "1", "product_id": "1", "theme": "dark", "language": "ny"}


def routes(app: web.Application) -> list[tuple[str, str, object]]:
    """(method, concrete path, access) for every route; placeholders get sample values."""
    found = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: SAMPLE[m.group(1)],
                      route.resource.canonical)
        found.append((route.method, path, declared_access(route.handler)))
    return found


def test_the_table_is_not_empty_and_every_route_declares_access(app: web.Application) -> None:
    table = routes(app)
    assert {("GET", "/"), ("GET", "/users"), ("GET", "/api/v1/me"), ("POST", "/users/alex")} <= {
        (method, path) for method, path, _ in table
    }
    assert all(access is not None for _, _, access in table)


def test_an_undeclared_route_stops_the_app_being_built() -> None:
    app = web.Application()

    async def forgotten(request: web.Request) -> web.Response:
        return web.Response(text="open")

    app.router.add_get("/forgotten", forgotten)
    with pytest.raises(RuntimeError, match="GET /forgotten"):
        check_route_table(app)


Client = TestClient[web.Request, web.Application]


async def _signed_in_to(app: web.Application, username: str) -> Client:
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    response = await sign_in(client, username)
    assert response is not None and response.status == 303
    return client


async def test_an_undeclared_route_that_slips_in_is_refused(
    app: web.Application, db: Database, panel_settings: Settings
) -> None:
    async def forgotten(request: web.Request) -> web.Response:
        return web.Response(text="open")

    late = create_app(panel_settings, db, HealthRegistry())
    late.router.add_get("/forgotten", forgotten)  # after create_app's check
    admin = await _signed_in_to(late, "ada")
    try:
        response = await admin.get("/forgotten")
        assert response.status == 403
        assert "open" not in await response.text()
    finally:
        await admin.close()


async def test_without_a_session_pages_redirect_to_login_and_api_answers_401(
    app: web.Application, client: TestClient[web.Request, web.Application]
) -> None:
    checked = 0
    for method, path, access in routes(app):
        if access == PUBLIC:
            continue
        response = await client.request(method, path, allow_redirects=False)
        if path.startswith("/api/"):
            assert response.status == 401, (method, path)
            assert response.content_type == "application/problem+json"
            assert (await response.json())["code"] == "not_signed_in"
        else:
            assert response.status == 303, (method, path)
            assert response.headers["Location"].startswith("/login"), (method, path)
        checked += 1
    assert checked >= 8


async def test_every_state_change_without_csrf_token_is_refused(
    app: web.Application, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    admin = await signed_in("ada")
    changes = [(m, p) for m, p, a in routes(app) if m not in ("GET", "HEAD") and a != PUBLIC]
    assert len(changes) >= 5
    for method, path in changes:
        response = await admin.client.request(method, path, data={"role": "agent"},
                                              allow_redirects=False)
        assert response.status == 403, (method, path)
        wrong = await admin.client.request(method, path, data={"csrf_token": "x" * 43},
                                           allow_redirects=False)
        assert wrong.status == 403, (method, path)
    # Nothing was changed by the refused requests.
    me = await admin.client.get("/api/v1/me")
    assert (await me.json())["role"] == "admin"


async def test_an_agent_is_refused_on_every_admin_and_supervisor_route(
    app: web.Application, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    agent = await signed_in("alex")
    higher = [(m, p) for m, p, a in routes(app)
              if isinstance(a, Role) and RANK[a] > RANK[Role.AGENT]]
    assert ("GET", "/users") in higher
    for method, path in higher:
        response = await agent.client.request(
            method, path, data={"csrf_token": agent.csrf, "role": "admin"},
            allow_redirects=False,
        )
        assert response.status == 403, (method, path)
    me = await agent.client.get("/api/v1/me")
    assert (await me.json())["role"] == "agent"


async def test_a_supervisor_reaches_agent_routes_but_not_admin_ones(
    app: web.Application, db: Database, panel_settings: Settings
) -> None:
    @requires(Role.SUPERVISOR)
    async def team(request: web.Request) -> web.Response:
        return web.Response(text="team")

    probe = create_app(panel_settings, db, HealthRegistry())
    probe.router.add_get("/team-probe", team)
    supervisor = await _signed_in_to(probe, "sam")
    agent: TestClient[web.Request, web.Application] = TestClient(supervisor.server)
    try:
        assert (await supervisor.get("/team-probe")).status == 200
        assert (await supervisor.get("/")).status == 200
        assert (await supervisor.get("/users")).status == 403
        assert (await sign_in(agent, "alex")).status == 303  # type: ignore[union-attr]
        assert (await agent.get("/team-probe")).status == 403
    finally:
        await agent.close()
        await supervisor.close()


async def test_pages_send_a_strict_content_security_policy(
    client: TestClient[web.Request, web.Application]
) -> None:
    response = await client.get("/login")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
