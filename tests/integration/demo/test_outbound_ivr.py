"""An outbound ivr campaign's call on the demo PBX ([contactd-outbound] with CONTACTD_MODE=ivr
→ [contactd-ivr] → [contactd-route]): the answered callee reaches the AudioSocket server
named by [globals] CONTACTD_AUDIOSOCKET, listens and presses 1; whether the flow ran is the
attempt's result (ContactdMessage, AstDB), as extensions.conf says. A tiny AudioSocket server
stands in for contactd's IVR (tests/peers/asterisk.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from contactd.ami.client import AmiClient
from contactd.ami.errors import AmiActionFailed
from contactd.calls.service import message_families
from contactd.config import AmiSettings, DemoSettings
from contactd.demo.caller import FRAME_BYTES, KIND_AUDIO, message
from contactd.demo.pbx import DemoPbx
from tests.peers.asterisk import audiosocket_recorder
from tests.peers.ports import free_port

SECRET = "demo-outbound-ivr"
FAST = DemoSettings(amd_human_s=0.2, message_s=0.2, abandon_prompt_s=0.2, agent_wait_s=0.2)
PERSON = "Local/20030@contactd-test-world"  # answers, hangs up 30 s later
IVR = {"CONTACTD_MODE": "ivr", "CONTACTD_AMD": "no"}


async def _call(
    pbx: DemoPbx, events: list[Mapping[str, Any]], attempt: str, ended: asyncio.Event
) -> AmiClient:
    client = AmiClient(AmiSettings(port=pbx.port, secret=SECRET))

    def on_user_event(event: Mapping[str, Any]) -> None:
        if event.get("Attempt") == attempt:
            events.append(event)
            if event.get("UserEvent") == "ContactdHangup":
                ended.set()

    client.events.on("UserEvent", on_user_event)
    return client


async def _kept(client: AmiClient, attempt: str) -> str:
    for family in message_families(datetime.now(UTC) - timedelta(minutes=1)):
        try:
            reply = await client.action({"Action": "DBGet", "Family": family, "Key": attempt})
        except AmiActionFailed:
            continue
        return str(next(m.get("Val") for m in reply if m.get("Event") == "DBGetResponse"))
    raise AssertionError(f"no message status kept for {attempt}")


async def test_the_callee_talks_to_the_ivr_and_the_flow_counts_as_run() -> None:
    attempt, events, ended = str(uuid.uuid4()), [], asyncio.Event()
    async with DemoPbx(FAST, secret=SECRET) as pbx, audiosocket_recorder() as rec:
        pbx.globals["CONTACTD_AUDIOSOCKET"] = f"127.0.0.1:{rec.port}"
        client = await _call(pbx, events, attempt, ended)
        async with client:
            await client.wait_connected(10)
            await client.originate(attempt, PERSON, context="contactd-outbound", variables=IVR)
            call = await asyncio.wait_for(rec.connected.get(), 20)
            assert call.writer is not None
            prompt = message(KIND_AUDIO, b"\x10" * FRAME_BYTES) * 25  # half a second
            call.writer.write(prompt)
            assert await asyncio.wait_for(call.digits.get(), 20) == "1"  # after the prompt
            ivr = next(e for e in events if e["UserEvent"] == "ContactdIvr")
            await client.setvar(str(ivr["Channel"]), "CONTACTD_ROUTE", "hangup")
            call.writer.close()  # the IVR hangs up its side
            await asyncio.wait_for(ended.wait(), 20)
            kept = await _kept(client, attempt)
    assert str(call.session) == ivr["Session"]
    names = [e["UserEvent"] for e in events]
    assert names == [
        "ContactdAnswered",
        "ContactdIvr",
        "ContactdMessage",
        "ContactdRoute",
        "ContactdHangup",
    ]
    assert events[2]["Status"] == "SUCCESS" and events[3]["Route"] == "hangup"
    assert kept == "SUCCESS"


async def test_an_unreachable_ivr_fails_the_flow_and_routes_nowhere() -> None:
    attempt, events, ended = str(uuid.uuid4()), [], asyncio.Event()
    async with DemoPbx(FAST, secret=SECRET) as pbx:
        pbx.globals["CONTACTD_AUDIOSOCKET"] = f"127.0.0.1:{free_port()}"  # nobody listens
        client = await _call(pbx, events, attempt, ended)
        async with client:
            await client.wait_connected(10)
            await client.originate(attempt, PERSON, context="contactd-outbound", variables=IVR)
            await asyncio.wait_for(ended.wait(), 20)
            kept = await _kept(client, attempt)
    names = [e["UserEvent"] for e in events]
    assert names == ["ContactdAnswered", "ContactdIvr", "ContactdMessage", "ContactdHangup"]
    assert events[2]["Status"] == "FAILED"
    assert events[2]["Reason"] == "ivr flow did not run over AudioSocket"
    assert kept == "FAILED"
