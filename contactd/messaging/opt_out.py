"""What a reply must say to opt out of SMS, per language: data, not code.

A reply opts out when its first word, after NFKC (so full-width `ＳＴＯＰ` reads as `STOP`) and
case folding, is one of these words. The sender's language is rarely known when a reply
arrives, so by default every language's words count; a deployment may narrow the list.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

OPT_OUT_KEYWORDS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "en": frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"}),
        "de": frozenset({"STOP", "STOPP", "ABMELDEN", "ABBESTELLEN"}),
        "fr": frozenset({"STOP", "ARRET", "ARRÊT", "DESABONNER", "DÉSABONNER"}),
        "es": frozenset({"STOP", "BAJA", "ALTO", "CANCELAR"}),
        "it": frozenset({"STOP", "BASTA", "CANCELLA"}),
        "pt": frozenset({"STOP", "PARAR", "SAIR", "CANCELAR"}),
        "nl": frozenset({"STOP", "AFMELDEN", "UITSCHRIJVEN"}),
        "sv": frozenset({"STOPP", "AVSLUTA"}),
        "no": frozenset({"STOPP", "AVSLUTT"}),
        "da": frozenset({"STOP", "AFMELD"}),
        "pl": frozenset({"STOP", "WYPISZ"}),
        "ru": frozenset({"СТОП", "ОТПИСАТЬСЯ", "ОТПИСКА"}),
        "uk": frozenset({"СТОП", "ВІДПИСАТИСЯ"}),
        "tr": frozenset({"DUR", "IPTAL", "İPTAL"}),
    }
)

# Combining marks belong to the word: case folding turns "İ" into "i" + U+0307.
_FIRST_WORD = re.compile(r"[\w\u0300-\u036f]+")


def fold(text: str) -> str:
    """The form words are compared in: NFKC, then case folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def keywords(languages: Iterable[str] | None = None) -> frozenset[str]:
    """The folded opt-out words of `languages` (every language when None); KeyError if unknown."""
    chosen = OPT_OUT_KEYWORDS.keys() if languages is None else languages
    return frozenset(fold(word) for language in chosen for word in OPT_OUT_KEYWORDS[language])


ALL_KEYWORDS: Final = keywords()


def is_opt_out(text: str, words: frozenset[str] = ALL_KEYWORDS) -> bool:
    """True when the reply's first word is an opt-out keyword, whatever the case or punctuation."""
    match = _FIRST_WORD.search(fold(text))
    return match is not None and match.group(0) in words
