"""Builders for the AMI actions contactd sends: plain dicts, no I/O, so they are unit-tested.

Header names are the ones Asterisk 22 documents; a list value becomes one header line per item.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from contactd.ami.errors import AmiUnsafeValue

ActionFields = dict[str, str | list[str]]

# A header line ends at LF (Asterisk also accepts a bare LF) and C strings end at NUL: any of
# them inside a key or value would let text chosen by a caller or a campaign write headers, or
# a whole new action (an `Originate … Application: System` is a shell on the PBX).
_FRAMING: Final = re.compile(r"[\r\n\x00]")
_KEY: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
VARIABLE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# manager.c splits every `Variable:` header with AST_STANDARD_APP_ARGS (app.c
# __ast_app_separate_args): a comma outside quotes, parentheses and brackets starts another
# `name=value`; quotes and backslashes are removed; a backslash keeps the next character as
# it is. So each of these characters is sent behind a backslash and arrives unchanged
# (tests/integration/asterisk/test_ami_injection.py proves it on Asterisk 22).
_SPLIT_SPECIALS: Final = re.compile(r'([\\,"()\[\]])')

ATTEMPT_VARIABLE: Final = "CONTACTD_ATTEMPT"
OTHER_CHANNEL_SUFFIX: Final = "-2"

# Sent at most once: panoramisk must never re-send these after a reconnect (DESIGN.md §4 trap 1).
# The client also fails every pending action of a dropped link itself, so nothing is re-sent.
FORGETTABLE_ACTIONS: Final = (
    "ping",
    "login",
    "logoff",
    "originate",
    "redirect",
    "hangup",
    "setvar",
    "queueadd",
    "queueremove",
    "queuepause",
    "command",
    "userevent",
    "blindtransfer",
    "atxfer",
    "bridge",
    "playdtmf",
    "absolutetimeout",
    "mixmonitor",
    "stopmixmonitor",
)


def check_fields(fields: Mapping[str, Any]) -> None:
    """Refuse any key or value that could end a header line or the action (AmiUnsafeValue)."""
    for key, value in fields.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise AmiUnsafeValue(f"AMI header name {key!r} is not a plain name", header=repr(key))
        for item in value if isinstance(value, list | tuple) else (value,):
            if _FRAMING.search(str(item)):
                raise AmiUnsafeValue(
                    f"AMI header {key} holds a line break or NUL character: refused",
                    header=key,
                )


def wire(fields: Mapping[str, Any]) -> bytes:
    """The bytes of one action as written to Asterisk (checked first); a list value is one
    header line per item."""
    check_fields(fields)
    lines: list[str] = []
    for key, value in fields.items():
        for item in value if isinstance(value, list | tuple) else (value,):
            lines.append(f"{key}: {item}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf8")


def check_variable_name(name: str) -> str:
    if not VARIABLE_NAME.fullmatch(name):
        raise AmiUnsafeValue(
            f"channel variable name {name!r} must match {VARIABLE_NAME.pattern}",
            variable=name,
        )
    return name


def variable(name: str, value: str) -> str:
    """One Originate `Variable:` header value that Asterisk reads back as exactly name=value."""
    escaped = _SPLIT_SPECIALS.sub(r"\\\1", value)
    return f"{check_variable_name(name)}={escaped}"


def originate(
    attempt_id: str,
    dial: str,
    *,
    context: str | None = None,
    exten: str = "s",
    priority: int = 1,
    application: str | None = None,
    data: str = "",
    caller_id: str = "",
    timeout_ms: int = 25_000,
    variables: Mapping[str, str] | None = None,
) -> ActionFields:
    """Async Originate whose ActionID, Uniqueid (ChannelId) and CONTACTD_ATTEMPT are the attempt id.

    Setting ChannelId makes the attempt id the Linkedid of every channel of the call, so all
    later events map back to it without VarSet; Asterisk also refuses a second channel with
    the same Uniqueid while the first lives, a last guard against a double dial.
    """
    if (context is None) == (application is None):
        raise ValueError("give either context/exten or application")
    fields: ActionFields = {
        "Action": "Originate",
        "ActionID": attempt_id,
        "Channel": dial,
        "Async": "true",
        "Timeout": str(int(timeout_ms)),
        "ChannelId": attempt_id,
        "OtherChannelId": attempt_id + OTHER_CHANNEL_SUFFIX,
        # One header per variable, each escaped: a comma in a value never makes another one.
        "Variable": [variable(ATTEMPT_VARIABLE, attempt_id)]
        + [variable(name, value) for name, value in (variables or {}).items()],
    }
    if application is not None:
        fields["Application"] = application
        if data:
            fields["Data"] = data
    else:
        assert context is not None
        fields.update(Context=context, Exten=exten, Priority=str(priority))
    if caller_id:
        fields["CallerID"] = caller_id
    return fields


def redirect(
    channel: str,
    context: str,
    exten: str,
    priority: int = 1,
    *,
    extra_channel: str | None = None,
) -> ActionFields:
    fields: ActionFields = {
        "Action": "Redirect",
        "Channel": channel,
        "Context": context,
        "Exten": exten,
        "Priority": str(priority),
    }
    if extra_channel:
        fields.update(
            ExtraChannel=extra_channel,
            ExtraContext=context,
            ExtraExten=exten,
            ExtraPriority=str(priority),
        )
    return fields


def hangup(channel: str, cause: int = 16) -> ActionFields:
    return {"Action": "Hangup", "Channel": channel, "Cause": str(cause)}


def setvar(channel: str | None, name: str, value: str) -> ActionFields:
    # Setvar's Value is taken whole (no splitting): only its framing is checked, at sending.
    fields: ActionFields = {
        "Action": "Setvar",
        "Variable": check_variable_name(name),
        "Value": value,
    }
    if channel:
        fields["Channel"] = channel
    return fields


def getvar(channel: str | None, name: str) -> ActionFields:
    fields: ActionFields = {"Action": "Getvar", "Variable": check_variable_name(name)}
    if channel:
        fields["Channel"] = channel
    return fields


def queue_add(
    queue: str,
    interface: str,
    *,
    member_name: str | None = None,
    penalty: int = 0,
    paused: bool = False,
    state_interface: str | None = None,
) -> ActionFields:
    fields: ActionFields = {
        "Action": "QueueAdd",
        "Queue": queue,
        "Interface": interface,
        "Penalty": str(penalty),
        "Paused": "true" if paused else "false",
    }
    if member_name:
        fields["MemberName"] = member_name
    if state_interface:
        fields["StateInterface"] = state_interface
    return fields


def queue_remove(queue: str, interface: str) -> ActionFields:
    return {"Action": "QueueRemove", "Queue": queue, "Interface": interface}


def queue_pause(
    interface: str, paused: bool, *, queue: str | None = None, reason: str = ""
) -> ActionFields:
    fields: ActionFields = {
        "Action": "QueuePause",
        "Interface": interface,
        "Paused": "true" if paused else "false",
    }
    if queue:
        fields["Queue"] = queue
    if reason:
        fields["Reason"] = reason
    return fields


def command(text: str) -> ActionFields:
    return {"Action": "Command", "Command": text}


def core_show_channels() -> ActionFields:
    return {"Action": "CoreShowChannels"}
