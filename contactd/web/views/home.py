"""The start page and static files."""

from __future__ import annotations

import mimetypes

from aiohttp import web

from contactd.enums import Role
from contactd.web import vendor
from contactd.web.access import public, requires
from contactd.web.assets import asset_root
from contactd.web.keys import HEALTH
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
        # A source checkout: SIP.js and the like come from the cache install-test-deps fills.
        path = request.match_info["path"]
        name, _, rest = path.removeprefix("vendor/").partition("/")
        found = vendor.find(name, rest) if path.startswith("vendor/") else None
        if found is None:
            raise web.HTTPNotFound()
        target = found
    kind, _encoding = mimetypes.guess_type(target.name)
    return web.FileResponse(
        target,
        headers={"Cache-Control": "public, max-age=3600",
                 "Content-Type": kind or "application/octet-stream"},
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/static/{path:.+}", static)
