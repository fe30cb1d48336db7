"""The aiohttp application and the runner that serves it; handlers call services only."""

from __future__ import annotations

import errno
import logging
from types import TracebackType

from aiohttp import web

from contactd import __version__
from contactd.config import Settings
from contactd.db.session import Database
from contactd.errors import StartupError
from contactd.health import HealthRegistry
from contactd.web.keys import DATABASE, HEALTH, SETTINGS

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """Liveness and component state (status codes: contactd/health.py HTTP_STATUS)."""
    status, body = request.app[HEALTH].report(__version__)
    return web.json_response(body, status=status)


def create_app(settings: Settings, db: Database, health: HealthRegistry) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[DATABASE] = db
    app[HEALTH] = health
    app.router.add_get("/healthz", healthz)
    return app


class WebServer:
    """Serves the panel on the configured address for as long as the context is entered."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self.host = host
        self.port = port

    async def __aenter__(self) -> WebServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"web panel cannot listen on {self.host}:{self.port}: port already in use"
                ) from None
            raise StartupError(
                f"web panel cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from None
        log.info("web panel listening", extra={"url": f"http://{self.host}:{self.port}/"})
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._runner.cleanup()
