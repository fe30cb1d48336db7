"""The scenarios the demo PBX must play as the real Asterisk does, and how sequences compare.

`drive()` plays every scenario through contactd's own AmiClient (the login-time event filter
is the one CallService makes) against any AMI server and returns, per scenario, the raw events
of that call plus what the CallTracker published. `projection()` keeps what contactd reads of
each event (calls/tracker.py, calls/events.py), keyed by channel role instead of generated
names and ids, one ordered list per channel: the order *within* a channel is Asterisk's
contract, while the interleaving *between* the channels of a call varies from run to run on
the real Asterisk too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from contactd.ami.client import AmiClient
from contactd.calls.events import CallEnded, CallEvent
from contactd.calls.tracker import TRACKED_EVENTS, CallTracker
from contactd.config import AmiSettings, DemoSettings
from tests.replay.ami.trace import summary

WORLD: Final = "contactd-test-world"
FIXTURE: Final = Path(__file__).with_name("conformance.json")
RING_TIMEOUT_MS: Final = 3000
CALL_TIMEOUT_S: Final = 40.0
AGENT = f"Local/7003@{WORLD}"

# scenario -> (callee number, channel variables, expect AMD); numbers: tests/peers/asterisk.py.
SCENARIOS: Final[dict[str, tuple[str, dict[str, str], bool]]] = {
    "answered_human": ("20004", {"CONTACTD_MODE": "message", "CONTACTD_MESSAGE": "beep"}, True),
    "busy": ("300", {}, True),
    "no_answer": ("301", {}, True),
    "unallocated": ("302", {}, True),
    "congestion": ("303", {}, True),
    "machine": ("40004", {}, True),
    "silent_hangup": ("50003", {}, True),
    "bridged": ("20008", {"CONTACTD_MODE": "agent", "CONTACTD_AGENT": AGENT}, True),
    "abandon_no_agent": ("20012", {"CONTACTD_MODE": "agent"}, True),
    "abandon_agent_busy": (
        "20012", {"CONTACTD_MODE": "agent", "CONTACTD_AGENT": f"Local/7198@{WORLD}"}, True,
    ),
    "abandon_queue": ("20012", {"CONTACTD_MODE": "queue", "CONTACTD_QUEUE": "contactd"}, True),
    "no_amd": (
        "20003",
        {"CONTACTD_AMD": "no", "CONTACTD_MODE": "message", "CONTACTD_MESSAGE": "beep"},
        False,
    ),
}

# The demo world tuned to the sandbox's prompts: `beep` plays in about half a second, the
# identification prompt in about one (the demo's defaults are longer, for realism).
CONFORMANCE_WORLD: Final = DemoSettings(message_s=0.5, abandon_prompt_s=1.0)

# What contactd reads of each event besides Event/Uniqueid/Linkedid (calls/tracker.py).
READ_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "OriginateResponse": ("Response", "Reason"),
    "Newchannel": ("ChannelState",),
    "Newstate": ("ChannelState",),
    "DialBegin": (),
    "DialEnd": ("DialStatus",),
    "BridgeEnter": (),
    "BridgeLeave": (),
    "Hangup": ("Cause",),
    "UserEvent": ("UserEvent", "Status", "Cause"),
    "VarSet": ("Variable", "Value"),
}


async def drive(
    settings: AmiSettings, scenarios: Mapping[str, tuple[str, dict[str, str], bool]]
) -> dict[str, tuple[list[dict[str, Any]], list[tuple[Any, ...]], str]]:
    """Play every scenario at once; per scenario its raw events, tracker summaries, attempt id."""
    client = AmiClient(settings)
    tracker = CallTracker()
    ids = {name: str(uuid.uuid4()) for name in scenarios}
    by_link = {attempt: name for name, attempt in ids.items()}
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
    published: dict[str, list[CallEvent]] = {name: [] for name in scenarios}
    live: set[str] = set()
    done = asyncio.Event()

    def on_event(event: Mapping[str, Any]) -> None:
        name = by_link.get(str(event.get("Linkedid") or event.get("ActionID") or ""))
        if name is None:
            return
        raw[name].append(dict(event))
        # Done when every call ended and every channel seen is hung up: the last Hangup of
        # a Local ;2 half may follow CallEnded.
        if event.get("Event") == "Newchannel":
            live.add(str(event.get("Uniqueid")))
        elif event.get("Event") == "Hangup":
            live.discard(str(event.get("Uniqueid")))
        for out in tracker.feed(event, time.time()):
            published[by_link[out.attempt_id]].append(out)
        ended = all(any(isinstance(e, CallEnded) for e in p) for p in published.values())
        if ended and not live:
            done.set()

    for event_name in TRACKED_EVENTS:
        client.events.on(event_name, on_event)
    async with client:
        await client.wait_connected(10)
        for name, (number, variables, amd) in scenarios.items():
            tracker.watch(ids[name], started=time.time(), expect_amd=amd)
            await client.originate(
                ids[name], f"Local/{number}@{WORLD}", context="contactd-outbound",
                timeout_ms=RING_TIMEOUT_MS, variables=variables,
            )
        await asyncio.wait_for(done.wait(), CALL_TIMEOUT_S)
    return {name: (raw[name], [summary(e) for e in published[name]], ids[name])
            for name in scenarios}


def _role(uniqueid: str, attempt: str, agents: dict[str, str], channel: str) -> str:
    if uniqueid == attempt:
        return "callee;1"
    if uniqueid == attempt + "-2":
        return "callee;2"
    if uniqueid not in agents:
        agents[uniqueid] = "agent" + (";2" if channel.endswith(";2") else ";1")
    return agents[uniqueid]


def projection(events: list[dict[str, Any]], attempt: str) -> dict[str, list[tuple[str, ...]]]:
    """Per channel role, the ordered (Event, fields contactd reads…) of that channel."""
    agents: dict[str, str] = {}
    out: dict[str, list[tuple[str, ...]]] = {}
    for event in events:
        name = str(event.get("Event"))
        if name not in READ_FIELDS:
            continue
        values = [str(event.get(k, "")) for k in READ_FIELDS[name]]
        if name == "OriginateResponse":
            role = "originate"
        elif name in ("DialBegin", "DialEnd") and "Uniqueid" not in event:
            role = "originate"  # the Originate's own dial has no caller channel
            values.append(_role(str(event.get("DestUniqueid")), attempt, agents,
                                str(event.get("DestChannel", ""))))
        else:
            role = _role(str(event.get("Uniqueid")), attempt, agents, str(event.get("Channel")))
            if name in ("DialBegin", "DialEnd"):
                values.append(_role(str(event.get("DestUniqueid")), attempt, agents,
                                    str(event.get("DestChannel", ""))))
        if name == "UserEvent":
            values.append("attempt" if event.get("Attempt") == attempt else "")
        out.setdefault(role, []).append((name, *values))
    return out
