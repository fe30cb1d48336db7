"""Signing in and out: session rotation, timeouts, throttling, safe redirects, API tokens,
and the audit trail of user changes made in the panel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contactd.auth.sessions import token_hash
from contactd.db.base import utcnow
from contactd.db.models import ApiToken, AuditEntry, User, WebSession
from contactd.db.session import Database
from contactd.demo.data import create_demo_data
from contactd.health import HealthRegistry
from contactd.web.access import SESSION_COOKIE
from contactd.web.app import create_app
from contactd.web.keys import SESSIONS, SETTINGS
from tests.integration.web.conftest import PASSWORD, Signed, sign_in

Client = TestClient[web.Request, web.Application]


def session_cookie(client: Client) -> str | None:
    for cookie in client.session.cookie_jar:
        if cookie.key == SESSION_COOKIE:
            return cookie.value
    return None


async def test_sign_in_sets_a_strict_httponly_cookie_and_lands_on_next(client: Client) -> None:
    response = await sign_in(client, "alex", next_="/account")
    assert response is not None and response.status == 303
    assert response.headers["Location"] == "/account"
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "Secure" not in set_cookie  # plain HTTP here, cookie_secure off
    page = await client.get("/")
    assert page.status == 200 and "Alex" in (await page.text()).title()


async def test_sign_in_never_redirects_off_site(client: Client) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        client.session.cookie_jar.clear()
        response = await sign_in(client, "alex", next_=target)
        assert response is not None and response.headers["Location"] == "/", target


async def test_wrong_password_is_refused_and_a_forged_form_too(client: Client) -> None:
    response = await sign_in(client, "alex", password="wrong password!")
    assert response is not None and response.status == 401
    assert "Wrong user name or password" in await response.text()  # type: ignore[attr-defined]
    forged = await client.post("/login", data={"username": "alex", "password": PASSWORD,
                                               "csrf_token": "forged"}, allow_redirects=False)
    assert forged.status == 403
    assert session_cookie(client) is None


async def test_signing_in_rotates_the_session_id(
    app: web.Application, client: Client, db: Database
) -> None:
    planted = "attacker-chosen-session-id"
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: planted},
                                             response_url=client.make_url("/"))
    await sign_in(client, "alex")
    first = session_cookie(client)
    assert first and first != planted
    await sign_in(client, "alex")  # again, from a browser that holds a session
    second = session_cookie(client)
    assert second and second != first
    assert await app[SESSIONS].resolve(first) is None
    async with db.session() as session:
        hashes = set(await session.scalars(select(WebSession.token_hash)))
    assert hashes == {token_hash(second)}  # only a hash is stored


async def test_sign_out_ends_the_session(signed_in: Callable[[str], Awaitable[Signed]]) -> None:
    agent = await signed_in("alex")
    token = session_cookie(agent.client)
    out = await agent.client.post("/logout", data={"csrf_token": agent.csrf},
                                  allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/login"
    again = await agent.client.get("/", allow_redirects=False)
    assert again.status == 303
    assert token and await agent.client.app[SESSIONS].resolve(token) is None  # type: ignore[index]


async def test_idle_and_absolute_timeouts(app: web.Application, client: Client) -> None:
    await sign_in(client, "alex")
    token = session_cookie(client)
    assert token
    store = app[SESSIONS]
    now = utcnow()
    assert await store.resolve(token, now + store.idle - timedelta(seconds=5)) is not None
    # Kept alive by requests every few minutes, it still ends at the absolute limit.
    step = store.idle - timedelta(minutes=1)
    at = now
    while at + step < now + store.absolute:
        at += step
        assert await store.resolve(token, at) is not None
    assert await store.resolve(token, now + store.absolute + timedelta(seconds=1)) is None
    await sign_in(client, "alex")
    idle_token = session_cookie(client)
    assert idle_token
    assert await store.resolve(idle_token, utcnow() + store.idle + timedelta(seconds=1)) is None
    assert (await client.get("/", allow_redirects=False)).status == 303  # deleted when expired


async def test_repeated_failures_lock_the_account_even_for_the_right_password(
    client: Client,
) -> None:
    for _ in range(3):  # CONTACTD_WEB__LOGIN_MAX_FAILURES=3 in these tests
        response = await sign_in(client, "sam", password="not the password")
        assert response is not None and response.status == 401
    locked = await sign_in(client, "sam")
    assert locked is not None and locked.status == 429
    assert int(locked.headers["Retry-After"]) > 0
    # The same address is locked for other accounts too.
    other = await sign_in(client, "alex")
    assert other is not None and other.status == 429


async def test_personal_api_token_works_and_is_stored_hashed(
    signed_in: Callable[[str], Awaitable[Signed]], client: Client, db: Database
) -> None:
    agent = await signed_in("alex")
    page = await agent.client.post("/account/tokens",
                                   data={"csrf_token": agent.csrf, "name": "crm sync"})
    text = await page.text()
    start = text.index("cd_")
    token = text[start:text.index("<", start)]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200 and (await me.json())["username"] == "alex"
    bad = await client.get("/api/v1/me", headers={"Authorization": "Bearer cd_nope"})
    assert bad.status == 401
    async with db.session() as session:
        stored = await session.scalar(select(ApiToken))
        audit = await session.scalar(select(AuditEntry).where(AuditEntry.entity == "api_token"))
    assert stored is not None and stored.token_hash == token_hash(token)
    assert audit is not None and audit.details["after"]["name"] == "crm sync"


async def test_admin_changes_are_audited_and_disabling_ends_sessions(
    signed_in: Callable[[str], Awaitable[Signed]], db: Database
) -> None:
    agent = await signed_in("alex")
    admin = await signed_in("ada")
    added = await admin.client.post("/users", data={
        "csrf_token": admin.csrf, "username": "noor", "display_name": "Noor",
        "role": "agent", "password": "a long enough pw"})
    assert added.status == 200 and "noor" in await added.text()
    bad = await admin.client.post("/users", data={
        "csrf_token": admin.csrf, "username": "Bad Name", "role": "agent",
        "password": "a long enough pw"})
    assert bad.status == 422 and "user name" in await bad.text()
    changed = await admin.client.post("/users/alex", data={
        "csrf_token": admin.csrf, "role": "supervisor", "active": "0"})
    assert changed.status == 200
    assert (await agent.client.get("/", allow_redirects=False)).status == 303
    async with db.session() as session:
        rows = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        ada = await session.scalar(select(User.id).where(User.username == "ada"))
    actions = [(row.action, row.user_id) for row in rows]
    assert ("user.add", ada) in actions and ("user.update", ada) in actions
    update = next(row for row in rows if row.action == "user.update")
    assert update.details == {"before": {"role": "agent", "active": True},
                              "after": {"role": "supervisor", "active": False}}
    assert all("password_hash" not in str(row.details) for row in rows)


async def test_an_admin_cannot_lock_themselves_out(
    signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    admin = await signed_in("ada")
    response = await admin.client.post("/users/ada", data={"csrf_token": admin.csrf,
                                                           "active": "0"})
    assert response.status == 422
    assert (await admin.client.get("/users")).status == 200


async def test_the_demo_admin_login_works(db: Database, client: Client) -> None:
    await create_demo_data(db, "demo password 1", contacts=120)
    response = await sign_in(client, "admin", password="demo password 1")
    assert response is not None and response.status == 303
    assert (await client.get("/users")).status == 200


async def test_cookie_is_secure_when_configured_for_a_tls_proxy(
    db: Database, app: web.Application
) -> None:
    settings = app[SETTINGS].model_copy(
        update={"web": app[SETTINGS].web.model_copy(update={"cookie_secure": True})}
    )
    async with TestClient(TestServer(create_app(settings, db, HealthRegistry()))) as tls:
        form = await tls.get("/login")
        assert "Secure" in form.headers["Set-Cookie"]
        # The client keeps Secure cookies for https only, as a browser does: send it by hand,
        # as the browser behind the TLS proxy would.
        token = form.cookies["contactd_login_csrf"].value
        response = await tls.post(
            "/login", data={"username": "alex", "password": PASSWORD, "csrf_token": token},
            headers={"Cookie": f"contactd_login_csrf={token}"}, allow_redirects=False,
        )
        assert response.status == 303
        assert "Secure" in response.headers["Set-Cookie"]
