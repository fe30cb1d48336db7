"""Channels of the demo PBX and the AMI events that describe them, field for field as
Asterisk 22 writes them (compare tests/replay/ami/calls.ami, recorded from the sandbox)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from contactd.demo.world import Callee

STATE_DESC: Final = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TXT: Final = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    27: "Destination out of order",
    34: "Circuit/channel congestion",
}


class ChannelGone(Exception):
    """The channel was hung up (by the far end or an AMI Hangup) while its dialplan ran."""


class Redirected(Exception):
    """An AMI Redirect moved the channel to another place in the dialplan."""


@dataclass(eq=False)
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    state: int = 0
    priority: int = 1
    caller_num: str = "<unknown>"
    caller_name: str = "<unknown>"
    variables: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    application: str = ""
    bridge: str = ""
    cause: int = 16
    hung_up: bool = False
    redirect: tuple[str, str, int] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def block(self, prefix: str = "") -> list[tuple[str, str]]:
        """The standard channel headers (with Dest/LocalOne… prefixes for the other party)."""
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (f"{prefix}CallerIDNum", self.caller_num),
            (f"{prefix}CallerIDName", self.caller_name),
            (f"{prefix}ConnectedLineNum", "<unknown>"),
            (f"{prefix}ConnectedLineName", "<unknown>"),
            (f"{prefix}Language", "en"),
            (f"{prefix}AccountCode", ""),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]

    async def hold(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Let `seconds` pass on this channel, or less once `until()` holds; raises if the
        channel is hung up or redirected meanwhile. `wake` only says: look again."""
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            if until is not None and until():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), left)

    def check(self) -> None:
        if self.hung_up:
            raise ChannelGone(self.name)
        if self.redirect is not None:
            raise Redirected(self.name)

    def end(self, cause: int) -> None:
        if not self.hung_up:
            self.hung_up = True
            self.cause = cause
            self.wake.set()


def event(name: str, privilege: str, *parts: list[tuple[str, str]] | tuple[str, str]) -> bytes:
    """An event frame: Event, Privilege, Timestamp (manager.conf timestampevents), then parts."""
    lines = [f"Event: {name}", f"Privilege: {privilege}", f"Timestamp: {time.time():.6f}"]
    for part in parts:
        if isinstance(part, tuple):
            lines.append(f"{part[0]}: {part[1]}")
        else:
            lines.extend(f"{k}: {v}" for k, v in part)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


class Names:
    """Channel names and Uniqueids as Asterisk makes them (a per-process sequence)."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self._uid = itertools.count(1)
        self._epoch = int(time.time())

    def uniqueid(self) -> str:
        return f"{self._epoch}.{next(self._uid)}"

    def local(self, exten: str, context: str) -> tuple[str, str]:
        base = f"Local/{exten}@{context}-{next(self._seq):08x}"
        return base + ";1", base + ";2"

    def device(self, tech: str, resource: str) -> str:
        return f"{tech}/{resource}-{next(self._seq):08x}"


@dataclass
class Member:
    interface: str
    paused: bool = False
    busy: bool = False


@dataclass
class Call:
    """One originated call: the callee channel(s) and what the dialplan has seen so far."""

    action_id: str
    dial: str
    primary: Channel
    other: Channel | None
    callee: Callee
    context: str = "contactd-outbound"
    tracked: bool = False
    dial_status: str = ""
    amd_status: str = ""
    agent_legs: list[Channel] = field(default_factory=list)


@dataclass
class PbxStats:
    originated: int = 0
    ended: int = 0
    events: int = 0

    @property
    def live(self) -> int:
        return self.originated - self.ended
