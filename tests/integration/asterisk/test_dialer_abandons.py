"""Abandons Asterisk decides reach the dialer's books, against the real Asterisk sandbox.

The production path: DialerService → CallService → Asterisk (contactd-outbound: AMD, then the
queue or the agent hand-off; contactd-abandon: identification message, UserEvent
ContactdAbandon) → CallAbandoned on the bus → LiveAnswer row, governor, agent board, lead.
(a) a queue with nobody in it times out: abandoned; (b) a queue member answers: connected;
(c) the agent handed the call does not answer: abandoned, and the agent is free again;
(d) the person hangs up during the identification message (no ContactdAbandon): abandoned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from contactd.ami.client import AmiClient
from contactd.calls.events import CallAbandoned, CallBridged, CallEnded, CallEvent
from contactd.calls.service import CallService, OriginateRequest
from contactd.config import Settings, load_settings
from contactd.db.models.dialer import Campaign, Lead, LiveAnswer
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard, AgentState
from contactd.dialer.connect import SetvarConnector
from contactd.dialer.governor import AbandonGovernor
from contactd.dialer.pacing import PredictivePacer
from contactd.dialer.recovery import seed_governor
from contactd.dialer.service import DialerService
from contactd.dialer.stats import CampaignStats, campaign_stats
from contactd.enums import CallOutcome, CampaignMode, CampaignStatus, LeadStatus
from contactd.events import EventBus
from tests.peers.asterisk import (
    AGENT_NO_ANSWER,
    WORLD_TRUNK_TEMPLATE,
    AsteriskSandbox,
    agent,
    human,
    human_hangup,
    world_channel,
    world_e164,
)

pytestmark = pytest.mark.asterisk

QUEUE = "contactd"  # asterisk-config/queues.conf; members are added at run time only
SETTLE_S = 45.0


@dataclass
class ShortAgentRing:
    """Originates through the real CallService with extra channel variables: the dialplan
    reads CONTACTD_AGENT_RING_S from the channel before the global (15 s), keeping (c) short."""

    calls: CallService
    variables: Mapping[str, str]

    @property
    def connected(self) -> bool:
        return self.calls.connected

    async def originate(self, request: OriginateRequest) -> str:
        merged = {**request.variables, **self.variables}
        return await self.calls.originate(replace(request, variables=merged))


@dataclass
class Run:
    """What one campaign call left behind."""

    events: list[CallEvent] = field(default_factory=list)
    user_events: list[tuple[str, str]] = field(default_factory=list)  # (name, DialStatus)
    agent_at_abandon: tuple[AgentState, str | None] | None = None
    lead: Lead | None = None
    live: list[LiveAnswer] = field(default_factory=list)
    stats: CampaignStats | None = None
    governor: list[tuple[int, int]] | None = None
    rebuilt: list[tuple[int, int]] | None = None

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_DIALER__WINDOW_START": "00:00:00",
        "CONTACTD_DIALER__WINDOW_END": "23:59:59",
        "CONTACTD_DIALER__RING_TIMEOUT_S": "15",
        "CONTACTD_DIALER__PACING_TICK_S": "0.2",
        # The lead's number is played by the sandbox's world, the trunk of this contactd.
        "CONTACTD_ASTERISK__TRUNK_DIAL_TEMPLATE": WORLD_TRUNK_TEMPLATE,
    })


def windows(governor: AbandonGovernor) -> list[tuple[int, int]]:
    now = datetime.now(UTC).timestamp()
    return [(w.live, w.abandoned) for w in (governor.window(now, s) for s in governor.windows_s)]


@asynccontextmanager
async def call_stack(
    sandbox: AsteriskSandbox, db: Database, settings: Settings
) -> AsyncIterator[tuple[EventBus, CallService]]:
    bus = EventBus()
    ami = AmiClient(sandbox.ami_settings())
    calls = CallService(db, bus, ami, settings.asterisk)
    async with ami, calls:
        await ami.wait_connected(20)
        yield bus, calls
        await calls.drain()


async def campaign_call(
    db: Database,
    sandbox: AsteriskSandbox,
    tmp_path: Path,
    *,
    mode: CampaignMode,
    queue: str | None,
    agent_dial: str,
    queue_member: str | None = None,
    variables: Mapping[str, str] | None = None,
    callee: str = human(20),
) -> Run:
    """One lead (by default a person who stays on the line 20 s) in a running campaign, one
    agent on the board; returns once the dialer has settled the lead."""
    settings = settings_for(tmp_path)
    async with db.transaction() as session:
        campaign = Campaign(name="abandons", mode=mode, caller_id="Acme <5550100>",
                            agent_queue=queue, max_attempts=3, max_concurrent=1)
        session.add(campaign)
        await session.flush()
        session.add(Lead(campaign_id=campaign.id, phone_e164=world_e164(callee)))
        campaign_id = campaign.id
    run = Run()
    board = AgentBoard(auto_ready_s=0.5)
    async with call_stack(sandbox, db, settings) as (bus, calls):
        # The call layer already asks Asterisk for UserEvents: listen along, for the record.
        calls.ami.events.on("UserEvent", lambda e: run.user_events.append(
            (str(e.get("UserEvent")), str(e.get("DialStatus", "")))))
        if queue_member is not None:
            await calls.ami.queue_add(QUEUE, queue_member, member_name="e2e")
        try:
            dialer = DialerService(db, bus, settings, ShortAgentRing(calls, variables or {}),
                                   agents=board, connector=SetvarConnector(calls))
            ended = asyncio.Event()

            def seen(event: CallEvent) -> None:
                # Subscribed on the base class: runs after the dialer's own handlers.
                run.events.append(event)
                if isinstance(event, CallAbandoned):
                    a1 = board.agents["a1"]
                    run.agent_at_abandon = (a1.state, a1.attempt_id)
                if isinstance(event, CallEnded):
                    ended.set()

            async with dialer:
                bus.subscribe(CallEvent, seen)
                board.login("a1", agent_dial, campaign_id, dialer.clock())
                assert await dialer.start("abandons") is CampaignStatus.RUNNING
                try:
                    async with asyncio.timeout(SETTLE_S):
                        await ended.wait()
                except TimeoutError:
                    pytest.fail(f"no CallEnded within {SETTLE_S} s: {run.kinds()}")
                await dialer.stop("abandons")
                rt = dialer.runtime_of(campaign_id)
                assert rt is not None
                pacer = rt.pacer
                if isinstance(pacer, PredictivePacer):
                    run.governor = windows(pacer.governor)
                    rebuilt = AbandonGovernor(windows_s=pacer.governor.windows_s)
                    await seed_governor(db, campaign_id, rebuilt)
                    run.rebuilt = windows(rebuilt)
        finally:
            if queue_member is not None:
                await calls.ami.queue_remove(QUEUE, queue_member)
    async with db.session() as session:
        run.lead = (await session.execute(select(Lead))).scalar_one()
        run.live = list((await session.execute(select(LiveAnswer))).scalars())
        run.stats = await campaign_stats(session, campaign_id)
    return run


def assert_abandoned(run: Run, *, heard: bool = True) -> None:
    assert run.lead is not None and run.stats is not None
    last = ["CallAbandoned", "CallEnded"] if heard else ["CallAnswered", "CallEnded"]
    assert run.kinds()[-2:] == last, run.kinds()
    ended = run.events[-1]
    # The call layer reports the line (a person, normal clearing); the dialer the abandon.
    assert isinstance(ended, CallEnded) and ended.outcome is CallOutcome.HUMAN
    assert (run.lead.status, run.lead.last_outcome) == (LeadStatus.RETRY, CallOutcome.ABANDONED)
    # The abandon retry rule (3 days by default) applies.
    assert run.lead.next_attempt_at is not None
    assert run.lead.next_attempt_at > datetime.now(UTC) + timedelta(hours=71)
    assert [(a.attempt_id, a.abandoned) for a in run.live] == [(ended.attempt_id, True)]
    assert (run.stats.humans, run.stats.abandons, run.stats.abandon_rate) == (1, 1, 1.0)


@pytest.mark.parametrize("mode", [CampaignMode.PREDICTIVE, CampaignMode.PROGRESSIVE])
async def test_queue_without_members_abandons(
    db: Database, asterisk: AsteriskSandbox, tmp_path: Path, mode: CampaignMode
) -> None:
    assert "No Members" in await asterisk.acli(f"queue show {QUEUE}")
    run = await campaign_call(db, asterisk, tmp_path, mode=mode, queue=QUEUE,
                              agent_dial=world_channel(agent(5)))
    assert_abandoned(run)
    abandon = next(e for e in run.events if isinstance(e, CallAbandoned))
    assert abandon.prompt_status == "SUCCESS"  # the identification message was played
    assert "ContactdConnect" not in [name for name, _ in run.user_events]
    if mode is CampaignMode.PREDICTIVE:
        # One live answer, one abandon - counted connected at answer, amended, not doubled -
        # and the same counts when rebuilt from the stored rows after a restart.
        assert run.governor == [(1, 1), (1, 1)]
        assert run.rebuilt == run.governor


async def test_queue_member_answers_and_is_connected(
    db: Database, asterisk: AsteriskSandbox, tmp_path: Path
) -> None:
    member = world_channel(agent(3))
    run = await campaign_call(db, asterisk, tmp_path, mode=CampaignMode.PREDICTIVE,
                              queue=QUEUE, agent_dial=member, queue_member=member)
    assert run.lead is not None and run.stats is not None
    assert "CallAbandoned" not in run.kinds(), run.kinds()
    bridged = next(e for e in run.events if isinstance(e, CallBridged))
    assert bridged.agent_interface == member
    assert (run.lead.status, run.lead.last_outcome) == (LeadStatus.DONE, CallOutcome.HUMAN)
    assert [a.abandoned for a in run.live] == [False]
    assert (run.stats.humans, run.stats.abandons) == (1, 0)
    assert run.governor == run.rebuilt == [(1, 0), (1, 0)]
    assert "No Members" in await asterisk.acli(f"queue show {QUEUE}")


async def test_agent_who_does_not_answer_abandons_and_is_freed(
    db: Database, asterisk: AsteriskSandbox, tmp_path: Path
) -> None:
    run = await campaign_call(db, asterisk, tmp_path, mode=CampaignMode.PREDICTIVE, queue=None,
                              agent_dial=world_channel(AGENT_NO_ANSWER),
                              variables={"CONTACTD_AGENT_RING_S": "3"})
    assert_abandoned(run)
    assert "CallBridged" not in run.kinds()
    # Handed to the agent in time; the agent's phone rang out; then the abandon.
    names = [name for name, _ in run.user_events]
    assert names.index("ContactdConnect") < names.index("ContactdAbandon")
    assert ("ContactdAgentDial", "NOANSWER") in run.user_events
    # Released when the abandon was heard (the person was still on the line).
    assert run.agent_at_abandon is not None
    state, attempt = run.agent_at_abandon
    assert state is not AgentState.TALKING and attempt is None
    assert run.governor == run.rebuilt == [(1, 1), (1, 1)]


async def test_person_hanging_up_during_the_identification_message_is_an_abandon(
    db: Database, asterisk: AsteriskSandbox, tmp_path: Path
) -> None:
    # The queue gives up at ~4.6 s (AMD ~2.6 s + 2 s); the message (73 s here, by the per-call
    # CONTACTD_ABANDON_PROMPT) is still playing when the person hangs up at 8 s, so the
    # dialplan never reaches UserEvent ContactdAbandon: the dialer still counts the abandon.
    run = await campaign_call(db, asterisk, tmp_path, mode=CampaignMode.PREDICTIVE,
                              queue=QUEUE, agent_dial=world_channel(agent(5)),
                              variables={"CONTACTD_ABANDON_PROMPT": "demo-instruct"},
                              callee=human_hangup(8))
    assert "ContactdAbandon" not in [name for name, _ in run.user_events]
    assert_abandoned(run, heard=False)
    assert run.governor == run.rebuilt == [(1, 1), (1, 1)]
