"""A progressive campaign over 30 leads against the real Asterisk sandbox: every outcome kind
reaches the right final state, with retries, callbacks, DNC refusals and SMS/email fallbacks.

The whole production path runs: DialerService → CallService (attempt row, Originate) →
Asterisk (contactd-outbound: AMD, agent hand-off by Setvar) → AMI events → bus → retry rules →
Messaging's durable outbox. Only the numbers are simulated (the sandbox's test world).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from contactd.ami.client import AmiClient
from contactd.calls.events import CallEnded
from contactd.calls.service import CallService
from contactd.config import Settings, load_settings
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import Consent, Contact, ContactPhone, DoNotCall
from contactd.db.models.dialer import Campaign, DialRefusal, Lead, LiveAnswer
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard
from contactd.dialer.connect import SetvarConnector
from contactd.dialer.service import DialerService
from contactd.dialer.stats import campaign_stats
from contactd.enums import (
    CallOutcome,
    CampaignMode,
    CampaignStatus,
    Channel,
    ConsentStatus,
    LeadStatus,
    PhoneType,
)
from contactd.events import EventBus
from contactd.messaging.service import MessagingService
from tests.peers.asterisk import (
    BUSY,
    CONGESTION,
    NO_ANSWER,
    UNALLOCATED,
    WORLD_TRUNK_TEMPLATE,
    AsteriskSandbox,
    agent,
    human,
    human_hangup,
    machine,
    world_channel,
    world_e164,
)

pytestmark = pytest.mark.asterisk
OC, LS = CallOutcome, LeadStatus
FINAL = (LS.DONE, LS.EXHAUSTED, LS.FALLBACK)


# (world number, expected final status, expected attempts, last outcome, has a contact)
def plan() -> list[tuple[str, LeadStatus, int, CallOutcome | None, bool]]:
    rows: list[tuple[str, LeadStatus, int, CallOutcome | None, bool]] = []
    rows += [(human(8), LS.DONE, 1, OC.HUMAN, False) for _ in range(9)]
    rows += [(human_hangup(5), LS.DONE, 1, OC.HUMAN, False) for _ in range(2)]
    rows += [(BUSY, LS.FALLBACK, 2, OC.BUSY, True) for _ in range(2)]  # retried, then SMS
    rows += [(BUSY, LS.EXHAUSTED, 2, OC.BUSY, False) for _ in range(2)]  # no contact: nothing
    rows += [(NO_ANSWER, LS.EXHAUSTED, 2, OC.NO_ANSWER, False) for _ in range(2)]
    rows += [(UNALLOCATED, LS.EXHAUSTED, 1, OC.UNALLOCATED, False) for _ in range(3)]
    rows += [(CONGESTION, LS.EXHAUSTED, 2, OC.CONGESTION, False) for _ in range(3)]
    rows += [(machine(3), LS.FALLBACK, 1, OC.MACHINE, True) for _ in range(4)]  # → SMS
    rows += [(human(8), LS.DONE, 1, OC.HUMAN, False)]  # scheduled callback
    rows += [(human(8), LS.NEW, 0, None, False) for _ in range(2)]  # DNC: never dialed
    assert len(rows) == 30
    return rows


def campaign_settings(tmp_path: Path) -> Settings:
    return load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_DIALER__WINDOW_START": "00:00:00",
        "CONTACTD_DIALER__WINDOW_END": "23:59:59",
        "CONTACTD_DIALER__RING_TIMEOUT_S": "15",
        "CONTACTD_DIALER__RETRY_BUSY_S": "1",
        "CONTACTD_DIALER__RETRY_NO_ANSWER_S": "1",
        "CONTACTD_DIALER__RETRY_FAILED_S": "1",
        "CONTACTD_DIALER__RETRY_MACHINE_S": "1",
        "CONTACTD_DIALER__MACHINE_ACTION": "fallback",
        "CONTACTD_DIALER__PACING_TICK_S": "0.2",
        # Leads carry real-looking E.164 numbers; the sandbox's world is the trunk.
        "CONTACTD_ASTERISK__TRUNK_DIAL_TEMPLATE": WORLD_TRUNK_TEMPLATE,
    })


@asynccontextmanager
async def running(
    db: Database, sandbox: AsteriskSandbox, settings: Settings
) -> AsyncIterator[tuple[DialerService, AgentBoard]]:
    bus = EventBus()
    ami = AmiClient(sandbox.ami_settings())
    calls = CallService(db, bus, ami, settings.asterisk)
    board = AgentBoard(auto_ready_s=0.5)
    async with ami, calls, MessagingService(settings, db, bus) as messaging:
        await ami.wait_connected(20)
        dialer = DialerService(db, bus, settings, calls, agents=board,
                               connector=SetvarConnector(calls), fallback=messaging)
        async with dialer:
            yield dialer, board
        await calls.drain()


async def seed(db: Database) -> tuple[int, dict[int, tuple]]:  # type: ignore[type-arg]
    expected: dict[int, tuple] = {}  # type: ignore[type-arg]
    async with db.transaction() as session:
        campaign = Campaign(name="e2e", mode=CampaignMode.PROGRESSIVE, caller_id="Acme <5550100>",
                            max_attempts=2, max_concurrent=4, max_calls_per_second=5,
                            fallback_channel=Channel.SMS)
        session.add(campaign)
        await session.flush()
        for i, (number, status, attempts, outcome, has_contact) in enumerate(plan()):
            e164 = world_e164(number, i)
            contact_id = None
            if has_contact:
                contact = Contact(first_name="Lead", last_name=f"{i}")
                session.add(contact)
                await session.flush()
                contact_id = contact.id
                session.add_all([
                    ContactPhone(contact_id=contact.id, e164=f"+4477009{i:05d}",
                                 type=PhoneType.MOBILE, is_primary=True),
                    Consent(contact_id=contact.id, channel=Channel.SMS,
                            status=ConsentStatus.GRANTED, source="web form"),
                ])
            lead = Lead(campaign_id=campaign.id, phone_e164=e164, contact_id=contact_id,
                        priority=0)
            session.add(lead)
            await session.flush()
            expected[lead.id] = (number, status, attempts, outcome)
            if status is LS.NEW:
                session.add(DoNotCall(e164=e164, campaign_id=None if i % 2 else campaign.id,
                                      reason="asked not to be called"))
        return campaign.id, expected


async def test_thirty_leads_reach_their_final_states(
    db: Database, asterisk: AsteriskSandbox, tmp_path: Path
) -> None:
    settings = campaign_settings(tmp_path)
    campaign_id, expected = await seed(db)
    callback_lead = max(lid for lid, (_, s, _, _) in expected.items() if s is LS.DONE)
    async with running(db, asterisk, settings) as (dialer, board):
        now = datetime.now(UTC)
        for n in range(3):
            board.login(f"agent{n}", world_channel(agent(2)), campaign_id, dialer.clock())
        await dialer.schedule_callback(callback_lead, now + timedelta(seconds=3))
        assert await dialer.start("e2e") is CampaignStatus.RUNNING

        async def settled() -> bool:
            async with db.session() as session:
                open_leads = await session.scalar(
                    select(func.count(Lead.id)).where(
                        Lead.campaign_id == campaign_id, Lead.status.not_in(FINAL),
                        Lead.status != LS.NEW,
                    )
                )
                fresh = await session.scalar(
                    select(func.count(Lead.id)).where(Lead.status == LS.NEW)
                )
            return open_leads == 0 and fresh == 2

        # Leads settle inside the dialer's CallEnded handler; this one runs after it.
        ended = asyncio.Event()
        dialer.bus.subscribe(CallEnded, lambda _event: ended.set())
        try:
            async with asyncio.timeout(240):
                while not await settled():
                    ended.clear()
                    await ended.wait()
        except TimeoutError:
            async with db.session() as session:
                stuck = (await session.execute(
                    select(Lead.id, Lead.status, Lead.attempts, Lead.next_attempt_at)
                    .where(Lead.status.not_in(FINAL))
                )).all()
            calls = {rt.campaign_id: rt.calls.describe() for rt in dialer.runtimes}
            agents = [(a.name, a.state, a.attempt_id) for a in board.agents.values()]
            pytest.fail(f"leads not settled after 240 s: {stuck}; calls {calls}; agents {agents}")

    async with db.session() as session:
        leads = {lead.id: lead for lead in (await session.execute(select(Lead))).scalars()}
        refusals = (await session.execute(select(DialRefusal))).scalars().all()
        outbox = (await session.execute(select(OutboxMessage))).scalars().all()
        live = (await session.execute(select(LiveAnswer))).scalars().all()
        attempts = (await session.execute(select(CallAttempt))).scalars().all()
        stats = await campaign_stats(session, campaign_id)

    wrong = {
        lid: (world_number, (lead.status, lead.attempts, lead.last_outcome), (s, a, o))
        for lid, (world_number, s, a, o) in expected.items()
        if (lead := leads[lid]).status is not s or lead.attempts != a or lead.last_outcome != o
    }
    assert not wrong, wrong
    # The callback was due 3 s after start while fresh leads still waited: the first dial at or
    # after that moment is the callback's (callbacks come first when due), and not before it.
    due_at = leads[callback_lead].callback_at
    assert due_at is not None
    after = sorted((a.created_at, a.lead_id) for a in attempts if a.created_at >= due_at)
    assert after and after[0][1] == callback_lead, after[:3]
    assert not [a for a in attempts if a.lead_id == callback_lead and a.created_at < due_at]
    fresh_after = [lid for at, lid in after if leads[lid].attempts == 1 and lid != callback_lead]
    assert fresh_after, "no fresh lead was still waiting: the order was not tested"
    # DNC: refused with the reason, once per lead (not every tick), never dialed.
    dnc_leads = {lid for lid, (_, s, _, _) in expected.items() if s is LS.NEW}
    assert {r.lead_id for r in refusals if r.reason.startswith("dnc_")} == dnc_leads
    assert len([r for r in refusals if r.lead_id in dnc_leads and "dnc" in r.reason]) == 2
    assert not [a for a in attempts if a.lead_id in dnc_leads]
    # Fallbacks went into the durable outbox, one per lead.
    fallback_contacts = {leads[lid].contact_id for lid, (_, s, _, _) in expected.items()
                         if s is LS.FALLBACK}
    assert {m.contact_id for m in outbox} == fallback_contacts
    assert {m.channel for m in outbox} == {Channel.SMS}
    # Every person was connected to an agent: no abandons with enough agents and 1:1 warm-up.
    humans = [lid for lid, (_, s, _, o) in expected.items() if o is OC.HUMAN]
    assert len(live) == len(humans) and not [x for x in live if x.abandoned]
    assert (stats.humans, stats.machines, stats.abandons) == (len(humans), 4, 0)
    assert stats.attempts == sum(a for (_, _, a, _) in expected.values())
    assert all(a.campaign_id == campaign_id for a in attempts)
