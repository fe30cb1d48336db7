"""When two contact records are the same person: the one rule the import, the service and
the interaction router share.

A shared e-mail address is the same person. A shared number is the same person only when
the names do not contradict each other: an office switchboard or a family landline is shared
by several people, and folding them into one contact loses all but one name. A shared number
with contradicting names is kept as two contacts and flagged as a possible duplicate, so a
person decides.

Names are compared folded (case, accents, punctuation) part by part; a part that is empty on
either side, or an initial ("S.") that starts the other side's part, does not contradict.
"""

from __future__ import annotations

import enum
import unicodedata
from functools import lru_cache


class Match(enum.Enum):
    SAME = "same"  # one person: merge
    POSSIBLE_DUPLICATE = "possible_duplicate"  # shared number, names contradict: keep both, flag
    DIFFERENT = "different"  # nothing shared


@lru_cache(maxsize=65536)
def _fold(part: str) -> str:
    """Lower case, accents and punctuation dropped, spaces collapsed."""
    if part.isascii():
        text = part.casefold()
    else:
        text = "".join(
            ch for ch in unicodedata.normalize("NFKD", part.casefold())
            if not unicodedata.combining(ch)
        )
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text).split())


def _part_compatible(a: str, b: str) -> bool:
    if a == b:
        return True
    fa, fb = _fold(a), _fold(b)
    if not fa or not fb or fa == fb:
        return True
    short, long = (fa, fb) if len(fa) <= len(fb) else (fb, fa)
    return len(short) == 1 and long.startswith(short)  # an initial


def names_compatible(first_a: str, last_a: str, first_b: str, last_b: str) -> bool:
    """Whether two names can be the same person's (see the module docstring)."""
    if first_a == first_b and last_a == last_b:
        return True
    return _part_compatible(first_a, first_b) and _part_compatible(last_a, last_b)


def match(
    first_a: str, last_a: str, keys_a: tuple[str, ...] | list[str],
    first_b: str, last_b: str, keys_b: tuple[str, ...] | list[str],
) -> Match:
    """How record b relates to record a. Keys are E.164 numbers (leading "+") and lower-case
    e-mail addresses, as stored."""
    shared = set(keys_a).intersection(keys_b)
    if not shared:
        return Match.DIFFERENT
    if any(k[0] != "+" for k in shared):
        return Match.SAME
    if names_compatible(first_a, last_a, first_b, last_b):
        return Match.SAME
    return Match.POSSIBLE_DUPLICATE
