"""Typed refusals of the sign-in and access layer; the web edge maps each to one status."""

from __future__ import annotations

from contactd.errors import ContactdError


class NotSignedIn(ContactdError):
    code = "not_signed_in"


class Forbidden(ContactdError):
    code = "forbidden"


class CsrfRejected(ContactdError):
    code = "csrf_rejected"


class TooManyAttempts(ContactdError):
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
