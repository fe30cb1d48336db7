"""A surplus hang-up against the real Asterisk sandbox: a predictive campaign's callee only
rings; once the call has rung `surplus_hangup_after_s` the pacer asks for one hang-up, and
the dialer ends it through the CallService. Asterisk really ends it (Hangup Cause 19 on the
callee channel) at 15 s of ringing, well before the ring timeout; the attempt is stored as no
answer with the reason, the lead waits for the no-answer retry, the pacer hears the call cut
short, and the log line and the counter say so.

The pacer is scripted (the real one's rule is tested in tests/unit/dialer/test_dialer_pacing.py)
so that the one call is asked for as soon as it is eligible."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from contactd.ami.client import AmiClient
from contactd.calls.events import CallEnded
from contactd.calls.service import CallService
from contactd.config import load_settings
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard
from contactd.dialer.pacing import PacingSnapshot, PredictivePacer
from contactd.dialer.service import DialerService
from contactd.enums import CallOutcome, CampaignMode, CampaignStatus, LeadStatus
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.metrics import Metrics
from tests.peers.asterisk import (
    NO_ANSWER,
    WORLD_TRUNK_TEMPLATE,
    AsteriskSandbox,
    agent,
    world_channel,
    world_e164,
)

pytestmark = pytest.mark.asterisk

AFTER_S = 15
RING_TIMEOUT_S = 40
RETRY_NO_ANSWER_S = 1800
SETTLE_S = 35.0


class OneCallPacer(PredictivePacer):
    """Dials one call, then asks for one hang-up as soon as a ringing call is eligible."""

    def __init__(self, hangup_after_s: float) -> None:
        super().__init__(hangup_after_s=hangup_after_s)
        self.dialed = False
        self.resolved: list[float] = []
        self.cancelled: list[float] = []

    def calls_to_dial(self, snap: PacingSnapshot, now: float) -> int:
        if self.dialed:
            return 0
        self.dialed = True
        return 1

    def calls_to_cancel(self, snap: PacingSnapshot, now: float) -> int:
        after = self.hangup_after_s
        return 1 if after is not None and any(age >= after for age in snap.ringing) else 0

    def call_resolved(self, ready_s: float, *, needs_agent: bool) -> None:
        self.resolved.append(ready_s)

    def call_cancelled(self, ring_s: float) -> None:
        self.cancelled.append(ring_s)


async def test_a_surplus_ringing_call_is_ended_at_15_s_and_stored_as_no_answer(
    db: Database, asterisk: AsteriskSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_DIALER__WINDOW_START": "00:00:00",
        "CONTACTD_DIALER__WINDOW_END": "23:59:59",
        "CONTACTD_DIALER__RING_TIMEOUT_S": str(RING_TIMEOUT_S),
        "CONTACTD_DIALER__SURPLUS_HANGUP_AFTER_S": str(AFTER_S),
        "CONTACTD_DIALER__RETRY_NO_ANSWER_S": str(RETRY_NO_ANSWER_S),
        "CONTACTD_DIALER__PACING_TICK_S": "0.2",
        "CONTACTD_ASTERISK__TRUNK_DIAL_TEMPLATE": WORLD_TRUNK_TEMPLATE,
    })
    async with db.transaction() as session:
        campaign = Campaign(name="surplus", mode=CampaignMode.PREDICTIVE,
                            caller_id="Acme <5550100>", max_attempts=3)
        session.add(campaign)
        await session.flush()
        session.add(Lead(campaign_id=campaign.id, phone_e164=world_e164(NO_ANSWER)))
        campaign_id = campaign.id
    pacer = OneCallPacer(float(settings.dialer.surplus_hangup_after_s))
    caplog.set_level(logging.INFO, logger="contactd.dialer.surplus")
    bus = EventBus()
    ami = AmiClient(asterisk.ami_settings())
    calls = CallService(db, bus, ami, settings.asterisk)
    channels: dict[str, float] = {}  # callee channel -> when it appeared
    hangups: list[tuple[str, str, float]] = []  # (channel, cause, seconds after it appeared)

    def on_channel(event: dict[str, object]) -> None:
        channels.setdefault(str(event.get("Channel")), time.monotonic())

    def on_hangup(event: dict[str, object]) -> None:
        name = str(event.get("Channel"))
        if name in channels:
            hangups.append((name, str(event.get("Cause")),
                            time.monotonic() - channels[name]))

    calls.ami.events.on("Newchannel", on_channel)
    calls.ami.events.on("Hangup", on_hangup)
    ended: list[CallEnded] = []
    done = asyncio.Event()

    def seen(event: CallEnded) -> None:  # subscribed after the dialer: runs after it settled
        ended.append(event)
        done.set()

    async with Metrics(db, bus, HealthRegistry()) as metrics, ami, calls:
        await ami.wait_connected(20)
        dialer = DialerService(db, bus, settings, calls, agents=AgentBoard())
        monkeypatch.setattr(dialer.runtimes, "_pacer", lambda campaign: pacer)
        async with dialer:
            bus.subscribe(CallEnded, seen)
            dialer.agents.login("a1", world_channel(agent(5)), campaign_id, dialer.clock())
            assert await dialer.start("surplus") is CampaignStatus.RUNNING
            try:
                async with asyncio.timeout(SETTLE_S):
                    await done.wait()
            except TimeoutError:
                pytest.fail(f"no CallEnded within {SETTLE_S} s; hang-ups seen: {hangups}")
            await dialer.stop("surplus")
        await calls.drain()
        counted = metrics.registry.get_sample_value(
            "contactd_dialer_surplus_hangups_total", {"campaign": str(campaign_id)})

    # Asterisk ended the callee's channel with cause 19 at 15 s of ringing, far from 40 s.
    callee = [h for h in hangups if h[0].endswith(";1")]
    assert len(callee) == 1, hangups
    _name, cause, rang = callee[0]
    assert cause == "19"
    assert AFTER_S <= rang < AFTER_S + 3, hangups
    # Stored as no answer, with why; the lead waits for the no-answer retry.
    (end,) = ended
    assert (end.outcome, end.cause, end.originate_reason) == (CallOutcome.NO_ANSWER, 19, 0)
    async with db.session() as session:
        attempt = await session.get(CallAttempt, end.attempt_id)
        lead = (await session.execute(select(Lead))).scalar_one()
    assert attempt is not None
    assert (attempt.outcome, attempt.hangup_cause) == (CallOutcome.NO_ANSWER, 19)
    assert attempt.ring_s is not None and AFTER_S <= attempt.ring_s < AFTER_S + 3
    assert attempt.detail is not None and attempt.detail.startswith("ended unanswered after 1")
    assert attempt.detail.endswith("s of ringing: the answers coming outnumbered free agents")
    assert (lead.status, lead.last_outcome, lead.attempts) == (
        LeadStatus.RETRY, CallOutcome.NO_ANSWER, 1)
    assert lead.next_attempt_at is not None
    due_in = lead.next_attempt_at.replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(seconds=RETRY_NO_ANSWER_S - 60) < due_in <= timedelta(
        seconds=RETRY_NO_ANSWER_S)
    # The pacer heard it cut short (censored), not failed; the log and the counter say so.
    assert pacer.resolved == [] and len(pacer.cancelled) == 1
    assert AFTER_S <= pacer.cancelled[0] < AFTER_S + 1
    said = [r for r in caplog.records if r.getMessage().startswith("ringing call ended")]
    assert [(r.attempt_id, r.campaign_id) for r in said] == [  # type: ignore[attr-defined]
        (end.attempt_id, campaign_id)]
    assert counted == 1.0
