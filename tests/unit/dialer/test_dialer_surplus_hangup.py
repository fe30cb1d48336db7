"""Surplus hang-ups: when the predictive pacer says some ringing calls are too many, the dial
loop ends the youngest of those that rang `surplus_hangup_after_s`, never a younger one nor
one answered at the telephony level; the pacer hears them as cut short (call_cancelled), and
the dial decision of the same tick no longer counts them. Real database and dialer; the pacer
is scripted (its own rule is tested in test_dialer_pacing.py) and the line stands in for the
CallService (tests/integration/asterisk/test_dialer_surplus_hangup.py runs the real one)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from contactd.calls.events import AnsweredBy, CallAnswered, CallEnded
from contactd.calls.service import OriginateRequest
from contactd.config import Settings
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead, LiveAnswer
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard
from contactd.dialer.events import SurplusHangup
from contactd.dialer.pacing import PacingSnapshot, PredictivePacer
from contactd.dialer.runtime import Runtimes
from contactd.dialer.service import DialerService
from contactd.enums import AttemptState, CallOutcome, CampaignMode, CampaignStatus, LeadStatus
from contactd.events import EventBus

START = 1_000.0
AFTER_S = 15


class ScriptedPacer(PredictivePacer):
    """Dials and cancels as many calls as the test says; records what it was asked and told."""

    def __init__(self) -> None:
        super().__init__()
        self.dial = 0  # calls to dial at the next decision (then 0)
        self.cancel = 0  # calls to cancel at every decision
        self.asked_dial: list[tuple[float, ...]] = []
        self.asked_cancel: list[tuple[float, ...]] = []
        self.resolved: list[tuple[float, bool]] = []
        self.cancelled: list[float] = []

    def calls_to_dial(self, snap: PacingSnapshot, now: float) -> int:
        self.asked_dial.append(snap.ringing)
        wanted, self.dial = self.dial, 0
        return wanted

    def calls_to_cancel(self, snap: PacingSnapshot, now: float) -> int:
        self.asked_cancel.append(snap.ringing)
        return self.cancel

    def call_resolved(self, ready_s: float, *, needs_agent: bool) -> None:
        self.resolved.append((round(ready_s, 1), needs_agent))

    def call_cancelled(self, ring_s: float) -> None:
        self.cancelled.append(round(ring_s, 1))


class RingingLine:
    """Stores the attempt row as the CallService does; `end_unanswered` refuses the calls in
    `answered` (answered at the telephony level, AMD still listening)."""

    connected = True

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sent: list[str] = []
        self.answered: set[str] = set()
        self.asked: list[str] = []
        self.hung_up: list[tuple[str, str]] = []

    async def originate(self, request: OriginateRequest) -> str:
        attempt_id = f"call-{len(self.sent) + 1}"
        async with self.db.transaction() as session:
            session.add(CallAttempt(id=attempt_id, campaign_id=request.campaign_id,
                                    lead_id=request.lead_id, phone_e164=request.phone_e164,
                                    state=AttemptState.RINGING))
        self.sent.append(attempt_id)
        return attempt_id

    async def end_unanswered(self, attempt_id: str, why: str) -> bool:
        self.asked.append(attempt_id)
        if attempt_id in self.answered:
            return False
        self.hung_up.append((attempt_id, why))
        return True


class Floor:
    """A campaign with one agent, its calls dialed at chosen times of a clock the test moves."""

    def __init__(self, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                 *, after_s: int = AFTER_S) -> None:
        self.db, self.now = db, START
        self.bus = EventBus()
        self.board = AgentBoard()
        self.line = RingingLine(db)
        self.pacer = ScriptedPacer()
        dialer = settings.dialer.model_copy(update={
            "window_start": datetime.min.time(),
            "window_end": datetime.max.time().replace(microsecond=0),
            "surplus_hangup_after_s": after_s})
        self.dialer = DialerService(db, self.bus, settings.model_copy(update={"dialer": dialer}),
                                    self.line, agents=self.board, clock=lambda: self.now)
        self.dialer.subscribe()  # what __aenter__ does, without its loop: ticks by hand
        monkeypatch.setattr(self.dialer.runtimes, "_pacer", lambda campaign: self.pacer)
        self.hangups: list[SurplusHangup] = []
        self.bus.subscribe(SurplusHangup, self.hangups.append)

    async def campaign(self, mode: CampaignMode = CampaignMode.PREDICTIVE) -> int:
        async with self.db.transaction() as session:
            campaign = Campaign(name="surplus", mode=mode, status=CampaignStatus.RUNNING,
                                max_attempts=3)
            session.add(campaign)
            await session.flush()
            session.add_all([Lead(campaign_id=campaign.id, phone_e164=f"+44207946030{i}")
                             for i in range(6)])
        self.board.login("a1", "PJSIP/1001", campaign.id, self.now)
        return campaign.id

    async def dial_at(self, *times: float) -> list[str]:
        """One call dialed at each of `times` (seconds after START)."""
        for t in times:
            self.now = START + t
            self.pacer.dial = 1
            await self.dialer.tick()
        assert len(self.line.sent) == len(times)
        return list(self.line.sent)

    async def tick_at(self, t: float, *, cancel: int) -> None:
        self.now = START + t
        self.pacer.cancel = cancel
        await self.dialer.tick()
        self.pacer.cancel = 0

    async def end(self, attempt_id: str, outcome: CallOutcome, cause: int,
                  answered_by: AnsweredBy | None = None) -> None:
        await self.bus.publish(CallEnded(attempt_id=attempt_id, outcome=outcome, cause=cause,
                                         answered_by=answered_by))

    async def lead_of(self, attempt_id: str) -> Lead:
        async with self.db.session() as session:
            attempt = await session.get(CallAttempt, attempt_id)
            assert attempt is not None and attempt.lead_id is not None
            lead = await session.get(Lead, attempt.lead_id)
            assert lead is not None
            return lead


async def test_the_youngest_call_old_enough_is_ended_and_no_longer_counted(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    floor = Floor(db, settings, monkeypatch)
    cid = await floor.campaign()
    first, second, third, fourth = await floor.dial_at(0, 5, 10, 14)
    caplog.set_level(logging.INFO, logger="contactd.dialer.surplus")
    await floor.tick_at(20, cancel=1)
    # Rung 20, 15, 10 and 6 s: of the two that rang 15 s, the younger goes.
    assert floor.pacer.asked_cancel[-1] == (20.0, 15.0, 10.0, 6.0)
    assert floor.line.hung_up == [(second, "the answers coming outnumbered free agents")]
    # The dial decision of the same tick no longer counts it.
    assert floor.pacer.asked_dial[-1] == (20.0, 10.0, 6.0)
    assert [(h.campaign_id, h.attempt_id, h.ring_s) for h in floor.hangups] == [
        (cid, second, 15.0)]
    said = [r for r in caplog.records if r.getMessage().startswith("ringing call ended")]
    assert [(r.attempt_id, r.campaign_id, r.ring_s) for r in said] == [  # type: ignore[attr-defined]
        (second, cid, 15.0)]

    # Its end arrives (Asterisk: cause 19, no answer): censored for the pacer, not a failure;
    # the lead waits for the no-answer retry.
    floor.now = START + 20.2
    await floor.end(second, CallOutcome.NO_ANSWER, 19)
    assert (floor.pacer.cancelled, floor.pacer.resolved) == ([15.0], [])
    lead = await floor.lead_of(second)
    assert (lead.status, lead.last_outcome) == (LeadStatus.RETRY, CallOutcome.NO_ANSWER)
    # A call that rings out on its own is still a failure the pacer learns from.
    await floor.end(first, CallOutcome.NO_ANSWER, 19)
    assert floor.pacer.resolved == [(20.2, False)]
    assert {third, fourth} <= {c.attempt_id for c in floor.dialer.runtimes.get(cid).calls}  # type: ignore[union-attr]


async def test_never_more_than_asked_never_one_younger_than_the_setting(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor = Floor(db, settings, monkeypatch)
    await floor.campaign()
    first, second, _third, _fourth = await floor.dial_at(0, 5, 10, 14)
    await floor.tick_at(20, cancel=5)
    # Five asked, two old enough: the younger first, then the older; 10 s and 6 s ring on.
    assert [a for a, _ in floor.line.hung_up] == [second, first]
    assert floor.pacer.asked_dial[-1] == (10.0, 6.0)
    # Marked calls are not asked for again while their end is on its way.
    await floor.tick_at(21, cancel=5)
    assert floor.line.asked == [second, first]
    assert floor.pacer.asked_cancel[-1] == (11.0, 7.0)


async def test_a_call_answered_at_the_telephony_level_is_never_ended(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor = Floor(db, settings, monkeypatch)
    await floor.campaign()
    first, second, _third = await floor.dial_at(0, 5, 10)
    floor.line.answered.add(second)  # Up, AMD still listening: the call layer refuses
    await floor.tick_at(20, cancel=1)
    assert floor.line.asked == [second, first]
    assert [a for a, _ in floor.line.hung_up] == [first]
    # The answered one still counts as in flight (its verdict is pending); the ended one not.
    assert floor.pacer.asked_dial[-1] == (15.0, 10.0)


@pytest.mark.parametrize(("mode", "after_s"), [(CampaignMode.PREDICTIVE, 0),
                                               (CampaignMode.PROGRESSIVE, AFTER_S)])
async def test_nothing_is_ended_when_off_or_not_predictive(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, mode: CampaignMode,
    after_s: int,
) -> None:
    floor = Floor(db, settings, monkeypatch, after_s=after_s)
    await floor.campaign(mode)
    await floor.dial_at(0, 5)
    await floor.tick_at(30, cancel=2)
    assert (floor.pacer.asked_cancel, floor.line.asked, floor.hangups) == ([], [], [])
    assert floor.pacer.asked_dial[-1] == (30.0, 25.0)


async def test_an_answer_in_the_instant_before_the_hang_up_is_an_abandon(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor = Floor(db, settings, monkeypatch)
    cid = await floor.campaign()
    _first, second = await floor.dial_at(0, 5)
    floor.board.pause("a1", floor.now)  # nobody free for the person
    await floor.tick_at(20, cancel=1)
    assert [a for a, _ in floor.line.hung_up] == [second]
    # The person answered just before the hang-up reached the line, then it cut them off.
    await floor.bus.publish(CallAnswered(attempt_id=second, answered_by=AnsweredBy.HUMAN,
                                         answered_at=datetime.now(UTC)))
    await floor.end(second, CallOutcome.HUMAN, 19, AnsweredBy.HUMAN)
    # An answer the pacer hears as such, and an abandon counted: nothing hidden.
    assert (floor.pacer.resolved, floor.pacer.cancelled) == ([(15.0, True)], [])
    async with db.session() as session:
        rows = (await session.execute(select(LiveAnswer))).scalars().all()
    assert [(r.campaign_id, r.attempt_id, r.abandoned) for r in rows] == [(cid, second, True)]
    lead = await floor.lead_of(second)
    assert lead.last_outcome is CallOutcome.ABANDONED


def test_the_predictive_pacer_takes_the_setting(db: Database, settings: Settings) -> None:
    campaign = Campaign(id=1, name="p", mode=CampaignMode.PREDICTIVE)
    for after_s, expected in ((AFTER_S, 15.0), (0, None)):
        dialer = settings.dialer.model_copy(update={"surplus_hangup_after_s": after_s})
        pacer = Runtimes(db, dialer).for_campaign(campaign).pacer
        assert isinstance(pacer, PredictivePacer) and pacer.hangup_after_s == expected
