"""The aiohttp application and the runner that serves it; handlers call services only."""

from __future__ import annotations

import errno
import logging
from datetime import timedelta
from types import TracebackType

from aiohttp import web

from contactd import __version__
from contactd.auth.service import UserService
from contactd.auth.sessions import ApiTokens, SessionStore
from contactd.auth.throttle import LoginThrottle
from contactd.config import Settings
from contactd.crm.documents import DocumentService
from contactd.crm.intake import WebIntake
from contactd.crm.search import ContactSearch
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.session import Database
from contactd.errors import StartupError
from contactd.health import HealthRegistry
from contactd.messaging.service import MessagingService
from contactd.web import intake as intake_views
from contactd.web.access import access_middleware, check_route_table, public
from contactd.web.api import routes as api_routes
from contactd.web.assets import asset_root
from contactd.web.intake_guard import RateLimiter, SignatureCheck
from contactd.web.keys import (
    API_TOKENS,
    CONTACTS,
    DATABASE,
    DOCUMENTS,
    HEALTH,
    INTAKE,
    INTAKE_LIMITER,
    INTAKE_SIGNATURES,
    MESSAGING,
    SEARCH,
    SESSIONS,
    SETTINGS,
    TASKS,
    THEMES,
    THROTTLE,
    USERS,
)
from contactd.web.render import error_middleware, headers_middleware
from contactd.web.services import SERVICES, PanelServices
from contactd.web.templates import i18n_middleware, preferences_middleware, setup_templates
from contactd.web.themes import ThemeStore
from contactd.web.views import appearance as appearance_views
from contactd.web.views import auth as auth_views
from contactd.web.views import campaigns as campaigns_views
from contactd.web.views import catalogue as catalogue_views
from contactd.web.views import contacts as contacts_views
from contactd.web.views import documents as documents_views
from contactd.web.views import floor as floor_views
from contactd.web.views import home as home_views
from contactd.web.views import merge as merge_views
from contactd.web.views import messages as messages_views
from contactd.web.views import records as records_views
from contactd.web.views import reports as reports_views
from contactd.web.views import tasks as tasks_views
from contactd.web.views import users as users_views
from contactd.web.views import workspace as workspace_views

log = logging.getLogger(__name__)


@public
async def healthz(request: web.Request) -> web.Response:
    """Liveness and component state (status codes: contactd/health.py HTTP_STATUS)."""
    status, body = request.app[HEALTH].report(__version__)
    return web.json_response(body, status=status)


@public
async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 only when every component is ok (contactd/health.py readiness)."""
    status, body = request.app[HEALTH].readiness(__version__)
    return web.json_response(body, status=status)


def create_app(
    settings: Settings, db: Database, health: HealthRegistry,
    services: PanelServices | None = None, *, intake: WebIntake | None = None,
) -> web.Application:
    """The panel: pages, the API and /healthz behind one access check (see web/access.py).

    `services`: the daemon's live parts (dialer, calls, messaging…); without them the pages
    that need one say that it is not running. Without the daemon's `intake` (which routes),
    web forms are stored for it to route."""
    app = web.Application(
        middlewares=[headers_middleware, i18n_middleware, error_middleware, access_middleware,
                     preferences_middleware]
    )
    app[SETTINGS] = settings
    app[DATABASE] = db
    app[HEALTH] = health
    users = UserService(db, recent_s=settings.web.identity_reuse_s)
    app[USERS] = users
    app[SESSIONS] = SessionStore(
        db,
        idle=timedelta(minutes=settings.web.session_idle_minutes),
        absolute=timedelta(hours=settings.web.session_absolute_hours),
        recent_s=settings.web.identity_reuse_s,
        generation=users.generation,
    )
    app[API_TOKENS] = ApiTokens(db)
    app[THROTTLE] = LoginThrottle(settings.web.login_max_failures, settings.web.login_window_s)
    app[SEARCH] = ContactSearch(db)
    app[INTAKE] = intake or WebIntake(db)
    app[INTAKE_LIMITER] = RateLimiter(settings.intake.rate_limit, settings.intake.rate_window_s)
    app[INTAKE_SIGNATURES] = SignatureCheck(settings.intake.signature_window_s)
    live = services or PanelServices()
    app[SERVICES] = live
    # The daemon's own services when it runs the panel (its bus hears what pages do, its
    # outbox sends what they queue); a panel alone gets its own to store and queue with.
    app[CONTACTS] = live.contacts or ContactService(
        db, default_region=settings.general.default_region)
    app[TASKS] = live.tasks or TaskService(db)
    app[MESSAGING] = live.messaging or MessagingService(settings, db)
    app[DOCUMENTS] = DocumentService(db, settings.general.data_dir,
                                     sender=settings.email.from_address)
    app[THEMES] = ThemeStore(asset_root() / "themes", settings.general.data_dir / "themes")
    setup_templates(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for area in (auth_views, home_views, users_views, contacts_views, intake_views,
                 workspace_views, api_routes, records_views, tasks_views, documents_views,
                 messages_views, merge_views, catalogue_views, appearance_views,
                 reports_views, floor_views, campaigns_views):
        area.setup(app)
    check_route_table(app)
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
