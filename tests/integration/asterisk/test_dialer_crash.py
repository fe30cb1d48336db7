"""Issue 13 on the real Asterisk sandbox: an automated message that did not play is a failure
with a reason, and a crash of the dialing process leaves no lead `dialing` and nobody who
heard the message is dialled again.

The "crash" is a process whose AMI link is cut for good (a TcpProxy that drops and refuses
connections): it hears nothing more, like a killed daemon, while Asterisk goes on. A second
DialerService + CallService on the same database then starts, CallService first (its
reconciliation publishes before the dialer subscribes: the order that left leads stuck).
The same with a real `kill -9` of a `contactd run` process, SIPp as the carrier:
tests/integration/sipp/test_daemon_kill9.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from panoramisk import Manager
from sqlalchemy import func, select

from contactd.ami.client import AmiClient
from contactd.calls.events import CallDialing, CallEnded, CallRinging
from contactd.calls.service import CallService
from contactd.config import AmiSettings, Settings
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.service import DialerService
from contactd.enums import CallOutcome, CampaignMode, LeadStatus
from contactd.events import EventBus
from tests.integration.asterisk.test_campaign_outcomes import campaign_settings
from tests.peers.asterisk import (
    AmiEvents,
    AsteriskSandbox,
    human,
    human_after_ring,
    set_audiosocket,
    world_e164,
)
from tests.peers.ports import free_port
from tests.peers.tcpproxy import TcpProxy

pytestmark = pytest.mark.asterisk
OC, LS = CallOutcome, LeadStatus


@contextlib.asynccontextmanager
async def dialing(
    db: Database, ami_settings: AmiSettings, settings: Settings
) -> AsyncIterator[DialerService]:
    """One contactd process: AMI link, call layer (entered first), then the dialer."""
    bus = EventBus()
    ami = AmiClient(ami_settings)
    calls = CallService(db, bus, ami, settings.asterisk)
    async with ami, calls:
        await ami.wait_connected(20)
        async with DialerService(db, bus, settings, calls) as dialer:
            yield dialer


async def add(db: Database, name: str, numbers: list[str], **fields: object) -> int:
    async with db.transaction() as session:
        campaign = Campaign(name=name, mode=CampaignMode.AUTOMATED, caller_id="5550100",
                            max_attempts=1, max_concurrent=5, **fields)
        session.add(campaign)
        await session.flush()
        for i, number in enumerate(numbers):
            e164 = world_e164(number, campaign.id * 10 + i)
            session.add(Lead(campaign_id=campaign.id, phone_e164=e164))
        return campaign.id


async def leads_of(db: Database, campaign_id: int) -> list[Lead]:
    async with db.session() as session:
        return list((await session.execute(
            select(Lead).where(Lead.campaign_id == campaign_id).order_by(Lead.id))).scalars())


async def until_settled(db: Database, bus: EventBus, campaign_ids: list[int],
                        within_s: float = 90) -> None:
    ended = asyncio.Event()
    bus.subscribe(CallEnded, lambda _e: ended.set())
    async with asyncio.timeout(within_s):
        while True:
            ended.clear()
            async with db.session() as session:
                left = await session.scalar(select(func.count(Lead.id)).where(
                    Lead.campaign_id.in_(campaign_ids),
                    Lead.status.in_((LS.NEW, LS.DIALING))))
            if left == 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), 1.0)


async def test_a_message_that_did_not_play_is_a_failure_with_its_reason(
    db: Database, asterisk: AsteriskSandbox, ami: Manager, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await set_audiosocket(ami, "127.0.0.1", free_port())  # nothing listens there
    settings = campaign_settings(tmp_path)
    played = await add(db, "played", [human(3)], message="beep")
    empty = await add(db, "empty", [human(3)], message="")
    missing = await add(db, "missing", [human(3)], message="no-such-sound-13")
    flow = await add(db, "flow", [human(30)], ivr_flow="survey")
    ids = [played, empty, missing, flow]
    async with dialing(db, asterisk.ami_settings(), settings) as dialer:
        for name in ("played", "empty", "missing", "flow"):
            await dialer.start(name)
        await until_settled(db, dialer.bus, ids)
    outcome = {cid: [(lead.status, lead.last_outcome) for lead in await leads_of(db, cid)]
               for cid in ids}
    assert outcome == {
        played: [(LS.DONE, OC.HUMAN)],
        empty: [(LS.EXHAUSTED, OC.FAILED)],
        missing: [(LS.EXHAUSTED, OC.FAILED)],
        flow: [(LS.EXHAUSTED, OC.FAILED)],
    }
    async with db.session() as session:
        rows = {a.campaign_id: a for a in (await session.execute(select(CallAttempt))).scalars()}
    assert rows[missing].outcome is OC.FAILED and rows[missing].answered_at is not None
    # The ivr caller was hung up, not left in the empty fallback queue (the person holds 30 s).
    assert rows[flow].talk_s is not None and rows[flow].talk_s < 10
    reasons = {r.reason for r in caplog.records if r.getMessage() == "answered call not completed"}
    assert reasons >= {"message not played: no message set",
                       "message not played: sound file no-such-sound-13 not played"}
    assert "message not played: ivr flow did not run over AudioSocket" in reasons


def long_message(sandbox: AsteriskSandbox, seconds: int = 4) -> str:
    """A prompt of `seconds` (8 kHz 16-bit mono silence) in the shared custom sounds."""
    name = f"crash-test-{uuid.uuid4().hex[:8]}"
    with wave.open(str(sandbox.sounds_dir / f"{name}.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 8000 * seconds)
    return f"custom/{name}"


@pytest.mark.parametrize("moment", ["ringing", "answered", "message"])
async def test_a_crash_then_a_restart_settles_every_lead_once(
    db: Database, asterisk: AsteriskSandbox, ami: Manager, tmp_path: Path, moment: str
) -> None:
    settings = campaign_settings(tmp_path)
    # ringing: a person who lets it ring 2 s; else one who answers at once. Each hears a 4 s
    # message after AMD (the dialplan then hangs up).
    number = human_after_ring(2) if moment == "ringing" else human(20)
    cid = await add(db, "crash", [number] * 3, message=long_message(asterisk))
    events = AmiEvents(ami, "UserEvent")
    async with (
        TcpProxy(asterisk.host, asterisk.ami_port) as proxy,
        dialing(db, asterisk.ami_settings(proxy.port), settings) as crashed,
    ):
        sent: list[str] = []
        all_sent = asyncio.Event()

        def dialed(event: CallDialing) -> None:
            sent.append(event.attempt_id)
            if len(sent) == 3:
                all_sent.set()

        ringing: set[str] = set()
        all_ringing = asyncio.Event()

        def rang(event: CallRinging) -> None:
            ringing.add(event.attempt_id)
            if len(ringing) == 3:
                all_ringing.set()

        crashed.bus.subscribe(CallDialing, dialed)
        crashed.bus.subscribe(CallRinging, rang)
        await crashed.start("crash")
        await asyncio.wait_for(all_sent.wait(), 30)
        ids = list(sent)
        if moment == "ringing":
            # The three Originates leave side by side: the crash comes once all three ring
            # (CallDialing alone may still have one in the proxy's buffer).
            await asyncio.wait_for(all_ringing.wait(), 30)
        else:
            # answered: AMD is listening; message: AMD said HUMAN, the message is playing.
            name = "ContactdAnswered" if moment == "answered" else "ContactdAMD"
            for attempt in ids:
                await events.user_event(name, timeout_s=30, Attempt=attempt)
        # kill -9: the process hears nothing more and never reconnects.
        await proxy.pause()
        await proxy.drop()
        # The calls go on without it, and end.
        for attempt in ids:
            await events.user_event("ContactdHangup", timeout_s=90, Attempt=attempt)
        async with db.session() as session:
            stuck = await session.scalar(select(func.count(Lead.id)).where(
                Lead.status == LS.DIALING))
        assert stuck == 3
        async with dialing(db, asterisk.ami_settings(), settings) as restarted:
            await until_settled(db, restarted.bus, [cid])
    leads = await leads_of(db, cid)
    async with db.session() as session:
        attempts = (await session.execute(select(CallAttempt))).scalars().all()
    # Each lead was dialled once (max_attempts=1) and settled once, from what was seen.
    assert sorted(a.lead_id for a in attempts) == sorted(lead.id for lead in leads)
    assert [lead.attempts for lead in leads] == [1, 1, 1]
    # Everybody heard the message (AstDB kept it through the crash): done, not redialled.
    assert [(lead.status, lead.last_outcome) for lead in leads] == [(LS.DONE, OC.HUMAN)] * 3
    # A lost attempt's talk time is not the time until the restart's reconciliation.
    assert all((a.talk_s or 0.0) < 5 for a in attempts), [a.talk_s for a in attempts]
