"""The dialer counts the abandons Asterisk decides (CallAbandoned): a live answer counted
connected is amended - one LiveAnswer row, one more abandon and no second live answer in the
governor, the pacer's calibration lowered, the agent released, the lead ABANDONED - never
counted twice, and rebuilt to the same counts after a restart. Real database; the call layer's
events are published on the bus as the CallService publishes them (tests/unit/calls and the
Asterisk end-to-end tests cover how they arise)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from contactd.calls.events import (
    AnsweredBy,
    CallAbandoned,
    CallAnswered,
    CallBridged,
    CallEnded,
)
from contactd.calls.service import OriginateRequest
from contactd.config import Settings
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead, LiveAnswer
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard, AgentState
from contactd.dialer.callstate import DialState
from contactd.dialer.governor import DAY_S, AbandonGovernor
from contactd.dialer.pacing import PredictivePacer
from contactd.dialer.recovery import seed_governor
from contactd.dialer.service import DialerService
from contactd.enums import AttemptState, CallOutcome, CampaignMode, CampaignStatus, LeadStatus
from contactd.events import EventBus

AGENT = "PJSIP/1001"


class StoringLauncher:
    """Writes the attempt row as the CallService does and returns its id; the call's events
    are then published by the test."""

    connected = True

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sent: list[tuple[str, OriginateRequest]] = []

    async def originate(self, request: OriginateRequest) -> str:
        attempt_id = f"ab-{len(self.sent) + 1}"
        async with self.db.transaction() as session:
            session.add(CallAttempt(id=attempt_id, campaign_id=request.campaign_id,
                                    lead_id=request.lead_id, phone_e164=request.phone_e164,
                                    state=AttemptState.DIALING))
        self.sent.append((attempt_id, request))
        return attempt_id


class RecordingConnector:
    def __init__(self) -> None:
        self.connected: list[tuple[str, str]] = []

    async def connect(self, attempt_id: str, agent_dial: str) -> None:
        self.connected.append((attempt_id, agent_dial))


def open_settings(settings: Settings) -> Settings:
    dialer = settings.dialer.model_copy(update={
        "window_start": datetime.min.time(),
        "window_end": datetime.max.time().replace(microsecond=0),
    })
    return settings.model_copy(update={"dialer": dialer})


class World:
    def __init__(self, db: Database, settings: Settings, *, queue: str | None) -> None:
        self.db, self.queue = db, queue
        self.bus = EventBus()
        self.board = AgentBoard()
        self.launcher = StoringLauncher(db)
        self.connector = RecordingConnector()
        self.dialer = self.new_dialer(settings)

    def new_dialer(self, settings: Settings) -> DialerService:
        dialer = DialerService(self.db, self.bus, open_settings(settings), self.launcher,
                               agents=self.board, connector=self.connector)
        dialer.subscribe()  # what __aenter__ does, without its background loop: ticks by hand
        return dialer

    async def campaign(self, leads: int = 1) -> int:
        async with self.db.transaction() as session:
            campaign = Campaign(name="abandons", mode=CampaignMode.PREDICTIVE,
                                status=CampaignStatus.RUNNING, agent_queue=self.queue,
                                max_attempts=3)
            session.add(campaign)
            await session.flush()
            session.add_all([Lead(campaign_id=campaign.id, phone_e164=f"+44207946020{i}")
                             for i in range(leads)])
            return campaign.id

    async def dial(self) -> str:
        before = len(self.launcher.sent)
        await self.dialer.tick()
        assert len(self.launcher.sent) == before + 1
        return self.launcher.sent[-1][0]

    async def answer(self, attempt_id: str) -> None:
        await self.bus.publish(CallAnswered(attempt_id=attempt_id, answered_by=AnsweredBy.HUMAN))

    async def answered_call(self, *, leads: int = 1, agent_free: bool = True) -> tuple[int, str]:
        """A running campaign with agent a1 logged in, one call dialed and answered by a person
        (while a1 is on pause when not `agent_free`): (campaign id, attempt id)."""
        cid = await self.campaign(leads)
        self.board.login("a1", AGENT, cid, self.dialer.clock())
        attempt = await self.dial()
        if not agent_free:
            self.board.pause("a1", self.dialer.clock())
        await self.answer(attempt)
        return cid, attempt

    async def bridge(self, attempt_id: str) -> None:
        await self.bus.publish(CallBridged(attempt_id=attempt_id, agent_channel="Local/7003;1",
                                           agent_interface="Local/7003"))

    async def abandon(self, attempt_id: str) -> None:
        await self.bus.publish(CallAbandoned(attempt_id=attempt_id, prompt_status="SUCCESS"))

    async def end(self, attempt_id: str) -> None:
        async with self.db.transaction() as session:
            attempt = await session.get(CallAttempt, attempt_id)
            assert attempt is not None
            attempt.state, attempt.outcome = AttemptState.ENDED, CallOutcome.HUMAN
        await self.bus.publish(CallEnded(attempt_id=attempt_id, outcome=CallOutcome.HUMAN,
                                         cause=16, answered_by=AnsweredBy.HUMAN))

    async def rows(self) -> list[tuple[str, bool]]:
        async with self.db.session() as session:
            rows = (await session.execute(select(LiveAnswer))).scalars().all()
        return [(r.attempt_id, r.abandoned) for r in rows]

    async def lead(self) -> Lead:
        async with self.db.session() as session:
            return (await session.execute(select(Lead))).scalars().first()  # type: ignore[return-value]

    def pacer(self, campaign_id: int) -> PredictivePacer:
        rt = self.dialer.runtime_of(campaign_id)
        assert rt is not None
        pacer = rt.pacer
        assert isinstance(pacer, PredictivePacer)
        return pacer


def counts(governor: AbandonGovernor) -> list[tuple[int, int]]:
    now = datetime.now(UTC).timestamp()
    return [(w.live, w.abandoned) for w in (governor.window(now, s) for s in governor.windows_s)]


async def rebuilt(db: Database, campaign_id: int) -> list[tuple[int, int]]:
    governor = AbandonGovernor(windows_s=(30 * DAY_S, DAY_S))
    await seed_governor(db, campaign_id, governor)
    return counts(governor)


async def test_queue_timeout_amends_the_connected_answer(
    db: Database, settings: Settings
) -> None:
    w = World(db, settings, queue="sales")
    cid, attempt = await w.answered_call()
    pacer = w.pacer(cid)
    # Queue mode: the queue connects, so the answer is counted connected at once.
    assert await w.rows() == [(attempt, False)]
    assert counts(pacer.governor) == [(1, 0), (1, 0)]
    calibration = pacer.calibration

    await w.abandon(attempt)  # the queue timed out: contactd-abandon played the message
    assert await w.rows() == [(attempt, True)]
    assert counts(pacer.governor) == [(1, 1), (1, 1)]
    assert pacer.calibration == calibration * math.exp(-pacer.calibration_gain)
    await w.abandon(attempt)  # a duplicate changes nothing
    assert await w.rows() == [(attempt, True)]
    assert counts(pacer.governor) == [(1, 1), (1, 1)]

    await w.end(attempt)
    lead = await w.lead()
    assert (lead.status, lead.last_outcome) == (LeadStatus.RETRY, CallOutcome.ABANDONED)
    # The abandon retry rule applies (3 days by default), not the dial-time placeholder.
    assert lead.next_attempt_at is not None
    assert lead.next_attempt_at > datetime.now(UTC) + timedelta(
        seconds=settings.dialer.retry_abandoned_s - 60)
    # After a restart the governor is rebuilt from the amended row to the same counts.
    assert await rebuilt(db, cid) == counts(pacer.governor)


async def test_agent_not_answering_frees_the_agent_and_abandons(
    db: Database, settings: Settings
) -> None:
    w = World(db, settings, queue=None)
    cid, attempt = await w.answered_call()
    # Agent mode: the agent was claimed, the channel told to dial it, counted connected.
    assert w.connector.connected == [(attempt, AGENT)]
    assert w.board.agents["a1"].state is AgentState.TALKING
    assert await w.rows() == [(attempt, False)]

    await w.abandon(attempt)  # the agent's phone did not answer
    agent = w.board.agents["a1"]
    assert agent.state is not AgentState.TALKING and agent.attempt_id is None
    assert w.board.finished_talks == []  # the phone only rang: not a talk for the pacer
    assert await w.rows() == [(attempt, True)]
    assert counts(w.pacer(cid).governor) == [(1, 1), (1, 1)]
    await w.end(attempt)
    assert (await w.lead()).last_outcome is CallOutcome.ABANDONED
    assert await rebuilt(db, cid) == [(1, 1), (1, 1)]


async def test_already_counted_abandoned_is_not_counted_again(
    db: Database, settings: Settings
) -> None:
    w = World(db, settings, queue=None)
    cid, attempt = await w.answered_call(agent_free=False)  # nobody free: the person waits
    assert await w.rows() == []
    rt = w.dialer.runtime_of(cid)
    assert rt is not None
    call = rt.calls.get(attempt)
    assert call is not None and call.state is DialState.WAITING
    call.since -= 10.0  # waited past the grace: the dialer abandons it itself
    await w.dialer.tick()
    assert await w.rows() == [(attempt, True)]
    calibration = w.pacer(cid).calibration
    await w.abandon(attempt)  # Asterisk's own timer reached the same verdict
    assert await w.rows() == [(attempt, True)]
    assert counts(w.pacer(cid).governor) == [(1, 1), (1, 1)]
    assert w.pacer(cid).calibration == calibration
    await w.end(attempt)
    assert (await w.lead()).last_outcome is CallOutcome.ABANDONED


async def test_abandon_of_a_waiting_person_records_one_abandoned_answer(
    db: Database, settings: Settings
) -> None:
    w = World(db, settings, queue=None)
    cid, attempt = await w.answered_call(agent_free=False)
    await w.abandon(attempt)  # the dialplan's 2 s ran out before the dialer's did
    rt = w.dialer.runtime_of(cid)
    assert rt is not None
    call = rt.calls.get(attempt)
    assert call is not None and call.state is DialState.ABANDONED
    assert await w.rows() == [(attempt, True)]
    assert counts(w.pacer(cid).governor) == [(1, 1), (1, 1)]
    await w.dialer.tick()  # the dialer's own grace check finds nothing left to abandon
    await w.end(attempt)
    assert await w.rows() == [(attempt, True)]
    assert counts(w.pacer(cid).governor) == [(1, 1), (1, 1)]
    assert (await w.lead()).last_outcome is CallOutcome.ABANDONED


async def test_abandon_after_a_restart_amends_the_stored_answer(
    db: Database, settings: Settings
) -> None:
    w = World(db, settings, queue="sales")
    cid, attempt = await w.answered_call(leads=2)
    assert await w.rows() == [(attempt, False)]

    # The process restarts while the person is in the queue; the new one seeds its governor.
    w.bus = EventBus()
    w.board = AgentBoard()
    restarted = w.dialer = w.new_dialer(settings)
    await restarted.recover()
    w.board.login("a1", AGENT, cid, restarted.clock())
    second = await w.dial()
    assert counts(w.pacer(cid).governor) == [(1, 0), (1, 0)]

    await w.abandon(attempt)
    assert sorted(await w.rows()) == [(attempt, True)]
    assert counts(w.pacer(cid).governor) == [(1, 1), (1, 1)]
    await w.abandon(attempt)
    assert counts(w.pacer(cid).governor) == [(1, 1), (1, 1)]
    await w.end(attempt)
    async with db.session() as session:
        first_lead = await session.scalar(
            select(Lead).join(CallAttempt, CallAttempt.lead_id == Lead.id)
            .where(CallAttempt.id == attempt))
    assert first_lead is not None and first_lead.last_outcome is CallOutcome.ABANDONED
    assert second != attempt
    assert await rebuilt(db, cid) == counts(w.pacer(cid).governor)


async def test_connected_answer_that_never_reached_anyone_is_an_abandon(
    db: Database, settings: Settings
) -> None:
    # The queue gave up and the person hung up during the identification message: no
    # ContactdAbandon ever came, and no bridge either.
    w = World(db, settings, queue="sales")
    cid, attempt = await w.answered_call()
    assert await w.rows() == [(attempt, False)]
    await w.end(attempt)
    assert await w.rows() == [(attempt, True)]
    assert counts(w.pacer(cid).governor) == [(1, 1), (1, 1)]
    assert (await w.lead()).last_outcome is CallOutcome.ABANDONED


async def test_a_bridged_answer_stays_connected(db: Database, settings: Settings) -> None:
    w = World(db, settings, queue="sales")
    cid, attempt = await w.answered_call()
    await w.bridge(attempt)  # a queue member took it
    await w.end(attempt)
    assert await w.rows() == [(attempt, False)]
    assert counts(w.pacer(cid).governor) == [(1, 0), (1, 0)]
    lead = await w.lead()
    assert (lead.status, lead.last_outcome) == (LeadStatus.DONE, CallOutcome.HUMAN)


async def test_each_call_is_resolved_once_for_the_pacer(db: Database, settings: Settings) -> None:
    """A repeated CallAnswered, then the end of the call, teach the pacer one outcome."""
    w = World(db, settings, queue="sales")
    cid, attempt = await w.answered_call()
    pacer = w.pacer(cid)
    assert (len(pacer.ready), len(pacer.gave_up)) == (1, 0)
    await w.answer(attempt)  # a duplicate: the call is not ringing any more
    await w.end(attempt)  # answered before: not a failure to learn from
    assert (len(pacer.ready), len(pacer.gave_up)) == (1, 0)
    assert await w.rows() == [(attempt, True)]  # counted connected, reached no one: abandon


async def test_an_unanswered_call_is_resolved_as_given_up(db: Database, settings: Settings) -> None:
    w = World(db, settings, queue=None)
    cid = await w.campaign()
    w.board.login("a1", AGENT, cid, w.dialer.clock())
    attempt = await w.dial()
    async with db.transaction() as session:
        row = await session.get(CallAttempt, attempt)
        assert row is not None
        row.state, row.outcome = AttemptState.ENDED, CallOutcome.NO_ANSWER
    await w.bus.publish(CallEnded(attempt_id=attempt, outcome=CallOutcome.NO_ANSWER, cause=19))
    assert (len(w.pacer(cid).ready), len(w.pacer(cid).gave_up)) == (0, 1)
    assert (await w.lead()).last_outcome is CallOutcome.NO_ANSWER
    rt = w.dialer.runtime_of(cid)
    assert rt is not None and attempt not in rt.calls
