"""Errors of the call service, each with a stable code."""

from __future__ import annotations

from contactd.errors import ContactdError


class OriginateRejected(ContactdError):
    """Asterisk refused the Originate; the attempt is already ended (outcome FAILED)."""

    code = "originate_rejected"


class OriginateUncertain(ContactdError):
    """The link dropped or timed out before Asterisk answered; reconciliation settles it."""

    code = "originate_uncertain"
