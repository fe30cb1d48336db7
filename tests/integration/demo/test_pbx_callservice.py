"""contactd's CallService (and the dialer's SetvarConnector) against the demo PBX, through
the normal AMI client: the agent hand-off by Setvar, CoreShowChannels for reconciliation,
hanging up an attempt, and a queue member taking a call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contactd.ami.client import AmiClient
from contactd.calls.events import AnsweredBy, CallAnswered, CallBridged, CallEnded, CallEvent
from contactd.calls.service import CallService, OriginateRequest
from contactd.config import AmiSettings, DemoSettings
from contactd.db.session import Database
from contactd.demo.pbx import DemoPbx
from contactd.dialer.connect import SetvarConnector
from contactd.enums import CallOutcome
from contactd.events import EventBus

SECRET = "demo-calls"
WORLD = "contactd-test-world"
# Fast, for tests: AMD in 0.3 s, the agent waited for 2 s as the dialplan does.
FAST = DemoSettings(amd_human_s=0.3, amd_machine_s=0.3, message_s=0.3, abandon_prompt_s=0.3)


class Calls:
    def __init__(self, service: CallService, bus: EventBus) -> None:
        self.service = service
        self.events: dict[str, list[CallEvent]] = {}
        self._waiters: list[tuple[type[CallEvent], str, asyncio.Future[CallEvent]]] = []
        for kind in (CallAnswered, CallBridged, CallEnded):
            bus.subscribe(kind, self._on)

    async def _on(self, event: Any) -> None:
        self.events.setdefault(event.attempt_id, []).append(event)
        for kind, attempt, future in self._waiters:
            if isinstance(event, kind) and event.attempt_id == attempt and not future.done():
                future.set_result(event)

    async def wait(self, kind: type[CallEvent], attempt: str, timeout_s: float = 10) -> Any:
        for event in self.events.get(attempt, []):
            if isinstance(event, kind):
                return event
        future: asyncio.Future[CallEvent] = asyncio.get_running_loop().create_future()
        self._waiters.append((kind, attempt, future))
        return await asyncio.wait_for(future, timeout_s)


@pytest.fixture
async def calls(db: Database) -> AsyncIterator[tuple[Calls, DemoPbx]]:
    async with DemoPbx(FAST, secret=SECRET) as pbx:
        ami = AmiClient(AmiSettings(port=pbx.port, secret=SECRET, ping_interval_s=1.0))
        bus = EventBus()
        service = CallService(db, bus, ami)
        recorder = Calls(service, bus)
        async with ami, service:
            await ami.wait_connected(10)
            yield recorder, pbx


def _person(hold_s: int, **variables: str) -> OriginateRequest:
    return OriginateRequest(phone_e164="+15550001111", dial=f"Local/200{hold_s:02d}@{WORLD}",
                            variables=variables)


async def test_setvar_hands_the_answered_person_to_an_agent(
    calls: tuple[Calls, DemoPbx],
) -> None:
    recorder, _pbx = calls
    attempt = await recorder.service.originate(_person(5, CONTACTD_MODE="agent"))
    answered = await recorder.wait(CallAnswered, attempt)
    assert answered.answered_by is AnsweredBy.HUMAN
    await SetvarConnector(recorder.service).connect(attempt, "PJSIP/anna")
    bridged = await recorder.wait(CallBridged, attempt)
    assert bridged.agent_interface == "PJSIP/anna"
    ended = await recorder.wait(CallEnded, attempt)
    assert ended.outcome is CallOutcome.HUMAN and ended.cause == 16


async def test_core_show_channels_lists_a_live_call_and_hangup_ends_it(
    calls: tuple[Calls, DemoPbx],
) -> None:
    recorder, _pbx = calls
    attempt = await recorder.service.originate(
        _person(0, CONTACTD_MODE="message", CONTACTD_MESSAGE="demo-message"))
    await recorder.wait(CallAnswered, attempt)
    live = await recorder.service.ami.core_show_channels()
    mine = [c for c in live if c["Linkedid"] == attempt]
    assert {c["Uniqueid"] for c in mine} == {attempt, attempt + "-2"}
    assert all(c["ChannelState"] == "6" for c in mine)
    await recorder.service.hangup(attempt, cause=16)
    ended = await recorder.wait(CallEnded, attempt)
    assert ended.outcome is CallOutcome.HUMAN
    assert not [c for c in await recorder.service.ami.core_show_channels()
                if c["Linkedid"] == attempt]


async def test_a_free_queue_member_takes_the_call(calls: tuple[Calls, DemoPbx]) -> None:
    recorder, _pbx = calls
    await recorder.service.ami.queue_add("sales", "PJSIP/tom")
    attempt = await recorder.service.originate(
        _person(4, CONTACTD_MODE="queue", CONTACTD_QUEUE="sales"))
    bridged = await recorder.wait(CallBridged, attempt)
    assert bridged.agent_interface == "PJSIP/tom"
    await recorder.wait(CallEnded, attempt)
