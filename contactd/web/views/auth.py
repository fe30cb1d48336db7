"""Sign in and sign out.

The sign-in form carries its own CSRF token (a random cookie echoed in the form) since there is
no session yet; signing in always starts a new session and ends the one the browser had.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from aiohttp import web

from contactd.auth.audit import Actor
from contactd.enums import Role
from contactd.web.access import CSRF_FIELD, SESSION_COOKIE, public, requires, safe_next
from contactd.web.i18n import LANGUAGE_COOKIE
from contactd.web.i18n import gettext as _
from contactd.web.keys import SESSIONS, SETTINGS, THROTTLE, USERS, principal
from contactd.web.render import page

log = logging.getLogger(__name__)

LOGIN_CSRF_COOKIE = "contactd_login_csrf"


def _secure(request: web.Request) -> bool:
    return request.secure or request.app[SETTINGS].web.cookie_secure


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


def _login_page(request: web.Request, *, error: str = "", username: str = "",
                status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = page(
        request, "login.html",
        # No header (user None): the page's one csrf_token field is the sign-in form's.
        {"user": None, "error": error, "username": username, "login_csrf": token,
         "next": safe_next(request.query.get("next"))},
        status=status,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict",
                        secure=_secure(request), path="/login")
    return response


@public
async def login_form(request: web.Request) -> web.StreamResponse:
    # Shown even to a signed-in user (to switch account): signing in ends the old session.
    return _login_page(request)


@public
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username = str(form.get("username", "")).strip().lower()
    password = str(form.get("password", ""))
    sent = str(form.get(CSRF_FIELD, ""))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent, expected):
        return _login_page(request, username=username, status=403,
                           error=_("The sign-in form expired. Please try again."))
    throttle = request.app[THROTTLE]
    throttle.check(username, _address(request))
    user = await request.app[USERS].authenticate(username, password)
    if user is None:
        throttle.failed(username, _address(request))
        log.info("sign-in refused", extra={"username": username, "remote": _address(request)})
        return _login_page(request, username=username, status=401,
                           error=_("Wrong user name or password."))
    throttle.succeeded(username)
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")  # picked on this sign-in page
    if chosen in request.app[SETTINGS].web.languages and chosen != user.language:
        await request.app[USERS].set_preferences(
            user.username, language=chosen,
            actor=Actor(user_id=user.id, remote_addr=request.remote))
    sessions = request.app[SESSIONS]
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await sessions.end(old)
    token, _csrf = await sessions.create(user, _address(request))
    log.info("signed in", extra={"user_id": user.id})
    response = web.HTTPSeeOther(safe_next(str(form.get("next", "/"))))
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict",
                        secure=_secure(request), path="/")
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise response


@requires(Role.AGENT)
async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await request.app[SESSIONS].end(token)
    log.info("signed out", extra={"user_id": principal(request).user.id})
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def setup(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
