"""Structured logging: one JSON object (or key=value text) per line, with the interaction id.

`interaction_context` puts an interaction id into a context variable so every log line written
while handling that interaction, in AMI, IVR, DB or messaging code, carries it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

current_interaction: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_interaction", default=None
)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


@contextlib.contextmanager
def interaction_context(interaction_id: str | None) -> Iterator[None]:
    token = current_interaction.set(interaction_id)
    try:
        yield
    finally:
        current_interaction.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    interaction = getattr(record, "interaction_id", None) or current_interaction.get()
    if interaction:
        out["interaction_id"] = interaction
    for key, value in vars(record).items():
        if key not in _STANDARD and key not in out:
            out[key] = value
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        ts, level, logger = fields.pop("ts"), fields.pop("level"), fields.pop("logger")
        head = f"{ts} {level:7} {logger}: {fields.pop('msg')}"
        exc = fields.pop("exc", None)
        tail = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{head} {tail}".rstrip()
        return f"{line}\n{exc}" if exc else line


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # panoramisk logs every frame at debug and reconnect noise at info.
    for noisy in ("panoramisk", "alembic", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
