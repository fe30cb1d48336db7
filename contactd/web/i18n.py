"""Every UI string goes through gettext; the catalogue is chosen per request.

Catalogues are web/locale/<lang>/LC_MESSAGES/contactd.po. The wheel's build step compiles them
to .mo; a source checkout (the editable dev install, the tests) has only the .po, which is
compiled in memory on first use, so both translate alike. Fuzzy entries are left out. A
language without a catalogue falls back to the English source strings.
"""

from __future__ import annotations

import gettext as _gettext
from contextvars import ContextVar
from functools import cache
from io import BytesIO
from pathlib import Path

from aiohttp import web
from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DOMAIN = "contactd"
LANGUAGE_COOKIE = "contactd_lang"

# Where CLDR's name is not the one its speakers use (Babel says "Nyanja" for ny).
OWN_NAMES = {"ny": "Chichewa"}

_ENGLISH = NullTranslations()
_current: ContextVar[_gettext.NullTranslations | None] = ContextVar(
    "contactd_translations", default=None
)


@cache
def translations(locale_dir: Path, language: str) -> _gettext.NullTranslations:
    folder = locale_dir / language / "LC_MESSAGES"
    mo, po = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
    if mo.is_file():
        with mo.open("rb") as handle:
            return Translations(handle, domain=DOMAIN)
    if po.is_file():
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=language, domain=DOMAIN)
        compiled = BytesIO()
        write_mo(compiled, catalog, use_fuzzy=False)
        compiled.seek(0)
        return Translations(compiled, domain=DOMAIN)
    return NullTranslations()


def has_catalogue(locale_dir: Path, language: str) -> bool:
    folder = locale_dir / language / "LC_MESSAGES"
    return (folder / f"{DOMAIN}.mo").is_file() or (folder / f"{DOMAIN}.po").is_file()


def language_name(language: str) -> str:
    """A language's own name for itself ("Русский", "Chichewa"), for the pickers."""
    if language in OWN_NAMES:
        return OWN_NAMES[language]
    try:
        name = Locale.parse(language).get_display_name(language) or language
    except (ValueError, UnknownLocaleError):
        return language
    return name[:1].upper() + name[1:]


def pick_language(request: web.Request, offered: tuple[str, ...]) -> str:
    """The language chosen on the sign-in page (a cookie), else the first of Accept-Language
    the panel offers; else the first offered."""
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in offered:
        return chosen
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
