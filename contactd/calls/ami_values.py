"""Reading AMI header values defensively: a malformed value reads as absent, never raises."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

RawEvent = Mapping[str, Any]


def text(event: RawEvent, key: str) -> str | None:
    value = event.get(key)
    return value if isinstance(value, str) else None


def integer(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def stamp(value: Any, default: float) -> float:
    if isinstance(value, str):
        try:
            stamp = float(value)
        except ValueError:
            return default
        if math.isfinite(stamp):
            return stamp
    return default


def interface(channel: str) -> str:
    """PJSIP/agent1-0000002a → PJSIP/agent1; Local/x@ctx-00000001;1 → Local/x@ctx."""
    base = channel.split(";", 1)[0]
    head, sep, tail = base.rpartition("-")
    return head if sep and tail and all(c in "0123456789abcdef" for c in tail) else base
