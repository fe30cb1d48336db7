"""Jinja2 for the pages: autoescaped, gettext installed, Babel formats for dates."""

from __future__ import annotations

from datetime import datetime

import aiohttp_jinja2
import jinja2
from aiohttp import web
from babel.dates import format_datetime

from contactd.web import i18n
from contactd.web.access import Handler
from contactd.web.assets import asset_root
from contactd.web.keys import LANGUAGE, SETTINGS


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(asset_root() / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True
    )
    env.filters["when"] = _format_when


def _format_when(value: datetime | None, lang: str = "en") -> str:
    if value is None:
        return "—"
    return format_datetime(value, format="medium", locale=lang)


@web.middleware
async def i18n_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    language = i18n.pick_language(request, request.app[SETTINGS].web.languages)
    request[LANGUAGE] = i18n.activate(asset_root() / "locale", language)
    return await handler(request)
