"""Every UI string goes through gettext; the catalogue is chosen per request.

Catalogues are web/locale/<lang>/LC_MESSAGES/contactd.mo (compiled from .po by the wheel's
build step). A language without a catalogue falls back to the English source strings.
"""

from __future__ import annotations

import gettext as _gettext
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from aiohttp import web
from babel.support import NullTranslations, Translations

DOMAIN = "contactd"

_ENGLISH = NullTranslations()
_current: ContextVar[_gettext.NullTranslations | None] = ContextVar(
    "contactd_translations", default=None
)


@cache
def translations(locale_dir: Path, language: str) -> _gettext.NullTranslations:
    return Translations.load(str(locale_dir), [language], DOMAIN)


def pick_language(request: web.Request, offered: tuple[str, ...]) -> str:
    """The first language of Accept-Language the panel offers; else the first offered."""
    header = request.headers.get("Accept-Language", "")
    for part in header.split(","):
        tag = part.split(";")[0].strip().lower()
        for candidate in (tag, tag.split("-")[0]):
            if candidate in offered:
                return candidate
    return offered[0] if offered else "en"


def activate(locale_dir: Path, language: str) -> str:
    """Uses `language`'s catalogue; returns the language in effect (English without one)."""
    found = translations(locale_dir, language)
    _current.set(found)
    return language if isinstance(found, Translations) else "en"


def gettext(message: str) -> str:
    return (_current.get() or _ENGLISH).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return (_current.get() or _ENGLISH).ngettext(singular, plural, n)
