"""The campaign service on a real database: lead order, refusals recorded once, the campaign
state machine, crash safety across a restart, statistics. The only stand-in is a launcher that
fails the way a dropped AMI link does (a fault the real peer cannot produce on demand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from contactd.calls.errors import OriginateUncertain
from contactd.calls.events import AnsweredBy, CallAnswered, CallEnded
from contactd.calls.service import OriginateRequest
from contactd.config import Settings
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import DoNotCall
from contactd.db.models.dialer import Campaign, DialRefusal, Lead, LiveAnswer
from contactd.db.session import Database
from contactd.dialer import repo
from contactd.dialer.agents import AgentBoard, AgentState
from contactd.dialer.campaigns import CampaignAction, CampaignTransitionError, next_status
from contactd.dialer.explain import explain_lead
from contactd.dialer.service import DialerService
from contactd.dialer.stats import campaign_stats
from contactd.enums import (
    AttemptState,
    CallOutcome,
    CampaignMode,
    CampaignStatus,
    LeadStatus,
)
from contactd.events import EventBus

NOW = datetime.now(UTC)


class DroppingLink:
    """Every Originate is sent, then the AMI link drops before Asterisk answers."""

    connected = True

    def __init__(self) -> None:
        self.sent: list[OriginateRequest] = []

    async def originate(self, request: OriginateRequest) -> str:
        self.sent.append(request)
        raise OriginateUncertain("link dropped before the response")


def open_settings(settings: Settings) -> Settings:
    dialer = settings.dialer.model_copy(update={
        "window_start": datetime.min.time(), "window_end": datetime.max.time().replace(
            microsecond=0)})
    return settings.model_copy(update={"dialer": dialer})


async def add_campaign(db: Database, **fields: object) -> int:
    async with db.transaction() as session:
        fields.setdefault("status", CampaignStatus.RUNNING)
        campaign = Campaign(name=str(fields.pop("name", "c")), mode=CampaignMode.AUTOMATED,
                            **fields)
        session.add(campaign)
        await session.flush()
        return campaign.id


def test_campaign_state_machine() -> None:
    s, a = CampaignStatus, CampaignAction
    assert next_status(s.DRAFT, a.START) is s.RUNNING
    assert next_status(s.RUNNING, a.PAUSE) is s.PAUSED
    assert next_status(s.PAUSED, a.START) is s.RUNNING
    assert next_status(s.PAUSED, a.STOP) is s.STOPPED
    assert next_status(s.RUNNING, a.FINISH) is s.FINISHED
    with pytest.raises(CampaignTransitionError) as err:
        next_status(s.STOPPED, a.PAUSE)
    assert err.value.code == "campaign_transition_invalid"
    assert "allowed: start" in str(err.value)


async def test_due_leads_callbacks_first_then_fresh_then_recycled(db: Database) -> None:
    cid = await add_campaign(db)
    async with db.transaction() as session:
        session.add_all([
            Lead(campaign_id=cid, phone_e164="+441", status=LeadStatus.RETRY, priority=9,
                 next_attempt_at=NOW - timedelta(minutes=1)),
            Lead(campaign_id=cid, phone_e164="+442", status=LeadStatus.NEW),
            Lead(campaign_id=cid, phone_e164="+443", status=LeadStatus.CALLBACK,
                 next_attempt_at=NOW - timedelta(seconds=5)),
            Lead(campaign_id=cid, phone_e164="+444", status=LeadStatus.NEW, priority=5),
            Lead(campaign_id=cid, phone_e164="+445", status=LeadStatus.CALLBACK,
                 next_attempt_at=NOW + timedelta(hours=1)),  # not due yet
            Lead(campaign_id=cid, phone_e164="+446", status=LeadStatus.RETRY,
                 next_attempt_at=NOW + timedelta(minutes=5)),  # retry not due
            Lead(campaign_id=cid, phone_e164="+447", status=LeadStatus.DONE),
        ])
    async with db.session() as session:
        due = await repo.due_leads(session, cid, NOW, 10)
    assert [lead.phone_e164 for lead in due] == ["+443", "+444", "+442", "+441"]


async def test_refusals_are_recorded_once_with_their_reason(
    db: Database, settings: Settings
) -> None:
    cid = await add_campaign(db)
    async with db.transaction() as session:
        session.add(Lead(campaign_id=cid, phone_e164="+442079460001"))
        session.add(DoNotCall(e164="+442079460001", campaign_id=None))
    link = DroppingLink()
    dialer = DialerService(db, EventBus(), open_settings(settings), link)
    for _ in range(3):
        await dialer.tick()
    async with db.session() as session:
        refusals = (await session.execute(select(DialRefusal))).scalars().all()
    assert [(r.reason, r.phone_e164) for r in refusals] == [("dnc_global", "+442079460001")]
    assert "do-not-call" in refusals[0].detail
    assert link.sent == []


async def test_nothing_is_redialed_within_its_retry_window_after_a_crash(
    db: Database, settings: Settings
) -> None:
    cid = await add_campaign(db)
    async with db.transaction() as session:
        session.add(Lead(campaign_id=cid, phone_e164="+442079460002"))
    link = DroppingLink()
    first = DialerService(db, EventBus(), open_settings(settings), link)
    await first.tick()
    assert [r.phone_e164 for r in link.sent] == ["+442079460002"]
    async with db.session() as session:
        lead = (await session.execute(select(Lead))).scalar_one()
    # Marked before the Originate left: dialing, counted, out of reach for a retry window.
    assert (lead.status, lead.attempts) == (LeadStatus.DIALING, 1)
    assert lead.next_attempt_at is not None and lead.next_attempt_at > NOW

    # The process dies; a new one starts and recovers. No attempt row was ever written (the
    # crash came first; the real call layer stores it before the Originate leaves, so no call
    # was placed): the attempt is not counted, and the lead waits out its retry window.
    restarted = DialerService(db, EventBus(), open_settings(settings), link)
    await restarted.recover()
    for _ in range(3):
        await restarted.tick()
    assert len(link.sent) == 1
    async with db.session() as session:
        lead = (await session.execute(select(Lead))).scalar_one()
    assert lead.status is LeadStatus.NEW and lead.attempts == 0


async def test_recovery_settles_leads_from_their_attempts(
    db: Database, settings: Settings
) -> None:
    cid = await add_campaign(db, max_attempts=3)
    async with db.transaction() as session:
        ended = Lead(campaign_id=cid, phone_e164="+442079460003", status=LeadStatus.DIALING,
                     attempts=1, next_attempt_at=NOW + timedelta(minutes=10))
        still_open = Lead(campaign_id=cid, phone_e164="+442079460004",
                          status=LeadStatus.DIALING, attempts=1,
                          next_attempt_at=NOW + timedelta(minutes=10))
        session.add_all([ended, still_open])
        await session.flush()
        session.add_all([
            CallAttempt(id="busy-1", campaign_id=cid, lead_id=ended.id,
                        phone_e164=ended.phone_e164, state=AttemptState.ENDED,
                        outcome=CallOutcome.BUSY),
            CallAttempt(id="open-1", campaign_id=cid, lead_id=still_open.id,
                        phone_e164=still_open.phone_e164, state=AttemptState.RINGING),
        ])
        ids = ended.id, still_open.id
    dialer = DialerService(db, EventBus(), open_settings(settings), DroppingLink())
    await dialer.recover()
    async with db.session() as session:
        busy = await session.get(Lead, ids[0])
        pending = await session.get(Lead, ids[1])
    assert busy is not None and pending is not None
    assert (busy.status, busy.last_outcome) == (LeadStatus.RETRY, CallOutcome.BUSY)
    assert busy.next_attempt_at is not None and busy.next_attempt_at > NOW
    # Still ringing somewhere: the call layer's reconciliation will publish its end.
    assert pending.status is LeadStatus.DIALING


async def test_campaign_commands_and_statistics(db: Database, settings: Settings) -> None:
    cid = await add_campaign(db, name="stats", status=CampaignStatus.DRAFT)
    dialer = DialerService(db, EventBus(), settings, DroppingLink(), agents=AgentBoard())
    assert await dialer.start("stats") is CampaignStatus.RUNNING
    assert await dialer.pause("stats") is CampaignStatus.PAUSED
    assert await dialer.stop("stats") is CampaignStatus.STOPPED
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    async with db.transaction() as session:
        # The last one is a person who found no agent: the call layer says HUMAN, the
        # dialer's LiveAnswer row says abandoned.
        outcomes = [CallOutcome.HUMAN] * 3 + [CallOutcome.MACHINE, CallOutcome.BUSY,
                                              CallOutcome.HUMAN]
        for i, outcome in enumerate(outcomes):
            answered = outcome in (CallOutcome.HUMAN, CallOutcome.MACHINE,
                                   CallOutcome.ABANDONED)
            session.add(CallAttempt(id=f"s{i}", campaign_id=cid, phone_e164="+1",
                                    state=AttemptState.ENDED, outcome=outcome,
                                    created_at=hour + timedelta(minutes=i),
                                    answered_at=hour if answered else None, talk_s=60.0))
        session.add(LiveAnswer(campaign_id=cid, attempt_id="s5", abandoned=True))
    async with db.session() as session:
        stats = await campaign_stats(session, cid, agent_logged_in_s=3600.0, wrap_s=40.0)
    assert (stats.attempts, stats.answers, stats.humans, stats.machines, stats.abandons) == (
        6, 5, 4, 1, 1)
    assert stats.abandon_rate == pytest.approx(0.25)
    assert stats.occupancy == pytest.approx((360 + 40) / 3600)
    assert [h.attempts for h in stats.per_hour] == [6]
    assert stats.as_dict()["abandon_rate"] == 0.25


async def test_lead_explanation_matches_the_dial_loop(db: Database, settings: Settings) -> None:
    cid = await add_campaign(db, max_attempts=2)
    async with db.transaction() as session:
        lead = Lead(campaign_id=cid, phone_e164="+12125550150", attempts=2,
                    status=LeadStatus.RETRY)
        session.add(lead)
        await session.flush()
        lead_id = lead.id
    at = datetime(2026, 6, 10, 3, 0, tzinfo=UTC)  # 23:00 in New York
    async with db.session() as session:
        why = await explain_lead(session, settings, lead_id, at)
    assert not why.dialable
    assert [r.code.value for r in why.refusals] == ["outside_window", "attempts_exhausted"]
    assert "callee local time: America/New_York 2026-06-09 23:00 EDT" in why.lines()[1]


class InstantFailure:
    """A trunk that fails the call at once: CallEnded is published (and handled) before
    originate() returns - the race that once left a phantom call ringing forever."""

    connected = True

    def __init__(self, db: Database, bus: EventBus) -> None:
        self.db, self.bus, self.count = db, bus, 0

    async def originate(self, request: OriginateRequest) -> str:
        self.count += 1
        attempt_id = f"fast-{self.count}"
        async with self.db.transaction() as session:
            session.add(CallAttempt(id=attempt_id, campaign_id=request.campaign_id,
                                    lead_id=request.lead_id, phone_e164=request.phone_e164,
                                    state=AttemptState.ENDED, outcome=CallOutcome.CONGESTION))
        await self.bus.publish(CallEnded(attempt_id=attempt_id, outcome=CallOutcome.CONGESTION,
                                         cause=34))
        return attempt_id


async def test_a_call_ending_before_originate_returns_is_not_left_ringing(
    db: Database, settings: Settings
) -> None:
    cid = await add_campaign(db, max_concurrent=1)
    async with db.transaction() as session:
        session.add_all([Lead(campaign_id=cid, phone_e164=f"+44207946010{i}") for i in range(3)])
    bus = EventBus()
    dialer = DialerService(db, bus, open_settings(settings), InstantFailure(db, bus))
    dialer.subscribe()
    for _ in range(3):
        await dialer.tick()
    async with db.session() as session:
        leads = (await session.execute(select(Lead))).scalars().all()
        campaign = await session.get(Campaign, cid)
    assert campaign is not None
    # With one line (max_concurrent=1) every lead still got its attempt: no phantom call.
    assert sorted(lead.status for lead in leads) == [LeadStatus.RETRY] * 3
    assert all(len(rt.calls) == 0 for rt in dialer.runtimes)


class InstantAnswer:
    """A callee who answers at once on a call without AMD (preview mode): CallAnswered is
    published (and handled) before originate() returns - the sandbox showed it sometimes."""

    connected = True

    def __init__(self, db: Database, bus: EventBus) -> None:
        self.db, self.bus = db, bus

    async def originate(self, request: OriginateRequest) -> str:
        async with self.db.transaction() as session:
            session.add(CallAttempt(id="quick", campaign_id=request.campaign_id,
                                    lead_id=request.lead_id, phone_e164=request.phone_e164,
                                    state=AttemptState.ANSWERED))
        await self.bus.publish(CallAnswered(attempt_id="quick", answered_by=AnsweredBy.UNKNOWN,
                                            answered_at=datetime.now(UTC)))
        return "quick"


class Handoffs:
    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []

    async def connect(self, attempt_id: str, agent_dial: str) -> None:
        self.made.append((attempt_id, agent_dial))


async def test_a_preview_call_answered_before_originate_returns_reaches_the_agent(
    db: Database, settings: Settings
) -> None:
    cid = await add_campaign(db)
    async with db.transaction() as session:
        campaign = await session.get(Campaign, cid)
        assert campaign is not None
        campaign.mode = CampaignMode.PREVIEW
        lead = Lead(campaign_id=cid, phone_e164="+442079460101")
        session.add(lead)
        await session.flush()
        lead_id = lead.id
    bus, handoffs = EventBus(), Handoffs()
    board = AgentBoard()
    dialer = DialerService(db, bus, open_settings(settings), InstantAnswer(db, bus),
                           agents=board, connector=handoffs)
    dialer.subscribe()
    board.login("alex", "PJSIP/1001", cid, dialer.clock())
    assert await dialer.dial_lead(lead_id)
    assert handoffs.made == [("quick", "PJSIP/1001")]
    assert board.agents["alex"].attempt_id == "quick"


async def test_a_preview_call_goes_to_the_agent_who_clicked_not_the_longest_free(
    db: Database, settings: Settings
) -> None:
    cid = await add_campaign(db)
    async with db.transaction() as session:
        campaign = await session.get(Campaign, cid)
        assert campaign is not None
        campaign.mode = CampaignMode.PREVIEW
        lead = Lead(campaign_id=cid, phone_e164="+442079460101")
        session.add(lead)
        await session.flush()
        lead_id = lead.id
    bus, handoffs = EventBus(), Handoffs()
    board = AgentBoard()
    dialer = DialerService(db, bus, open_settings(settings), InstantAnswer(db, bus),
                           agents=board, connector=handoffs)
    dialer.subscribe()
    board.login("bea", "PJSIP/1002", cid, dialer.clock() - 60)  # free the longest
    board.login("alex", "PJSIP/1001", cid, dialer.clock())
    assert await dialer.dial_lead(lead_id, agent="alex")
    assert handoffs.made == [("quick", "PJSIP/1001")]
    assert board.agents["alex"].attempt_id == "quick"
    assert board.agents["bea"].state is AgentState.FREE
