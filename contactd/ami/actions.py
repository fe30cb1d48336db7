"""Builders for the AMI actions contactd sends: plain dicts, no I/O, so they are unit-tested.

Header names are the ones Asterisk 22 documents; a list value becomes one header line per item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

ActionFields = dict[str, str | list[str]]

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
        "Variable": [f"{ATTEMPT_VARIABLE}={attempt_id}"]
        + [f"{name}={value}" for name, value in (variables or {}).items()],
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
    fields: ActionFields = {"Action": "Setvar", "Variable": name, "Value": value}
    if channel:
        fields["Channel"] = channel
    return fields


def getvar(channel: str | None, name: str) -> ActionFields:
    fields: ActionFields = {"Action": "Getvar", "Variable": name}
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
