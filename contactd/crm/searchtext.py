"""What the full-text index reads for a contact: one text with names, company, numbers in the
forms people type them, e-mails and notes. Pure; both the service and the importer use it."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import NamedTuple

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE


def _base_letter(code: int) -> str:
    decomposed = unicodedata.normalize("NFKD", chr(code))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)) or chr(code)


# Latin letters with accents (U+00C0-U+024F) to their base letters, applied by str.translate.
_LATIN: dict[int, str] = {code: _base_letter(code) for code in range(0xC0, 0x250)}
_LATIN.update({0xDF: "ss", 0xC6: "ae", 0xE6: "ae", 0xD8: "o", 0xF8: "o", 0x141: "l", 0x142: "l"})


def fold(text: str) -> str:
    """Lower case without accents, so "Müller" finds "Muller" on SQLite and PostgreSQL alike."""
    if text.isascii():
        return text.lower()
    text = text.translate(_LATIN)
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def phone_forms(e164: str) -> list[str]:
    """+4930123 -> 4930123, 30123, 030123: international, national and trunk-prefixed digits."""
    digits = e164.lstrip("+")
    for size in (1, 2, 3):
        if int(digits[:size] or 0) in COUNTRY_CODE_TO_REGION_CODE:
            national = digits[size:]
            return [digits, national, "0" + national]
    return [digits]


def name_key(first_name: str, last_name: str, organisation: str = "") -> str:
    """contacts.name_key: the surname then the first name (the company's name for a contact
    without either), folded, spaces collapsed. A B-tree on it answers a short prefix typed
    as you type in name order without scoring thousands of full-text matches."""
    words = f"{last_name} {first_name}".split() or organisation.split()
    return fold(" ".join(words))


class SearchText(NamedTuple):
    name: str  # contacts.search_name
    text: str  # contacts.search_text


def with_folded(text: str) -> str:
    text = text.lower()
    if text.isascii():
        return text
    # Keep the original spelling and add the folded one of each accented word.
    extra = [f for word in text.split() if (f := fold(word)) != word]
    return f"{text} {' '.join(extra)}" if extra else text


def build_search_text(
    *,
    first_name: str = "",
    last_name: str = "",
    organisation: str = "",
    job_title: str = "",
    phones: Iterable[str] = (),
    emails: Iterable[str] = (),
    notes: str = "",
) -> SearchText:
    name = " ".join(w for w in (first_name, last_name, job_title) if w)
    words = [organisation]
    for e164 in phones:
        words.extend(phone_forms(e164))
    words.extend(emails)
    words.append(notes)
    return SearchText(with_folded(name), with_folded(" ".join(w for w in words if w)))
