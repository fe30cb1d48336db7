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
    """Worth retrying: throttled, queue full, SMTP 4xx, connection lost or unavailable.

    `maybe_sent`: the provider may have taken the message before the failure (an answer that
    never came); a retry may then deliver it twice: the outbox's at-least-once.
    """

    code = "message_deferred"
    temporary = True

    def __init__(self, message: str, *, maybe_sent: bool = False, **details: Any) -> None:
        super().__init__(message, maybe_sent=maybe_sent, **details)
        self.maybe_sent = maybe_sent


class SmppBindError(MessagingError):
    """The SMSC refused our credentials or bind; retrying will not help until config changes."""

    code = "smpp_bind_failed"

    def __init__(self, message: str, *, status: int, **details: Any) -> None:
        super().__init__(message, status=status, **details)
        self.status = status


class SmppUnavailableError(TemporaryFailureError):
    code = "smpp_unavailable"


class EmailUnavailableError(TemporaryFailureError):
    """The SMTP connection failed or closed: a fresh connection may work at once."""

    code = "smtp_unavailable"


class SmtpDeferredError(EmailUnavailableError):
    """The SMTP server answered 4xx: try again later, not on another connection now."""

    code = "smtp_deferred"

    def __init__(self, message: str, *, smtp_code: int, **details: Any) -> None:
        super().__init__(message, smtp_code=smtp_code, **details)
        self.smtp_code = smtp_code


class TemplateError(MessagingError):
    """A template is missing, fails to parse, or uses a field the context lacks."""

    code = "template_invalid"


class InvalidTransitionError(MessagingError):
    code = "invalid_message_transition"


class ImapError(MessagingError):
    """The IMAP mailbox could not be read (refused login, a NO/BAD answer, a lost link)."""

    code = "imap_failed"
    temporary = True
