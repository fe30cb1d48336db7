"""The Asterisk sandbox is a working peer: AMI, the production dialplan, AudioSocket (to a
test recorder, not contactd's IVR), restart."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from panoramisk import Manager

from tests.peers.asterisk import (
    BUSY,
    AmiEvents,
    AsteriskSandbox,
    agent,
    ami_connect,
    audiosocket_recorder,
    human,
    machine,
    originate_caller,
    originate_outbound,
    set_audiosocket,
    world_channel,
)
from tests.peers.tcpproxy import TcpProxy

pytestmark = pytest.mark.asterisk


async def test_ami_login_and_core_settings(ami: Manager) -> None:
    reply = await ami.send_action({"Action": "CoreSettings"})
    assert reply.response == "Success"
    assert reply["AsteriskVersion"].startswith("22.")


async def test_originate_busy_reports_reason_5_and_hangup_cause_17(ami: Manager) -> None:
    events = AmiEvents(ami, "Hangup")
    attempt = f"smoke-busy-{uuid.uuid4().hex[:8]}"
    replies = await ami.send_action(originate_outbound(BUSY, attempt))
    assert isinstance(replies, list)
    assert replies[0].response == "Success"
    response = next(m for m in replies if m.get("Event") == "OriginateResponse")
    assert response["Reason"] == "5"
    assert response["Response"] == "Failure"
    # The callee's half of the Local channel hangs up with Q.850 17 (user busy).
    hangup = await events.wait_for(
        lambda e: e["Channel"].startswith(f"Local/{BUSY}@") and e["Channel"].endswith(";2")
    )
    assert hangup["Cause"] == "17"


async def test_outbound_human_is_connected_to_the_agent_set_at_originate(ami: Manager) -> None:
    events = AmiEvents(ami, "UserEvent", "Hangup")
    attempt = f"smoke-human-{uuid.uuid4().hex[:8]}"
    action = originate_outbound(
        human(8), attempt, variables={"CONTACTD_AGENT": world_channel(agent(2))}
    )
    replies = await ami.send_action(action)
    response = next(m for m in replies if m.get("Event") == "OriginateResponse")
    assert response["Reason"] == "4"
    assert response["Response"] == "Success"

    await events.user_event("ContactdAnswered", Attempt=attempt)
    amd = await events.user_event("ContactdAMD", Attempt=attempt)
    assert amd["Status"] == "HUMAN"
    connect = await events.user_event("ContactdConnect", Attempt=attempt)
    assert connect["Agent"] == world_channel(agent(2))
    dial = await events.user_event("ContactdAgentDial", Attempt=attempt)
    assert dial["DialStatus"] == "ANSWER"
    await events.user_event("ContactdHangup", Attempt=attempt)
    assert not events.user_events("ContactdAbandon", Attempt=attempt)


async def test_outbound_machine_is_detected(ami: Manager) -> None:
    events = AmiEvents(ami, "UserEvent")
    attempt = f"smoke-machine-{uuid.uuid4().hex[:8]}"
    await ami.send_action(originate_outbound(machine(1), attempt))
    amd = await events.user_event("ContactdAMD", Attempt=attempt)
    assert amd["Status"] == "MACHINE"
    await events.user_event("ContactdHangup", Attempt=attempt)
    assert not events.user_events("ContactdConnect", Attempt=attempt)


async def test_outbound_human_without_agent_gets_the_abandon_message(ami: Manager) -> None:
    events = AmiEvents(ami, "UserEvent")
    attempt = f"smoke-abandon-{uuid.uuid4().hex[:8]}"
    await ami.send_action(originate_outbound(human(15), attempt))
    assert (await events.user_event("ContactdAMD", Attempt=attempt))["Status"] == "HUMAN"
    abandon = await events.user_event("ContactdAbandon", Attempt=attempt)
    assert abandon["Status"] == "SUCCESS"  # the identification message played in full
    hangup = await events.user_event("ContactdHangup", Attempt=attempt)
    assert hangup["Cause"] == "16"


async def test_audiosocket_receives_uuid_then_320_byte_audio_frames(ami: Manager) -> None:
    events = AmiEvents(ami, "UserEvent")
    async with audiosocket_recorder() as recorder:
        await set_audiosocket(ami, "127.0.0.1", recorder.port)
        await ami.send_action(
            originate_caller("5550001", "speak", prompt="hello-world", hold_s=1, delay_s=0.2)
        )
        call = await asyncio.wait_for(recorder.connected.get(), 10)
        await asyncio.wait_for(call.ended.wait(), 20)

    assert call.session is not None
    ivr = await events.user_event("ContactdIvr", Session=str(call.session))
    assert ivr["Dnis"] == "5550001"
    assert ivr["CallerNum"] == "5551234"
    assert len(call.audio_frames) >= 25  # > 0.5 s of the prompt
    sizes = [len(frame) for frame in call.audio_frames]
    # 20 ms frames; only the last frame of each played file is shorter (here: two files).
    assert sizes.count(320) >= len(sizes) - 2
    assert all(size % 2 == 0 and size <= 320 for size in sizes)
    assert any(frame != bytes(320) for frame in call.audio_frames)  # not just silence


async def test_audiosocket_receives_dtmf_and_the_ivr_route_is_honoured(ami: Manager) -> None:
    events = AmiEvents(ami, "UserEvent")
    async with audiosocket_recorder() as recorder:
        await set_audiosocket(ami, "127.0.0.1", recorder.port)
        await ami.send_action(originate_caller("5550002", "dtmf", dtmf="12#", hold_s=5))
        call = await asyncio.wait_for(recorder.connected.get(), 10)
        digits = [await asyncio.wait_for(call.digits.get(), 10) for _ in range(3)]
        assert "".join(digits) == "12#"
        # The IVR decides: route "hangup", set on the caller's channel, then closes the socket.
        ivr = await events.user_event("ContactdIvr", Session=str(call.session))
        reply = await ami.send_action(
            {
                "Action": "Setvar",
                "Channel": ivr["Channel"],
                "Variable": "CONTACTD_ROUTE",
                "Value": "hangup",
            }
        )
        assert reply.response == "Success"
        assert call.writer is not None
        call.writer.close()  # the IVR hangs up its side: AudioSocket() returns
        await asyncio.wait_for(call.ended.wait(), 10)
    route = await events.user_event("ContactdRoute", Session=str(call.session))
    assert route["Route"] == "hangup"


async def test_restart_then_login_again(asterisk: AsteriskSandbox) -> None:
    await asterisk.arestart()
    manager = await ami_connect(asterisk)
    try:
        reply = await manager.send_action({"Action": "CoreSettings"})
        assert reply.response == "Success"
    finally:
        manager.close()
    assert "fully booted" in (await asterisk.acli("core waitfullybooted"))


async def test_ami_proxy_drop_and_pause(asterisk: AsteriskSandbox, ami_proxy: TcpProxy) -> None:
    manager = await ami_connect(asterisk, port=ami_proxy.port)
    lost = asyncio.Event()
    manager.on_disconnect = lambda _manager, _exc: lost.set()
    try:
        await ami_proxy.pause()
        await ami_proxy.drop()
        await asyncio.wait_for(lost.wait(), 5)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", ami_proxy.port)
    finally:
        manager.close()
    await ami_proxy.resume()
    again = await ami_connect(asterisk, port=ami_proxy.port)
    try:
        assert (await again.send_action({"Action": "Ping"})).response == "Success"
    finally:
        again.close()
