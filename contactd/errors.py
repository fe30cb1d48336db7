"""Errors with a stable code; only the CLI and HTTP edges turn them into exit codes or statuses."""

from __future__ import annotations

from typing import Any


class ContactdError(Exception):
    """Base error: `code` is stable (for logs, API clients and tests), `message` is for people."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConfigError(ContactdError):
    """The configuration file or an environment override is wrong."""

    code = "config_invalid"


class StartupError(ContactdError):
    """A component could not start: a port in use, an unreachable database, an unwritable folder."""

    code = "startup_failed"


class ValidationError(ContactdError):
    """Input from a user or an import file is not acceptable; details name the field."""

    code = "invalid_input"


class StorageUnavailableError(ContactdError):
    """The database cannot take a write now (locked by another program, or the disk is full):
    nothing was stored, and the same request may succeed later."""

    code = "storage_unavailable"


class NotFoundError(ContactdError):
    code = "not_found"


class ConflictError(ContactdError):
    code = "conflict"
