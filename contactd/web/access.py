"""One mechanism for who may reach what: every route declares a role (or `public`), and one
middleware checks it, plus CSRF on every state change. `check_route_table` refuses to build
an app with an undeclared route, and the middleware refuses one that slipped through anyway.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Literal, TypeVar

from aiohttp import web
from aiohttp.web_urldispatcher import MatchInfoError
from yarl import URL

from contactd.auth.errors import CsrfRejected, Forbidden, NotSignedIn
from contactd.auth.sessions import Principal
from contactd.enums import Role
from contactd.web.keys import API_TOKENS, PRINCIPAL, SESSIONS

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
    return await handler(request)


def login_url(request: web.Request) -> str:
    target = request.rel_url.path_qs if request.method == "GET" else "/"
    return str(URL("/login").with_query(next=target)) if target != "/" else "/login"


def safe_next(target: str | None) -> str:
    """Only a path on this site (never //host or a scheme), so login cannot redirect away."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
