"""Issue 13: recovery independent of start-up order, a campaign row the code cannot read, and
a dial loop that waits (quietly) for the AMI link. Real database; the launchers are stand-ins
only for the link state and the Originate's result."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from contactd.ami.errors import AmiUnavailable
from contactd.calls.events import CallEnded
from contactd.calls.service import OriginateRequest
from contactd.config import Settings
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer import repo
from contactd.dialer.service import DialerService
from contactd.enums import AttemptState, CallOutcome, CampaignStatus, LeadStatus
from contactd.events import EventBus
from tests.unit.dialer.test_dialer_service import add_campaign, open_settings

NOW = datetime.now(UTC)


class Link:
    """Counts Originates; `connected` is the link state the dialer must respect."""

    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.sent: list[OriginateRequest] = []

    async def originate(self, request: OriginateRequest) -> str:
        if not self.connected:
            raise AmiUnavailable("AMI is not connected; nothing dialed")
        self.sent.append(request)
        return f"att-{len(self.sent)}"


async def _dialing_lead(db: Database, cid: int, attempt: str, state: AttemptState) -> int:
    """A lead an earlier (killed) process left `dialing`, with its attempt row."""
    async with db.transaction() as session:
        lead = Lead(campaign_id=cid, phone_e164="+442079460077", status=LeadStatus.DIALING,
                    attempts=1, next_attempt_at=NOW + timedelta(minutes=10))
        session.add(lead)
        await session.flush()
        session.add(CallAttempt(id=attempt, campaign_id=cid, lead_id=lead.id,
                                phone_e164=lead.phone_e164, state=state,
                                created_at=NOW - timedelta(seconds=30)))
        return lead.id


async def _end(db: Database, attempt: str, outcome: CallOutcome) -> None:
    async with db.transaction() as session:
        row = await session.get(CallAttempt, attempt)
        assert row is not None
        row.state, row.outcome = AttemptState.ENDED, outcome


async def _lead(db: Database, lead_id: int) -> Lead:
    async with db.session() as session:
        lead = await session.get(Lead, lead_id)
    assert lead is not None
    return lead


async def test_an_attempt_ended_before_the_dialer_subscribed_still_settles_its_lead(
    db: Database, settings: Settings
) -> None:
    cid = await add_campaign(db, max_attempts=3)
    lead_id = await _dialing_lead(db, cid, "old-1", AttemptState.RINGING)
    bus = EventBus()
    dialer = DialerService(db, bus, open_settings(settings), Link())
    # Start: the attempt is still open (reconciliation has not run yet): nothing to settle.
    await dialer.recover()
    assert (await _lead(db, lead_id)).status is LeadStatus.DIALING
    # The call layer reconciles and publishes CallEnded(lost) while nobody listens yet.
    await _end(db, "old-1", CallOutcome.LOST)
    await bus.publish(CallEnded(attempt_id="old-1", outcome=CallOutcome.LOST, cause=0,
                                     lost=True))
    await dialer.tick()
    lead = await _lead(db, lead_id)
    assert (lead.status, lead.last_outcome) == (LeadStatus.RETRY, CallOutcome.LOST)


async def test_a_lead_is_settled_once_by_the_handler_or_the_sweep(
    db: Database, settings: Settings
) -> None:
    cid = await add_campaign(db, max_attempts=3)
    lead_id = await _dialing_lead(db, cid, "old-2", AttemptState.ENDED)
    await _end(db, "old-2", CallOutcome.BUSY)
    dialer = DialerService(db, EventBus(), open_settings(settings), Link())
    await dialer.settle_lead("old-2", CallOutcome.BUSY)
    first = await _lead(db, lead_id)
    # The sweep and a late CallEnded reach the same lead again: nothing moves.
    await dialer.recover()
    await dialer.settle_lead("old-2", CallOutcome.NO_ANSWER)
    again = await _lead(db, lead_id)
    assert (again.status, again.last_outcome, again.next_attempt_at) == (
        first.status, CallOutcome.BUSY, first.next_attempt_at)


async def test_a_campaign_row_with_an_unknown_mode_is_set_aside_and_the_others_dial(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    bad = await add_campaign(db, name="bad")
    good = await add_campaign(db, name="good")
    async with db.transaction() as session:
        await session.execute(text("UPDATE campaigns SET mode = 'message' WHERE id = :i"),
                              {"i": bad})
        session.add(Lead(campaign_id=good, phone_e164="+442079460078"))
        session.add(Lead(campaign_id=bad, phone_e164="+442079460079"))
    link = Link()
    dialer = DialerService(db, EventBus(), open_settings(settings), link)
    with caplog.at_level(logging.ERROR, logger="contactd.dialer.service"):
        for _ in range(3):
            await dialer.tick()
    assert [r.phone_e164 for r in link.sent] == ["+442079460078"]
    assert list(dialer.set_aside) == [bad]
    assert "'message' is not among the defined enum values" in dialer.set_aside[bad]
    said = [r for r in caplog.records if r.getMessage() == "campaign set aside"]
    assert len(said) == 1 and said[0].campaign_id == bad
    async with db.session() as session:
        with pytest.raises(repo.CampaignUnreadable) as err:
            await repo.campaign_by_name(session, "bad")
    assert err.value.code == "campaign_unreadable"
    assert "campaign 'bad' cannot be used" in str(err.value)


async def test_while_the_link_is_down_no_lead_is_tried_and_it_is_said_once(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    cid = await add_campaign(db)
    async with db.transaction() as session:
        session.add_all([Lead(campaign_id=cid, phone_e164=f"+44207946008{i}") for i in range(3)])
    link = Link(connected=False)
    dialer = DialerService(db, EventBus(), open_settings(settings), link)
    with caplog.at_level(logging.INFO, logger="contactd.dialer.service"):
        for _ in range(20):
            await dialer.tick()
        link.connected = True
        await dialer.tick()
    said = [r.getMessage() for r in caplog.records]
    assert said == ["dialing waits: the AMI link to Asterisk is down",
                    "the AMI link is back: dialing resumes"]
    assert len(link.sent) == 3
    async with db.session() as session:
        leads = (await session.execute(select(Lead))).scalars().all()
    assert {lead.attempts for lead in leads} == {1}


async def test_a_link_that_falls_during_a_tick_stops_it_and_restores_the_lead(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    cid = await add_campaign(db)
    async with db.transaction() as session:
        session.add_all([Lead(campaign_id=cid, phone_e164=f"+44207946009{i}") for i in range(3)])

    class Falling(Link):
        @property  # type: ignore[override]
        def connected(self) -> bool:
            return True  # the link state still says up: the Originate finds it down

        @connected.setter
        def connected(self, value: bool) -> None:
            pass

        async def originate(self, request: OriginateRequest) -> str:
            self.sent.append(request)
            raise AmiUnavailable("AMI is not connected; nothing dialed")

    link = Falling()
    dialer = DialerService(db, EventBus(), open_settings(settings), link)
    with caplog.at_level(logging.WARNING, logger="contactd.dialer.service"):
        await dialer.tick()
    assert len(link.sent) == 1  # the other leads are not tried
    assert [r.getMessage() for r in caplog.records] == [
        "dialing waits: the AMI link to Asterisk is down"]
    async with db.session() as session:
        leads = (await session.execute(select(Lead))).scalars().all()
        campaign = (await session.execute(select(Campaign))).scalar_one()
    assert {(lead.status, lead.attempts) for lead in leads} == {(LeadStatus.NEW, 0)}
    assert campaign.status is CampaignStatus.RUNNING
