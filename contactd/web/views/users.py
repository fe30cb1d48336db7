"""Admins manage panel users; everyone changes their own password and API tokens."""

from __future__ import annotations

from aiohttp import web

from contactd.auth.audit import Actor
from contactd.auth.service import verify_password
from contactd.enums import Role
from contactd.errors import ContactdError, ValidationError
from contactd.web.access import requires
from contactd.web.i18n import gettext as _
from contactd.web.keys import API_TOKENS, THEMES, USERS, principal
from contactd.web.render import page, status_of
from contactd.web.services import SERVICES


def _actor(request: web.Request) -> Actor:
    return Actor(user_id=principal(request).user.id, remote_addr=request.remote)


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError(f"unknown role {value!r}", field="role") from None


async def _users_page(request: web.Request, *, message: str = "", error: str = "",
                      status: int = 200) -> web.Response:
    users = await request.app[USERS].list_all()
    return page(request, "users.html",
                {"users": users, "roles": list(Role), "message": message, "error": error},
                status=status)


@requires(Role.ADMIN)
async def users_list(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


@requires(Role.ADMIN)
async def users_add(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        user = await request.app[USERS].add(
            str(form.get("username", "")).strip(), str(form.get("password", "")),
            _role(str(form.get("role", ""))),
            display_name=str(form.get("display_name", "")).strip(),
            extension=str(form.get("extension", "")), actor=_actor(request),
        )
    except ContactdError as exc:
        return await _users_page(request, error=exc.message, status=status_of(exc))
    phones = request.app[SERVICES].webrtc
    if phones is not None and user.role is Role.AGENT:
        await phones.add(user.username, user.display_name)  # their browser phone
    return await _users_page(request, message=_("User %(name)s added.") % {"name": user.username})


@requires(Role.ADMIN)
async def users_update(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username = request.match_info["username"]
    me = principal(request).user
    try:
        active = {"1": True, "0": False}.get(str(form.get("active", "")))
        role = _role(str(form["role"])) if form.get("role") else None
        if username == me.username and (active is False or (role and role is not Role.ADMIN)):
            raise ValidationError("you cannot disable or demote your own account")
        password = str(form.get("password", ""))
        if password:
            await request.app[USERS].set_password(username, password, actor=_actor(request))
        extension = form.get("extension")
        await request.app[USERS].update(username, active=active, role=role,
                                        extension=None if extension is None else str(extension),
                                        actor=_actor(request))
    except ContactdError as exc:
        return await _users_page(request, error=exc.message, status=status_of(exc))
    return await _users_page(request, message=_("User %(name)s saved.") % {"name": username})


async def _account_page(request: web.Request, *, message: str = "", error: str = "",
                        new_token: str = "", status: int = 200) -> web.Response:
    themes = list((await request.app[THEMES].all()).values())
    return page(request, "account.html",
                {"message": message, "error": error, "new_token": new_token, "themes": themes},
                status=status)


@requires(Role.AGENT)
async def account(request: web.Request) -> web.StreamResponse:
    return await _account_page(request)


@requires(Role.AGENT)
async def account_password(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    me = principal(request).user
    if not verify_password(me.password_hash, str(form.get("current", ""))):
        return await _account_page(request, error=_("The current password is wrong."),
                                   status=403)
    try:
        await request.app[USERS].set_password(me.username, str(form.get("password", "")),
                                              actor=_actor(request))
    except ContactdError as exc:
        return await _account_page(request, error=exc.message, status=status_of(exc))
    # Every session ended with the change, this one too: sign in again with the new password.
    raise web.HTTPSeeOther("/login")


@requires(Role.AGENT)
async def account_token(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", "")).strip()
    if not name or len(name) > 100:
        return await _account_page(request, status=422,
                                   error=_("Give the token a name of at most 100 characters."))
    token = await request.app[API_TOKENS].create(principal(request).user.id, name,
                                                 _actor(request))
    return await _account_page(request, new_token=token,
                               message=_("Copy the token now: it is not shown again."))


def setup(app: web.Application) -> None:
    app.router.add_get("/users", users_list)
    app.router.add_post("/users", users_add)
    app.router.add_post("/users/{username}", users_update)
    app.router.add_get("/account", account)
    app.router.add_post("/account/password", account_password)
    app.router.add_post("/account/tokens", account_token)
