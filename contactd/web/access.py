"""One mechanism for who may reach what: every route declares a role (or `public`), and one
middleware checks it, plus CSRF on every state change. `check_route_table` refuses to build
an app with an undeclared route, and the middleware refuses one that slipped through anyway.

Teams (`[web] team_visibility`): an agent whose user has a team sees only contacts owned by
their team's members, and the tasks and documents of those contacts (a task also when it is
their team's or assigned to one of them). The same middleware checks every record a request
names - in its path (`contact_id`, `task_id`, `document_id`), in a form or a JSON body
(`contact_id`, the bulk forms' `id`) - and answers 404 as for a record that does not exist;
lists ask `visible_owners` for the owners to keep.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Literal, TypeVar

from aiohttp import web
from aiohttp.web_urldispatcher import MatchInfoError
from sqlalchemy import select
from yarl import URL

from contactd.auth.errors import CsrfRejected, Forbidden, NotSignedIn
from contactd.auth.sessions import Principal
from contactd.db.models.crm import Contact, Document, Task
from contactd.db.models.users import User
from contactd.enums import Role
from contactd.errors import NotFoundError
from contactd.web.keys import API_TOKENS, DATABASE, PRINCIPAL, SESSIONS, SETTINGS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
Access = Role | Literal["public"]

PUBLIC: Final = "public"
ATTRIBUTE: Final = "__contactd_access__"
SESSION_COOKIE: Final = "contactd_session"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
OWNERS: Final = web.RequestKey("visible_owners", frozenset)  # cached per request
NO_LIMIT: Final[frozenset[int]] = frozenset({-1})  # marker: this user sees every record

# A higher rank may do everything a lower one may.
RANK: Final = {Role.AGENT: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


def requires(role: Role) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        setattr(handler, ATTRIBUTE, role)
        return handler

    return mark


def public(handler: H) -> H:
    setattr(handler, ATTRIBUTE, PUBLIC)
    return handler


def declared_access(handler: object) -> Access | None:
    found = getattr(handler, ATTRIBUTE, None)
    if found == PUBLIC:
        return PUBLIC
    return found if isinstance(found, Role) else None


def check_route_table(app: web.Application) -> None:
    undeclared = [
        f"{route.method} {route.resource.canonical if route.resource else '?'}"
        for route in app.router.routes()
        if declared_access(route.handler) is None
    ]
    if undeclared:
        raise RuntimeError(f"routes without an access declaration: {', '.join(undeclared)}")


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


async def identify(request: web.Request) -> Principal | None:
    """The user behind a Bearer token (API) or the session cookie, if any."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return await request.app[API_TOKENS].resolve(auth[7:].strip())
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        return await request.app[SESSIONS].resolve(token)
    return None


async def _csrf_ok(request: web.Request, expected: str) -> bool:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        field = (await request.post()).get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    return given is not None and hmac.compare_digest(given, expected)


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if isinstance(request.match_info, MatchInfoError):
        return await handler(request)  # 404 / 405: nothing to protect
    access = declared_access(request.match_info.route.handler)
    principal = await identify(request)
    request[PRINCIPAL] = principal
    if access is None:
        log.error("route without an access declaration refused", extra={"path": request.path})
        raise Forbidden("this route declares no access rule")
    if access == PUBLIC:
        return await handler(request)
    if principal is None:
        if is_api(request):
            raise NotSignedIn("sign in or send an API token")
        raise web.HTTPSeeOther(login_url(request))
    if RANK[principal.user.role] < RANK[access]:
        raise Forbidden(f"this needs the {access.value} role")
    if (
        request.method not in SAFE_METHODS
        and principal.csrf_token is not None
        and not await _csrf_ok(request, principal.csrf_token)
    ):
        raise CsrfRejected("missing or wrong CSRF token; reload the page and try again")
    await check_visible(request)
    return await handler(request)


async def visible_owners(request: web.Request) -> frozenset[int] | None:
    """The users whose contacts the signed-in agent may see; None: every contact."""
    cached = request.get(OWNERS)
    if cached is not None:
        return None if cached is NO_LIMIT else cached
    principal = request.get(PRINCIPAL)
    owners: frozenset[int] = NO_LIMIT
    if (
        principal is not None
        and request.app[SETTINGS].web.team_visibility
        and principal.user.role is Role.AGENT
        and principal.user.team
    ):
        async with request.app[DATABASE].session() as session:
            owners = frozenset(
                await session.scalars(select(User.id).where(User.team == principal.user.team))
            )
    request[OWNERS] = owners
    return None if owners is NO_LIMIT else owners


async def _named_ids(request: web.Request) -> dict[str, list[int]]:
    """Record ids a request names: path, form or JSON body."""
    named: dict[str, list[int]] = {}

    def add(kind: str, raw: object) -> None:
        if isinstance(raw, int) or (isinstance(raw, str) and raw.strip().isdigit()):
            named.setdefault(kind, []).append(int(raw))

    for key in ("contact_id", "task_id", "document_id"):
        add(key, request.match_info.get(key))
    if request.method in SAFE_METHODS:
        return named
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for raw in form.getall("contact_id", []):
            add("contact_id", raw)
        if request.path.startswith("/contacts/bulk/"):
            for raw in form.getall("id", []):
                add("contact_id", raw)
    elif request.content_type == "application/json" and request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            return named  # the handler says what is wrong with it
        if isinstance(body, dict):
            add("contact_id", body.get("contact_id"))
    return named


async def check_visible(request: web.Request) -> None:
    """404 for a record of another team, exactly as for one that does not exist."""
    owners = await visible_owners(request)
    if owners is None:
        return
    named = await _named_ids(request)
    if not named:
        return
    principal = request[PRINCIPAL]
    assert principal is not None
    team = principal.user.team
    async with request.app[DATABASE].session() as session:
        for contact_id in named.get("contact_id", []):
            owner = await session.scalar(select(Contact.owner_id).where(Contact.id == contact_id))
            if owner not in owners:
                raise NotFoundError(f"no contact {contact_id}", contact_id=contact_id)
        for task_id in named.get("task_id", []):
            row = (
                await session.execute(
                    select(Task.team, Task.assignee_id, Contact.owner_id)
                    .outerjoin(Contact, Contact.id == Task.contact_id)
                    .where(Task.id == task_id)
                )
            ).first()
            if row is None or not (row[0] == team or row[1] in owners or row[2] in owners):
                raise NotFoundError(f"no task {task_id}", task_id=task_id)
        for document_id in named.get("document_id", []):
            owner = await session.scalar(
                select(Contact.owner_id)
                .join(Document, Document.contact_id == Contact.id)
                .where(Document.id == document_id)
            )
            if owner not in owners:
                raise NotFoundError(f"no document {document_id}", document_id=document_id)


def login_url(request: web.Request) -> str:
    target = request.rel_url.path_qs if request.method == "GET" else "/"
    return str(URL("/login").with_query(next=target)) if target != "/" else "/login"


def safe_next(target: str | None) -> str:
    """Only a path on this site (never //host or a scheme), so login cannot redirect away."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
