"""The AMI actions contactd sends besides Originate, played against any AMI server: Setvar
(the dialer's SetvarConnector, the IVR's route), Getvar, Redirect, Hangup, CoreShowChannels
(reconciliation), DBGet/DBDel (the message status kept in AstDB), QueueAdd/Pause/Remove,
and an outbound ivr call over AudioSocket (a global Setvar names the server).

`drive_actions()` returns one plain-JSON record: per step what contactd would get back (a
value, or the error's message, which AmiActionFailed carries as its reason), and per call
the events in the projection of conformance.py. The test holds the demo PBX's record equal
to the real Asterisk's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from contactd.ami.client import AmiClient
from contactd.ami.errors import AmiActionFailed
from contactd.calls.service import message_families
from contactd.calls.tracker import TRACKED_EVENTS
from contactd.config import AmiSettings
from tests.peers.asterisk import audiosocket_recorder
from tests.replay.ami.conformance import AGENT, CALL_TIMEOUT_S, RING_TIMEOUT_MS, WORLD, projection

ACTIONS_FIXTURE: Final = Path(__file__).with_name("conformance_actions.json")
QUEUE: Final = "contactd"
MEMBER: Final = f"Local/7100@{WORLD}"
GONE: Final = "PJSIP/nobody-00000000"
HOLDING: Final = {"CONTACTD_AMD": "no", "CONTACTD_MODE": "agent"}  # waits for CONTACTD_AGENT

Result = list[str]


async def _has(client: AmiClient, family: str, key: str) -> bool:
    """Whether AstDB holds `family/key` (DBGet answers an error when it does not)."""
    try:
        await client.action({"Action": "DBGet", "Family": family, "Key": key})
    except AmiActionFailed:
        return False
    return True


async def _result(call: Callable[[], Awaitable[Any]]) -> Result:
    try:
        value = await call()
    except AmiActionFailed as exc:
        return ["error", str(exc.details.get("reason", ""))]
    return ["ok", "" if value is None else str(value)]


def _channels(live: list[dict[str, str]], attempt: str) -> list[list[str]]:
    """What reconciliation reads of CoreShowChannels for one call, by channel role."""
    out = []
    for channel in live:
        if channel.get("Linkedid") != attempt:
            continue
        uid = channel.get("Uniqueid", "")
        role = {attempt: "callee;1", attempt + "-2": "callee;2"}.get(uid, "other")
        out.append([role, channel.get("ChannelState", "")])
    return sorted(out)


async def drive_actions(settings: AmiSettings) -> dict[str, Any]:
    client = AmiClient(settings)
    raw: dict[str, list[dict[str, Any]]] = {}
    answered: dict[str, asyncio.Future[str]] = {}
    ivr_started: dict[str, asyncio.Future[dict[str, Any]]] = {}
    live: dict[str, set[str]] = {}
    ended: dict[str, asyncio.Event] = {}
    steps: dict[str, Any] = {}

    def on_event(event: dict[str, Any]) -> None:
        attempt = str(event.get("Linkedid") or event.get("ActionID") or "")
        if attempt not in raw:
            return
        raw[attempt].append(dict(event))
        name = event.get("Event")
        if name == "Newchannel":
            live[attempt].add(str(event.get("Uniqueid")))
        elif name == "Hangup":
            live[attempt].discard(str(event.get("Uniqueid")))
            if not live[attempt]:
                ended[attempt].set()
        elif name == "UserEvent" and event.get("UserEvent") == "ContactdAnswered":
            future = answered[attempt]
            if not future.done():
                future.set_result(str(event.get("Channel")))
        elif name == "UserEvent" and event.get("UserEvent") == "ContactdIvr":
            started = ivr_started[attempt]
            if not started.done():
                started.set_result(dict(event))

    for event_name in TRACKED_EVENTS:
        client.events.on(event_name, on_event)

    async def call(number: str, variables: dict[str, str]) -> str:
        attempt = str(uuid.uuid4())
        raw[attempt], live[attempt], ended[attempt] = [], set(), asyncio.Event()
        answered[attempt] = asyncio.get_running_loop().create_future()
        ivr_started[attempt] = asyncio.get_running_loop().create_future()
        await client.originate(
            attempt,
            f"Local/{number}@{WORLD}",
            context="contactd-outbound",
            timeout_ms=RING_TIMEOUT_MS,
            variables=variables,
        )
        return attempt

    async def connect_by_setvar() -> None:
        attempt = await call("20030", HOLDING)
        channel = await asyncio.wait_for(answered[attempt], CALL_TIMEOUT_S)
        got = await _result(lambda: client.getvar(channel, "CONTACTD_ATTEMPT"))
        steps["getvar_attempt"] = [got[0], "attempt" if got[1] == attempt else got[1]]
        steps["getvar_unset"] = await _result(lambda: client.getvar(channel, "CONTACTD_NONE"))
        steps["channels_up"] = _channels(await client.core_show_channels(), attempt)
        steps["setvar_agent"] = await _result(
            lambda: client.setvar(channel, "CONTACTD_AGENT", AGENT)
        )
        await asyncio.wait_for(ended[attempt].wait(), CALL_TIMEOUT_S)
        steps["setvar_events"] = projection(raw[attempt], attempt)
        steps["channels_after"] = _channels(await client.core_show_channels(), attempt)

    async def redirect_to_abandon() -> None:
        attempt = await call("20030", HOLDING)
        channel = await asyncio.wait_for(answered[attempt], CALL_TIMEOUT_S)
        steps["redirect"] = await _result(
            lambda: client.redirect(channel, "contactd-abandon", "s", 1)
        )
        await asyncio.wait_for(ended[attempt].wait(), CALL_TIMEOUT_S)
        steps["redirect_events"] = projection(raw[attempt], attempt)

    async def message_kept_in_astdb() -> None:
        started = datetime.now(UTC)
        attempt = await call(
            "20004", {"CONTACTD_AMD": "no", "CONTACTD_MODE": "message", "CONTACTD_MESSAGE": "beep"}
        )
        await asyncio.wait_for(ended[attempt].wait(), CALL_TIMEOUT_S)
        # The dialplan's family for the hour the message started (this call's, or the next).
        found_in = [f for f in message_families(started) if await _has(client, f, attempt)]
        key = {"Family": found_in[0] if found_in else message_families(started)[0],
               "Key": attempt}

        async def db_get() -> str:
            reply = await client.action({"Action": "DBGet", **key})
            found = [
                m.get("Val")
                for m in (reply if isinstance(reply, list) else [reply])
                if m.get("Event") == "DBGetResponse"
            ]
            return str(found[0]) if found else "(no DBGetResponse)"

        async def db_del() -> None:
            await client.action({"Action": "DBDel", **key}, as_list=False)

        steps["dbget"] = await _result(db_get)
        steps["dbdel"] = await _result(db_del)
        steps["dbget_after_del"] = await _result(db_get)
        steps["dbdel_again"] = await _result(db_del)

    async def outbound_ivr() -> None:
        """CONTACTD_MODE=ivr: the callee reaches the AudioSocket server named by the global
        CONTACTD_AUDIOSOCKET (set with a channel-less Setvar), the IVR sets the route and
        hangs up its side; the flow counts as run."""
        before = await client.getvar(None, "CONTACTD_AUDIOSOCKET")
        async with audiosocket_recorder() as rec:
            steps["setvar_global"] = await _result(
                lambda: client.setvar(None, "CONTACTD_AUDIOSOCKET", f"127.0.0.1:{rec.port}")
            )
            attempt = await call("20030", {"CONTACTD_AMD": "no", "CONTACTD_MODE": "ivr"})
            socket = await asyncio.wait_for(rec.connected.get(), CALL_TIMEOUT_S)
            ivr = await asyncio.wait_for(ivr_started[attempt], CALL_TIMEOUT_S)
            steps["ivr_session"] = await _result(
                lambda: client.getvar(str(ivr["Channel"]), "CONTACTD_SESSION")
            )
            steps["ivr_session"][1] = str(steps["ivr_session"][1] == str(ivr["Session"]))
            steps["setvar_route"] = await _result(
                lambda: client.setvar(str(ivr["Channel"]), "CONTACTD_ROUTE", "hangup")
            )
            assert socket.writer is not None
            socket.writer.close()  # the IVR hangs up its side
            await asyncio.wait_for(ended[attempt].wait(), CALL_TIMEOUT_S)
        await client.setvar(None, "CONTACTD_AUDIOSOCKET", before or "127.0.0.1:9092")
        steps["ivr_events"] = projection(raw[attempt], attempt)

    async def channel_gone() -> None:
        steps["setvar_gone"] = await _result(lambda: client.setvar(GONE, "X", "1"))
        steps["getvar_gone"] = await _result(lambda: client.getvar(GONE, "X"))
        steps["redirect_gone"] = await _result(
            lambda: client.redirect(GONE, "contactd-abandon", "s", 1)
        )
        steps["hangup_gone"] = await _result(lambda: client.hangup(GONE))

    async def queue_members() -> None:
        steps["queue_add"] = await _result(lambda: client.queue_add(QUEUE, MEMBER, paused=True))
        steps["queue_add_again"] = await _result(lambda: client.queue_add(QUEUE, MEMBER))
        steps["queue_unpause"] = await _result(
            lambda: client.queue_pause(MEMBER, False, queue=QUEUE)
        )
        steps["queue_pause_all"] = await _result(
            lambda: client.queue_pause(MEMBER, True, reason="break")
        )
        steps["queue_pause_stranger"] = await _result(
            lambda: client.queue_pause(GONE, True, queue=QUEUE)
        )
        steps["queue_remove"] = await _result(lambda: client.queue_remove(QUEUE, MEMBER))
        steps["queue_remove_again"] = await _result(lambda: client.queue_remove(QUEUE, MEMBER))

    started = time.monotonic()
    async with client:
        await client.wait_connected(10)
        await channel_gone()
        await queue_members()
        await asyncio.gather(
            connect_by_setvar(), redirect_to_abandon(), message_kept_in_astdb(), outbound_ivr()
        )
    steps["_seconds"] = round(time.monotonic() - started, 1)
    return steps
