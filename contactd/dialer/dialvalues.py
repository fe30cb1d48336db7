"""Values that reach AMI and the dialplan (channel variables, application arguments): the
characters each may hold. A CR/LF ends an AMI message (header injection), a NUL cuts it, a
comma splits a dialplan application's arguments and a semicolon starts a comment."""

from __future__ import annotations

import re
from typing import Final

from contactd.errors import ValidationError

# field -> (pattern, the allowed characters said in words)
_ALLOWED: Final[dict[str, tuple[re.Pattern[str], str]]] = {
    "name": (re.compile(r"[A-Za-z0-9_.\-]{1,100}"),
             "letters, digits, '_', '.', '-' (1 to 100)"),
    "caller_id": (re.compile(r"[A-Za-z0-9 _.'\"<>+\-]{0,64}"),
                  "letters, digits, space and _ . ' \" < > + - (up to 64)"),
    # A sound file name as Playback takes it: custom/spring-offer (no extension, no '..').
    "message": (re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*"),
                "letters, digits, '_', '-' and '/' between names (a sound file name)"),
    "ivr_flow": (re.compile(r"[A-Za-z0-9_\-]{1,100}"), "letters, digits, '_', '-'"),
    "agent_queue": (re.compile(r"[A-Za-z0-9_\-]{1,64}"), "letters, digits, '_', '-'"),
    "agent_dial": (re.compile(r"[A-Za-z0-9_\-]+/[A-Za-z0-9_.@:+\-/]+"),
                   "TECH/resource with letters, digits and _ . @ : + - /, e.g. PJSIP/1001"),
}
_FORBIDDEN: Final = {"\r": "a carriage return", "\n": "a line feed", "\0": "a NUL byte",
                     ",": "a comma (the dialplan splits arguments on it)",
                     ";": "a semicolon (a dialplan comment)"}


def check_value(field_name: str, value: str) -> str:
    """The value when it may reach AMI and the dialplan; ValidationError saying why not."""
    for char, what in _FORBIDDEN.items():
        if char in value:
            raise ValidationError(
                f"{field_name} {value!r} contains {what}; allowed: "
                f"{_ALLOWED[field_name][1]}", field=field_name)
    pattern, allowed = _ALLOWED[field_name]
    if not pattern.fullmatch(value):
        raise ValidationError(f"{field_name} {value!r} is not allowed; allowed: {allowed}",
                              field=field_name)
    return value


def check_agent_dial(dial: str) -> str:
    """An agent's dial string (Dial(${CONTACTD_AGENT},…) takes it as is)."""
    return check_value("agent_dial", dial)
