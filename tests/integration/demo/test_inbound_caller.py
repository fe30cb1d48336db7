"""The demo PBX's simulated inbound caller against a tiny AudioSocket recorder standing in
for contactd's IVR server: the protocol as Asterisk speaks it (UUID first, 320-byte slin
frames every 20 ms, DTMF, close), espeak-ng speech in the audio, and the AMI side of the call
(ContactdIvr, the route the IVR set with Setvar in ContactdRoute, Hangup)."""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Mapping
from typing import Any

from contactd.ami.client import AmiClient
from contactd.config import AmiSettings, DemoSettings
from contactd.demo.caller import FRAME_BYTES, Turn
from contactd.demo.inbound import InboundTraffic
from contactd.demo.pbx import DemoPbx
from tests.peers.asterisk import audiosocket_recorder

SECRET = "demo-inbound"
WORDS = "I would like to pay my bill"


def _loud(frame: bytes) -> bool:
    samples = array("h")
    samples.frombytes(frame)
    return max(abs(s) for s in samples) > 1000


async def test_inbound_caller_speaks_keys_in_and_follows_the_ivr_route() -> None:
    user_events: list[Mapping[str, Any]] = []
    hangups: list[Mapping[str, Any]] = []
    ivr_started: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()

    def on_user_event(event: Mapping[str, Any]) -> None:
        user_events.append(event)
        if event.get("UserEvent") == "ContactdIvr":
            ivr_started.put_nowait(event)

    async with DemoPbx(DemoSettings(), secret=SECRET) as pbx, audiosocket_recorder() as rec:
        client = AmiClient(AmiSettings(port=pbx.port, secret=SECRET))
        client.events.on("UserEvent", on_user_event)
        client.events.on("Hangup", hangups.append)
        async with client:
            await client.wait_connected(10)
            caller = asyncio.create_task(pbx.inbound_call(
                dnis="5550100", caller_num="+15551234567", audiosocket=("127.0.0.1", rec.port),
                turns=[Turn(text=WORDS), Turn(dtmf="12#")],
            ))
            ivr = await asyncio.wait_for(ivr_started.get(), 10)
            call = await asyncio.wait_for(rec.connected.get(), 10)
            # The stand-in IVR: waits for '#', decides the route, hangs up its side.
            while (await asyncio.wait_for(call.digits.get(), 30)) != "#":
                pass
            await client.setvar(str(ivr["Channel"]), "CONTACTD_ROUTE", "hangup")
            assert call.writer is not None
            call.writer.close()
            report = await asyncio.wait_for(caller, 30)

    assert call.session == report.session
    assert str(call.session) == ivr["Session"]
    assert ivr["Dnis"] == "5550100" and ivr["CallerNum"] == "+15551234567"
    assert call.dtmf == "12#" == report.digits_sent
    assert call.audio_frames and all(len(f) == FRAME_BYTES for f in call.audio_frames)
    # "I would like to pay my bill" lasts well over a second in espeak-ng's voice.
    assert sum(1 for f in call.audio_frames if _loud(f)) > 50
    assert report.hung_up_by_ivr
    names = [e["UserEvent"] for e in user_events if e.get("Session") == ivr["Session"]]
    assert names == ["ContactdIvr", "ContactdRoute", "ContactdHangup"]
    route = next(e for e in user_events if e["UserEvent"] == "ContactdRoute")
    assert route["Route"] == "hangup"
    assert [h["Cause"] for h in hangups if h["Channel"] == ivr["Channel"]] == ["16"]


async def test_inbound_traffic_keeps_ringing_the_ivr_until_closed() -> None:
    settings = DemoSettings(inbound_per_minute=600.0)
    async with DemoPbx(settings, secret=SECRET) as pbx, audiosocket_recorder() as rec:
        async with InboundTraffic(pbx, ("127.0.0.1", rec.port), ["+15551112222"]):
            first = await asyncio.wait_for(rec.connected.get(), 10)
            second = await asyncio.wait_for(rec.connected.get(), 10)
        assert pbx.stats.live == 0  # closing the traffic ended every call it placed
    assert first.session is not None and second.session is not None
    assert first.session != second.session
