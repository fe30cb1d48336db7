"""Typed application keys: everything the panel's handlers may reach, declared in one place."""

from __future__ import annotations

from aiohttp import web

from contactd.config import Settings
from contactd.db.session import Database
from contactd.health import HealthRegistry

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
HEALTH = web.AppKey("health", HealthRegistry)
