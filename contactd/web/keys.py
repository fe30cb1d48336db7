"""Typed application keys: everything the panel's handlers may reach, declared in one place."""

from __future__ import annotations

from aiohttp import web

from contactd.auth.service import UserService
from contactd.auth.sessions import ApiTokens, Principal, SessionStore
from contactd.auth.throttle import LoginThrottle
from contactd.config import Settings
from contactd.crm.documents import DocumentService
from contactd.crm.intake import WebIntake
from contactd.crm.search import ContactSearch
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.session import Database
from contactd.health import HealthRegistry
from contactd.messaging.service import MessagingService
from contactd.web.intake_guard import RateLimiter, SignatureCheck
from contactd.web.themes import ThemeStore

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
HEALTH = web.AppKey("health", HealthRegistry)
USERS = web.AppKey("users", UserService)
SESSIONS = web.AppKey("sessions", SessionStore)
API_TOKENS = web.AppKey("api_tokens", ApiTokens)
THROTTLE = web.AppKey("login_throttle", LoginThrottle)
SEARCH = web.AppKey("contact_search", ContactSearch)
INTAKE = web.AppKey("web_intake", WebIntake)
INTAKE_LIMITER = web.AppKey("intake_limiter", RateLimiter)
INTAKE_SIGNATURES = web.AppKey("intake_signatures", SignatureCheck)
# Records and work pages (contactd/web/views/records.py and neighbours).
CONTACTS = web.AppKey("contacts", ContactService)
TASKS = web.AppKey("tasks", TaskService)
DOCUMENTS = web.AppKey("documents", DocumentService)
# The daemon's own (its outbox sends what the panel queues); a panel alone gets one to queue.
MESSAGING = web.AppKey("messaging", MessagingService)
# Shipped themes and those an admin added (contactd/web/themes.py).
THEMES = web.AppKey("themes", ThemeStore)

# Set on each request by the access middleware (None on public routes without a session).
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
# The language the page is rendered in (one with a catalogue, else English).
LANGUAGE = web.RequestKey("language", str)
# The theme id the page links (the user's choice, else "system": light or dark by the device).
THEME = web.RequestKey("theme", str)


def principal(request: web.Request) -> Principal:
    """The signed-in user of a route that declared a role (the middleware guarantees one)."""
    found = request.get(PRINCIPAL)
    if not isinstance(found, Principal):
        raise RuntimeError(f"{request.path} reached a handler without a signed-in user")
    return found
