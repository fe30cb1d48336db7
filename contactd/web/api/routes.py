"""Registers every API operation and serves the OpenAPI document built from the same table."""

from __future__ import annotations

from aiohttp import web

from contactd.enums import Role
from contactd.web.access import requires
from contactd.web.api import records, work
from contactd.web.api.spec import PREFIX, Api

OPENAPI_PATH = f"{PREFIX}/openapi.json"


def operations() -> Api:
    every = Api()
    every.operations = [*records.api.operations, *work.api.operations]
    return every


def setup(app: web.Application) -> None:
    table = operations()
    table.setup(app)
    document = table.document()  # built once: the table does not change while serving

    @requires(Role.AGENT)
    async def openapi(request: web.Request) -> web.StreamResponse:
        """The OpenAPI 3.1 document of /api/v1, generated from the operations' models."""
        return web.json_response(document, headers={"Cache-Control": "no-cache"})

    app.router.add_get(OPENAPI_PATH, openapi)
