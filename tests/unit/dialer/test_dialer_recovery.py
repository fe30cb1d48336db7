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
    with caplog.at_level(logging.ERROR, logger="contactd.dialer"):
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
    with caplog.at_level(logging.INFO, logger="contactd.dialer"):
        for _ in range(20):
            await dialer.tick()
        link.connected = True
        await dialer.tick()
    said = [r.getMessage() for r in caplog.records if "AMI link" in r.getMessage()]
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
    with caplog.at_level(logging.WARNING, logger="contactd.dialer"):
        await dialer.tick()
    # The tick's claims leave side by side: each finds the link down and its lead restored.
    assert len(link.sent) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "dialing waits: the AMI link to Asterisk is down"]
    async with db.session() as session:
        leads = (await session.execute(select(Lead))).scalars().all()
        campaign = (await session.execute(select(Campaign))).scalar_one()
    assert {(lead.status, lead.attempts) for lead in leads} == {(LeadStatus.NEW, 0)}
    assert campaign.status is CampaignStatus.RUNNING


async def test_the_daemon_says_what_it_does_with_totals_and_refusals_per_minute(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from contactd.db.models.crm import DoNotCall
    from contactd.dialer.campaigns import CampaignAction
    from contactd.dialer.recovery import change_status

    cid = await add_campaign(db, name="ops")
    async with db.transaction() as session:
        session.add_all([Lead(campaign_id=cid, phone_e164="+442079460091"),
                         Lead(campaign_id=cid, phone_e164="+442079460092")])
        session.add(DoNotCall(e164="+442079460092", campaign_id=None))
    now = [1000.0]
    dialer = DialerService(db, EventBus(), open_settings(settings), Link(),
                           clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="contactd.dialer"):
        await dialer.tick()
        await change_status(db, "ops", CampaignAction.PAUSE)  # as `contactd dialer pause`
        now[0] += 61
        await dialer.tick()
    said = [(r.getMessage(), getattr(r, "totals", None) or getattr(r, "refusals", None))
            for r in caplog.records]
    assert said == [
        ("campaign started", {"new": 2, "attempts": 0}),
        ("campaign paused", {"dialing": 1, "new": 1, "attempts": 0}),
        ("dial refusals in the last minute", {"dnc_global": 1}),
    ]


async def test_stats_text_shows_refusals_talk_time_and_abandon_windows(
    db: Database, settings: Settings
) -> None:
    from contactd.db.models.dialer import DialRefusal, LiveAnswer
    from contactd.dialer.stats import campaign_stats

    cid = await add_campaign(db, name="st")
    async with db.transaction() as session:
        session.add_all([
            CallAttempt(id="t1", campaign_id=cid, phone_e164="+1", state=AttemptState.ENDED,
                        outcome=CallOutcome.HUMAN, answered_at=NOW, talk_s=90.0),
            CallAttempt(id="t2", campaign_id=cid, phone_e164="+1", state=AttemptState.ENDED,
                        outcome=CallOutcome.HUMAN, answered_at=NOW, talk_s=30.0),
            LiveAnswer(campaign_id=cid, attempt_id="t1", at=NOW - timedelta(hours=2)),
            LiveAnswer(campaign_id=cid, attempt_id="t2", abandoned=True,
                       at=NOW - timedelta(days=3)),
            DialRefusal(campaign_id=cid, phone_e164="+1", reason="dnc_global"),
            DialRefusal(campaign_id=cid, phone_e164="+2", reason="dnc_global"),
            DialRefusal(campaign_id=cid, phone_e164="+3", reason="outside_window"),
        ])
    async with db.session() as session:
        stats = await campaign_stats(session, cid, windows_s=(30 * 86400.0, 24 * 3600.0),
                                     now=NOW)
    lines = stats.lines()
    assert "talk time 2.0 min (average 60 s per person)" in lines
    assert "refusals: dnc_global 2, outside_window 1" in lines
    assert "abandons over the last 30 d: 1 of 2 live answers = 50.00%" in lines
    assert "abandons over the last 1 d: 0 of 1 live answers = 0.00%" in lines
    assert stats.as_dict()["abandon_windows"][0]["rate"] == 0.5


def test_dialer_start_says_whether_a_daemon_answers(settings: Settings) -> None:
    import http.server
    import threading

    from contactd.commands.dialer import daemon_note
    from tests.peers.ports import free_port

    port = free_port()
    web = settings.web.model_copy(update={"port": port})
    alone = settings.model_copy(update={"web": web})
    assert daemon_note(alone).startswith(f"no daemon answers at http://127.0.0.1:{port}/healthz")

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)  # a degraded daemon still answers
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Health)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        assert daemon_note(alone) == (
            f"the daemon at http://127.0.0.1:{port}/healthz follows it within a pacing tick")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
