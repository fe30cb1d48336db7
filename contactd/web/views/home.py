"""The start page, static files and the first API route."""

from __future__ import annotations

import mimetypes

from aiohttp import web

from contactd.enums import Role
from contactd.web.access import public, requires
from contactd.web.assets import asset_root
from contactd.web.keys import HEALTH, principal
from contactd.web.render import page


@requires(Role.AGENT)
async def home(request: web.Request) -> web.StreamResponse:
    health = request.app[HEALTH]
    return page(request, "home.html", {"components": health.snapshot(),
                                        "overall": health.overall()})


@public
async def static(request: web.Request) -> web.StreamResponse:
    """Files under web/static only: the resolved path must stay inside that folder."""
    root = (asset_root() / "static").resolve()
    target = (root / request.match_info["path"]).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise web.HTTPNotFound()
    kind, _encoding = mimetypes.guess_type(target.name)
    return web.FileResponse(
        target,
        headers={"Cache-Control": "public, max-age=3600",
                 "Content-Type": kind or "application/octet-stream"},
    )


@requires(Role.AGENT)
async def api_me(request: web.Request) -> web.StreamResponse:
    user = principal(request).user
    return web.json_response({"id": user.id, "username": user.username,
                              "display_name": user.display_name, "role": user.role.value})


def setup(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/static/{path:.+}", static)
    app.router.add_get("/api/v1/me", api_me)
