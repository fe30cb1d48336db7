"""Messaging errors: each says whether trying again later can help (`temporary`)."""

from __future__ import annotations

from typing import Any

from contactd.errors import ContactdError


class MessagingError(ContactdError):
    code = "messaging_error"
    temporary = False


class SendFailedError(MessagingError):
    """The provider refused the message for good (SMPP error status, SMTP 5xx)."""

    code = "message_rejected"
    temporary = False


class TemporaryFailureError(MessagingError):
    """Worth retrying: throttled, queue full, SMTP 4xx, connection lost or unavailable."""

    code = "message_deferred"
    temporary = True


class SmppBindError(MessagingError):
    """The SMSC refused our credentials or bind; retrying will not help until config changes."""

    code = "smpp_bind_failed"

    def __init__(self, message: str, *, status: int, **details: Any) -> None:
        super().__init__(message, status=status, **details)
        self.status = status


class SmppUnavailableError(TemporaryFailureError):
    code = "smpp_unavailable"


class EmailUnavailableError(TemporaryFailureError):
    code = "smtp_unavailable"


class TemplateError(MessagingError):
    """A template is missing, fails to parse, or uses a field the context lacks."""

    code = "template_invalid"


class InvalidTransitionError(MessagingError):
    code = "invalid_message_transition"
