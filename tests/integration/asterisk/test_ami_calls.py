"""The AMI layer against the real Asterisk 22 sandbox: outcomes, load, faults, actions.

Each test runs contactd's AmiClient + CallService on a fresh database; the sandbox's
simulated world (tests/peers/asterisk.py) plays busy, unallocated, machines and people.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from panoramisk import Manager
from panoramisk.actions import Action

from contactd.ami.client import AmiClient, LinkState
from contactd.ami.errors import AmiActionFailed, AmiUnavailable
from contactd.calls.errors import OriginateRejected, OriginateUncertain
from contactd.calls.events import (
    AnsweredBy,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallEvent,
    CallRinging,
)
from contactd.calls.service import CallService, OriginateRequest
from contactd.config import AmiSettings
from contactd.db.session import Database
from contactd.enums import AttemptState, CallOutcome
from contactd.events import EventBus
from tests.peers.asterisk import (
    BUSY,
    CONGESTION,
    NO_ANSWER,
    OUTBOUND_CONTEXT,
    UNALLOCATED,
    AmiEvents,
    AsteriskSandbox,
    agent,
    human,
    machine,
    world_channel,
)
from tests.peers.tcpproxy import TcpProxy

pytestmark = pytest.mark.asterisk
OC = CallOutcome
MESSAGE = {"CONTACTD_MODE": "message", "CONTACTD_MESSAGE": "beep"}
# Our side stays on the line 10 s: the callee decides when the call ends.
STAY = {"CONTACTD_MODE": "message", "CONTACTD_MESSAGE": "silence/10"}


@dataclass
class Harness:
    ami: AmiClient
    calls: CallService
    events: list[CallEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, event: CallEvent) -> None:
        self.events.append(event)
        self.changed.set()

    def of(self, attempt_id: str) -> list[CallEvent]:
        return [e for e in self.events if e.attempt_id == attempt_id]

    def ended(self, attempt_id: str) -> list[CallEnded]:
        return [e for e in self.of(attempt_id) if isinstance(e, CallEnded)]

    async def wait_until(self, predicate: Any, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def wait_ended(self, ids: list[str], timeout_s: float = 30.0) -> None:
        await self.wait_until(lambda: all(self.ended(i) for i in ids), timeout_s)

    async def wait_reconnected(self, epoch: int, timeout_s: float = 30.0) -> None:
        await self.calls.wait_reconciled(epoch, timeout_s)


@asynccontextmanager
async def running(
    db: Database, sandbox: AsteriskSandbox, port: int | None = None
) -> AsyncIterator[Harness]:
    settings = sandbox.ami_settings(port)
    bus = EventBus()
    ami = AmiClient(settings)
    calls = CallService(db, bus, ami)  # subscribes first: the login filter follows it
    async with ami, calls:
        harness = Harness(ami, calls)
        bus.subscribe(CallEvent, harness.on_event)
        await ami.wait_connected(20)
        yield harness
        await calls.drain()


def request(
    number: str,
    *,
    amd: bool = True,
    ring_s: float = 20.0,
    variables: dict[str, str] | None = None,
) -> OriginateRequest:
    return OriginateRequest(
        phone_e164="+15550100",
        dial=world_channel(number),
        context=OUTBOUND_CONTEXT,
        ring_timeout_s=ring_s,
        detect_machine=amd,
        variables=variables or MESSAGE,
    )


def shape(events: list[CallEvent]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, CallAnswered):
            out.append(("answered", e.answered_by))
        elif isinstance(e, CallBridged):
            out.append(("bridged", e.agent_interface))
        elif isinstance(e, CallEnded):
            out.append(("ended", e.outcome, e.cause))
        elif isinstance(e, CallRinging):
            out.append(("ringing",))
        else:
            out.append((type(e).__name__,))
    return out


async def test_each_originate_outcome(db: Database, asterisk: AsteriskSandbox) -> None:
    scenarios: dict[str, tuple[OriginateRequest, list[tuple[Any, ...]]]] = {
        "human": (request(human(4)), [("answered", AnsweredBy.HUMAN), ("ended", OC.HUMAN, 16)]),
        "busy": (request(BUSY), [("ended", OC.BUSY, 17)]),
        "no_answer": (request(NO_ANSWER, ring_s=2), [("ringing",), ("ended", OC.NO_ANSWER, 19)]),
        "unallocated": (request(UNALLOCATED), [("ended", OC.UNALLOCATED, 1)]),
        "congestion": (request(CONGESTION), [("ended", OC.CONGESTION, 34)]),
        "machine": (
            request(machine(3)),
            [("answered", AnsweredBy.MACHINE), ("ended", OC.MACHINE, 16)],
        ),
        "bridged": (
            request(
                human(0),
                variables={"CONTACTD_MODE": "agent", "CONTACTD_AGENT": world_channel(agent(2))},
            ),
            [
                ("answered", AnsweredBy.HUMAN),
                ("bridged", world_channel(agent(2))),
                ("ended", OC.HUMAN, 16),
            ],
        ),
    }
    async with running(db, asterisk) as h:
        ids = {name: await h.calls.originate(req) for name, (req, _) in scenarios.items()}
        await h.wait_ended(list(ids.values()), timeout_s=40)
        await h.calls.drain()
        for name, (_req, expected) in scenarios.items():
            assert shape(h.of(ids[name])) == [("CallDialing",), *expected], name
            row = await h.calls.repo.get(ids[name])
            assert row is not None and row.state is AttemptState.ENDED
            assert (row.outcome, row.hangup_cause) == expected[-1][1:], name
        # Asterisk sent only the subscribed events (the per-session filter works)
        assert set(h.ami.events.unhandled) <= {"FullyBooted"}, h.ami.events.unhandled
        human_row = await h.calls.repo.get(ids["human"])
        assert human_row is not None and human_row.amd_status == "HUMAN"
        assert human_row.talk_s is not None and human_row.talk_s > 1


async def test_200_concurrent_originations_all_accounted_for(
    db: Database, asterisk: AsteriskSandbox
) -> None:
    numbers = [human(1), BUSY, CONGESTION, UNALLOCATED] * 50
    expected = {
        human(1): OC.HUMAN,
        BUSY: OC.BUSY,
        CONGESTION: OC.CONGESTION,
        UNALLOCATED: OC.UNALLOCATED,
    }
    async with running(db, asterisk) as h:
        ids = await asyncio.gather(*(h.calls.originate(request(n, amd=False)) for n in numbers))
        assert len(set(ids)) == 200
        await h.wait_ended(list(ids), timeout_s=60)
        await h.calls.drain()
        for number, attempt_id in zip(numbers, ids, strict=True):
            ends = h.ended(attempt_id)
            assert len(ends) == 1 and ends[0].outcome is expected[number]
        counts = await h.calls.repo.count_by_state()
        assert counts == {AttemptState.ENDED: 200}
        assert h.calls.in_flight == 0
        live = await h.ami.core_show_channels()
        assert not [c for c in live if c.get("Linkedid") in set(ids)]


async def test_asterisk_restart_mid_call(db: Database, asterisk: AsteriskSandbox) -> None:
    async with running(db, asterisk) as h:
        ids = [
            await h.calls.originate(request(human(0), amd=False, variables=STAY)) for _ in range(8)
        ]
        await h.wait_until(lambda: all(len(h.of(i)) >= 2 for i in ids), 20)  # all answered
        epoch = h.ami.epoch
        await asterisk.arestart()
        await h.wait_reconnected(epoch, timeout_s=60)
        await h.wait_ended(ids, timeout_s=20)
        await h.calls.drain()
        for attempt_id in ids:
            assert len(h.ended(attempt_id)) == 1  # ended once, by events or by reconciliation
        assert await h.calls.repo.open_attempts() == []
        live = await h.ami.core_show_channels()
        assert not [c for c in live if c.get("Linkedid") in set(ids)]  # nothing re-dialed


async def test_ami_link_dropped_calls_still_up_are_resumed(
    db: Database, asterisk: AsteriskSandbox, ami_proxy: TcpProxy, ami: Manager
) -> None:
    # Its own link sees every Hangup: once, a resumed call ended with cause 0 where 16 was
    # expected (issue 20); if it happens again, the raw events are in the failure message.
    observer = AmiEvents(ami, "Hangup", "SoftHangupRequest", "HangupRequest")
    async with running(db, asterisk, ami_proxy.port) as h:
        # callees hang up ~8 s after answering, well after the link is back
        ids = [
            await h.calls.originate(request(human(8), amd=False, variables=STAY)) for _ in range(6)
        ]
        await h.wait_until(lambda: all(len(h.of(i)) >= 2 for i in ids), 20)
        epoch = h.ami.epoch
        await ami_proxy.drop()
        await h.wait_reconnected(epoch)
        report = h.calls.last_reconcile
        assert report is not None and sorted(report.resumed) == sorted(ids)
        await h.wait_ended(ids, timeout_s=20)
        for attempt_id in ids:
            ends = h.ended(attempt_id)
            raw = [dict(e) for e in observer.seen if attempt_id in (
                e.get("Uniqueid"), e.get("Linkedid"))]
            assert [(e.outcome, e.cause, e.lost) for e in ends] == [(OC.HUMAN, 16, False)], raw
        await h.calls.drain()
        assert await h.calls.repo.open_attempts() == []


async def test_calls_gone_during_an_outage_end_from_what_asterisk_kept(
    db: Database, asterisk: AsteriskSandbox, ami_proxy: TcpProxy, ami: Manager
) -> None:
    """Their end was never seen (lost=True), but AstDB kept that the message had started
    playing: a person heard it, HUMAN (not LOST, which would dial them again)."""
    observer = AmiEvents(ami, "UserEvent")  # a link of its own: it sees the calls end
    async with running(db, asterisk, ami_proxy.port) as h:
        # callees hang up ~4.5 s after answering (hello-world, silence/3), during the outage
        ids = [
            await h.calls.originate(request(human(4), amd=False, variables=STAY)) for _ in range(5)
        ]
        await h.wait_until(lambda: all(len(h.of(i)) >= 2 for i in ids), 20)
        epoch = h.ami.epoch
        await ami_proxy.pause()  # no reconnect until the calls are over
        await ami_proxy.drop()
        assert h.ami.health.state is not LinkState.CONNECTED or h.ami.epoch == epoch
        for attempt_id in ids:  # the calls end, unseen by the service
            await observer.user_event("ContactdHangup", timeout_s=20, Attempt=attempt_id)
        await ami_proxy.resume()
        await h.wait_reconnected(epoch)
        await h.calls.drain()
        for attempt_id in ids:
            ended = h.ended(attempt_id)
            assert [(e.outcome, e.lost, e.message_status) for e in ended] == [
                (OC.HUMAN, True, "STARTED")]
            # Its talk time is unknown (0), not the time until the reconnect.
            assert ended[0].talk_s < 4.5
            row = await h.calls.repo.get(attempt_id)
            assert row is not None and (row.state, row.outcome) == (AttemptState.ENDED, OC.HUMAN)


async def test_drop_between_originate_and_response_never_dials_twice(
    db: Database, asterisk: AsteriskSandbox, ami_proxy: TcpProxy, ami: Manager
) -> None:
    observer = AmiEvents(ami, "Newchannel")
    async with running(db, asterisk, ami_proxy.port) as h:
        epoch = h.ami.epoch
        # The link's own reconciliation (CoreShowChannels) must be over: the drop below waits
        # for an action in flight, and that must be one of the Originates.
        await h.calls.wait_reconciled(epoch - 1, 10)
        # Busy callees end at once: a re-sent Originate would show as a second Newchannel.
        tasks = [
            asyncio.create_task(h.calls.originate(request(BUSY, amd=False))) for _ in range(30)
        ]
        async with asyncio.timeout(10):
            # One loop tick at a time on purpose: drop in the tick right after the write.
            while h.ami.pending_actions == 0:  # noqa: ASYNC110
                await asyncio.sleep(0)
        links_before_drop = ami_proxy.accepted
        await ami_proxy.drop()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        uncertain = [r for r in results if isinstance(r, OriginateUncertain)]
        assert uncertain, "the drop must catch Originates in flight"
        # A re-sent Originate leaves on the new link right after its login, before the
        # reconciliation this waits for; the wire (read below) shows it whenever it left.
        await h.wait_reconnected(epoch)
        await h.calls.drain()
        rows = await h.calls.repo.open_attempts()
        assert rows == []
        attempt_ids = [
            r if isinstance(r, str) else str(r.details["attempt_id"])
            for r in results
            if isinstance(r, str | OriginateUncertain | OriginateRejected)
        ]
        assert len(attempt_ids) == len(results)
        per_attempt = Counter(str(e.get("Uniqueid")) for e in observer.seen)
        for attempt_id in attempt_ids:
            assert per_attempt[attempt_id] <= 1, "an attempt was dialed twice"
            assert len(h.ended(attempt_id)) == 1
    # The service is closed: everything it wrote is on the record. No Originate went out
    # again on a link opened after the drop.
    originate = re.compile(rb"(?im)^action:\s*originate\s*$")
    # The pattern finds an Originate as panoramisk writes it (those in flight at the drop may
    # not have reached the proxy, so the first link's record cannot serve as the check).
    assert originate.search(str(Action({"Action": "Originate"})).encode())
    after_drop = b"".join(ami_proxy.sent[links_before_drop:])
    assert re.search(rb"(?im)^action:\s*login\s*$", after_drop), "no reconnect through the proxy"
    assert not originate.search(after_drop), "an Originate was sent again after the drop"


async def test_channel_and_queue_actions(db: Database, asterisk: AsteriskSandbox) -> None:
    async with running(db, asterisk) as h:
        attempt_id = await h.calls.originate(request(human(0), amd=False, variables=STAY))
        await h.wait_until(lambda: len(h.of(attempt_id)) >= 2, 20)
        channel = h.calls.channel_of(attempt_id)
        assert channel is not None
        await h.ami.setvar(channel, "CONTACTD_NOTE", "é-ok")
        assert await h.ami.getvar(channel, "CONTACTD_NOTE") == "é-ok"
        await h.ami.redirect(channel, "contactd-abandon", "s")  # plays, then hangs up
        await h.wait_ended([attempt_id], timeout_s=20)
        with pytest.raises(AmiActionFailed):
            await h.ami.hangup(channel)  # gone already
        await h.ami.queue_add("contactd", "Local/7001@contactd-test-world", member_name="A1")
        await h.ami.queue_pause(
            "Local/7001@contactd-test-world", True, queue="contactd", reason="lunch"
        )
        await h.ami.queue_remove("contactd", "Local/7001@contactd-test-world")
        with pytest.raises(AmiActionFailed):
            await h.ami.queue_remove("contactd", "Local/7001@contactd-test-world")
        # The shipped manager.conf grants no `command` right (it would allow any CLI command,
        # `core stop now` included): the action must fail cleanly, not hang or crash.
        with pytest.raises(AmiActionFailed, match="ermission"):
            await h.ami.command("core show uptime")


async def test_wrong_secret_is_refused_and_never_logged(
    asterisk: AsteriskSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-secret-4711"
    settings = AmiSettings(
        port=asterisk.ami_port, secret=wrong, reconnect_min_s=0.2, reconnect_max_s=0.5
    )
    with caplog.at_level(logging.DEBUG):
        async with AmiClient(settings) as ami:
            with pytest.raises(AmiUnavailable):
                await ami.wait_connected(2.0)
            assert ami.health.state is LinkState.DOWN
            assert "login refused" in ami.health.detail
    refused = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert refused and "login refused" in refused[0].getMessage()
    assert "ami.secret" in refused[0].getMessage() and "manager.conf" in refused[0].getMessage()
    assert wrong not in caplog.text
    assert asterisk.ami_secret not in caplog.text


async def test_unresponsive_asterisk_is_detected_by_ping(asterisk: AsteriskSandbox) -> None:
    """A frozen Asterisk keeps the TCP link up; only the Ping timeout can notice it."""
    match = re.search(r"pid=(\d+)", asterisk.run("status"))
    assert match is not None
    pid = int(match.group(1))
    # Faster pings and a shorter action timeout than the sandbox's test settings.
    settings = asterisk.ami_settings().model_copy(
        update={"ping_interval_s": 0.3, "action_timeout_s": 1.0, "reconnect_max_s": 0.5}
    )
    async with AmiClient(settings) as ami:
        await ami.wait_connected(20)
        epoch = ami.epoch
        os.kill(pid, signal.SIGSTOP)
        try:
            async with asyncio.timeout(10):
                while ami.connected:  # noqa: ASYNC110 - the client has no "lost" event to await
                    await asyncio.sleep(0.05)
            assert ami.health.state is LinkState.RECONNECTING
        finally:
            os.kill(pid, signal.SIGCONT)
        await ami.wait_connected(30)
        assert ami.epoch > epoch and ami.health.connects >= 2
        await ami.ping()
