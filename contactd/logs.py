"""Structured logging: one JSON object (or key=value text) per line, with the ids in play.

`log_ids(attempt_id=…, message_id=…)` puts ids into a context variable, so every log line
written while handling that call, message or IVR session, in AMI, IVR, DB or messaging code,
carries them without each call site repeating them. The event bus does it for every event it
delivers; `interaction_context` is the one-id form.
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
current_ids: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "current_ids", default={}  # noqa: B039 - never mutated: log_ids sets a new dict
)
ID_FIELDS = ("interaction_id", "attempt_id", "message_id", "lead_id", "campaign_id",
             "contact_id", "task_id", "session_id")


@contextlib.contextmanager
def log_ids(**ids: Any) -> Iterator[None]:
    """Every log line inside carries these ids (None values are left out); nested calls add
    to the outer ones."""
    merged = {**current_ids.get(), **{k: v for k, v in ids.items() if v is not None}}
    token = current_ids.set(merged)
    try:
        yield
    finally:
        current_ids.reset(token)


def ids_of(obj: object) -> dict[str, Any]:
    """The id fields an event (or any object) carries, for `log_ids(**ids_of(event))`."""
    return {name: value for name in ID_FIELDS
            if (value := getattr(obj, name, None)) is not None}


class ContextIds(logging.Filter):
    """Copies the context's ids onto each record when it is made, so they survive handlers
    that format later or elsewhere; a field the call site gave itself wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_ids.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True

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
    handler.addFilter(ContextIds())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # panoramisk logs every frame at debug and reconnect noise at info.
    for noisy in ("panoramisk", "alembic", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
