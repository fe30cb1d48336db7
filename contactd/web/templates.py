"""Jinja2 for the pages: autoescaped, gettext installed, Babel formats for the page's locale.

Filters (each takes the page's `lang`): `when` (date and time), `day` (date), `number`,
`money` (an amount and an ISO currency code), `percent`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

import aiohttp_jinja2
import jinja2
from aiohttp import web
from babel.dates import format_date, format_datetime, get_day_names
from babel.numbers import format_currency, format_decimal, format_percent

from contactd.dialer.policy import WEEKDAYS
from contactd.web import i18n
from contactd.web.access import Handler
from contactd.web.assets import asset_root
from contactd.web.i18n import gettext as _
from contactd.web.keys import LANGUAGE, PRINCIPAL, SETTINGS, THEME
from contactd.web.themes import SYSTEM

Number = int | float | Decimal


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(asset_root() / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        # The panel's templates ship with the package and change only with it: no stat of
        # every template file on every page.
        auto_reload=False,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True
    )
    env.filters["when"] = format_when
    env.filters["day"] = format_day
    env.filters["number"] = format_number
    env.filters["money"] = format_money
    env.filters["percent"] = format_share
    env.globals["language_name"] = i18n.language_name
    env.globals["role_name"] = role_name
    env.globals["status_name"] = status_name
    env.globals["weekdays"] = weekdays


def role_name(role: str) -> str:
    """A role in the page's language."""
    names = {"agent": _("agent"), "supervisor": _("supervisor"), "admin": _("admin")}
    return names.get(role, role)


def status_name(status: str) -> str:
    """A component's health state in the page's language."""
    names = {"ok": _("ok"), "degraded": _("degraded"), "down": _("down"), "starting": _("starting")}
    return names.get(status, status)


def weekdays(lang: str = "en") -> list[tuple[str, str]]:
    """(key, name) of each weekday from Monday, named in `lang` by Babel (CLDR)."""
    names = get_day_names("wide", locale=lang)
    return [(key, names[i]) for i, key in enumerate(WEEKDAYS)]


def format_when(value: datetime | None, lang: str = "en") -> str:
    if value is None:
        return "—"
    return _when(value, lang)


@lru_cache(maxsize=8192)
def _when(value: datetime, lang: str) -> str:
    # A list page formats the same due dates on every reload (Babel: ~30 us each, 200 a page).
    return format_datetime(value, format="medium", locale=lang)


def format_day(value: date | None, lang: str = "en") -> str:
    if value is None:
        return "—"
    return format_date(value, format="medium", locale=lang)


def format_number(value: Number | None, lang: str = "en") -> str:
    return "—" if value is None else format_decimal(value, locale=lang)


def format_money(value: Number | None, currency: str, lang: str = "en") -> str:
    return "—" if value is None else format_currency(value, currency, locale=lang)


def format_share(value: Number | None, lang: str = "en") -> str:
    """A share of 1 as a percentage: 0.031 → "3.1%" (ru "3,1 %")."""
    if value is None:
        return "—"
    return format_percent(round(float(value), 3), locale=lang, decimal_quantization=False)


@web.middleware
async def i18n_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Before sign-in: the language picked on the sign-in page, else the browser's."""
    language = i18n.pick_language(request, request.app[SETTINGS].web.languages)
    request[LANGUAGE] = i18n.activate(asset_root() / "locale", language)
    request[THEME] = SYSTEM
    return await handler(request)


@web.middleware
async def preferences_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Signed in: the language and theme the user chose (runs after the access check)."""
    principal = request.get(PRINCIPAL)
    if principal is not None:
        user = principal.user
        if user.language in request.app[SETTINGS].web.languages:
            request[LANGUAGE] = i18n.activate(asset_root() / "locale", user.language)
        if user.theme:
            request[THEME] = user.theme
    return await handler(request)
