"""AMI errors, each with a stable code."""

from __future__ import annotations

from contactd.errors import ContactdError


class AmiError(ContactdError):
    code = "ami_error"


class AmiUnavailable(AmiError):
    """Not connected to Asterisk right now: the action was not sent."""

    code = "ami_unavailable"


class AmiDisconnected(AmiError):
    """The link dropped after the action was sent and before its response: fate unknown."""

    code = "ami_disconnected"


class AmiTimeout(AmiError):
    """No response within the action timeout: fate unknown."""

    code = "ami_timeout"


class AmiActionFailed(AmiError):
    """Asterisk answered `Response: Error` (details carry its message)."""

    code = "ami_action_failed"


class AmiUnsafeValue(AmiError):
    """An action key or value that would change the action's framing on the wire (CR, LF,
    NUL: Asterisk takes a bare LF as a line end, so one more line is one more header or a
    new action), or a channel variable name Asterisk would not read back as one name."""

    code = "ami_unsafe_value"


class AmiLoginRefused(AmiError):
    """Asterisk refused the Login: wrong secret, unknown user, or an address not permitted."""

    code = "ami_login_refused"
