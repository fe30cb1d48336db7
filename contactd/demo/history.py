"""The demo's past: a campaign that ran over the last two weeks (its call attempts, with the
outcome mix a real list gives), the SMS and e-mails sent meanwhile, and documents made from
the built-in templates. Seeded with the rest of contactd/demo/data.py, once."""

from __future__ import annotations

import logging
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.crm.documents import DocumentService
from contactd.db.models import (
    AuditEntry,
    CallAttempt,
    Campaign,
    Contact,
    Document,
    Interaction,
    Lead,
    LeadList,
)
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.enums import (
    AttemptState,
    CallOutcome,
    CampaignMode,
    CampaignStatus,
    Channel,
    Direction,
    InteractionKind,
    LeadStatus,
    MessageState,
)

PAST_CAMPAIGN: Final = "Winter check-in"
# Outcome mix of an outbound list (weights), with the Q.850 cause each ends with.
OUTCOMES: Final = (
    (CallOutcome.HUMAN, 45, 16),
    (CallOutcome.MACHINE, 14, 16),
    (CallOutcome.NO_ANSWER, 22, 19),
    (CallOutcome.BUSY, 9, 17),
    (CallOutcome.UNALLOCATED, 4, 1),
    (CallOutcome.CONGESTION, 2, 34),
    (CallOutcome.ABANDONED, 1, 16),
)
DOCUMENTS: Final = 6


async def seed_campaign_results(session: AsyncSession, rng: random.Random,
                                people: list[Contact], now: datetime, days: int) -> None:
    """A finished campaign with call attempts spread over office hours of the last `days`."""
    campaign = Campaign(name=PAST_CAMPAIGN, mode=CampaignMode.PREDICTIVE,
                        status=CampaignStatus.FINISHED, caller_id="+15550100100",
                        max_attempts=3)
    session.add(campaign)
    await session.flush()
    leads_list = LeadList(campaign_id=campaign.id, name="Customers without contact this winter")
    session.add(leads_list)
    await session.flush()
    outcomes = [o for o, _w, _c in OUTCOMES]
    weights = [w for _o, w, _c in OUTCOMES]
    causes = {o: c for o, _w, c in OUTCOMES}
    callees = rng.sample([p for p in people if p.phones], k=min(160, len(people)))
    leads = [Lead(campaign_id=campaign.id, lead_list_id=leads_list.id, contact_id=person.id,
                  phone_e164=person.phones[0].e164) for person in callees]
    session.add_all(leads)
    await session.flush()
    calls: list[tuple[str, Interaction]] = []
    for person, lead in zip(callees, leads, strict=True):
        for attempt in range(1, 4):
            outcome = rng.choices(outcomes, weights)[0]
            day = now - timedelta(days=rng.randint(1, days))
            created = day.replace(hour=rng.randint(9, 18), minute=rng.randint(0, 59))
            ring = rng.uniform(3, 22)
            answered = outcome in (CallOutcome.HUMAN, CallOutcome.MACHINE, CallOutcome.ABANDONED)
            talk = rng.uniform(30, 400) if outcome is CallOutcome.HUMAN else (
                rng.uniform(5, 25) if answered else 0.0)
            ended = created + timedelta(seconds=ring + talk)
            attempt_id = str(uuid.UUID(int=rng.getrandbits(128)))
            # Each call on its contact's timeline, linked as the daemon's CallRecorder links
            # a live one (so the recorder finds nothing to add at the demo's first start).
            calls.append((attempt_id, Interaction(
                contact_id=person.id, kind=InteractionKind.CALL, direction=Direction.OUTBOUND,
                channel=Channel.CALL, started_at=created, ended_at=ended,
                outcome=outcome.value, remote_address=lead.phone_e164, campaign_id=campaign.id,
                data={"attempt_id": attempt_id, "ring_s": round(ring, 1),
                      "talk_s": round(talk, 1), "hangup_cause": causes[outcome]},
            )))
            session.add(CallAttempt(
                id=attempt_id, campaign_id=campaign.id,
                lead_id=lead.id, contact_id=person.id, phone_e164=lead.phone_e164,
                state=AttemptState.ENDED, outcome=outcome, hangup_cause=causes[outcome],
                detect_machine=True, originate_reason=4 if answered else None,
                amd_status={CallOutcome.HUMAN: "HUMAN", CallOutcome.MACHINE: "MACHINE"}.get(
                    outcome), created_at=created,
                answered_at=created + timedelta(seconds=ring) if answered else None,
                ended_at=ended, ring_s=round(ring, 1), talk_s=round(talk, 1),
            ))
            lead.attempts, lead.last_outcome = attempt, outcome
            if outcome is CallOutcome.HUMAN:
                lead.status = LeadStatus.DONE
                break
            lead.status = LeadStatus.EXHAUSTED if attempt == 3 else LeadStatus.RETRY
    session.add_all([row for _, row in calls])
    await session.flush()
    for attempt_id, row in calls:
        stored = await session.get(CallAttempt, attempt_id)
        assert stored is not None
        stored.interaction_id = row.id


def seed_agent_time(
    session: AsyncSession, rng: random.Random, calls: list[Interaction]
) -> None:
    """The workspace's audit entries behind the agents' past calls, as if they had worked
    them: each day a sign-in before their first call and a sign-out after their last, a
    half-hour lunch pause in a long day, and a wrap-up after each call spoken. The agents
    report then reads occupancy from the same entries a real day leaves."""
    days: dict[tuple[int, object], list[Interaction]] = {}
    for call in calls:
        if call.user_id is not None:
            days.setdefault((call.user_id, call.started_at.date()), []).append(call)

    def entry(user_id: int, action: str, at: datetime, after: dict[str, object] | None) -> None:
        session.add(AuditEntry(user_id=user_id, action=action, entity="campaign",
                               at=at, details={"before": None, "after": after}))

    for (user_id, _day), worked in days.items():
        first = min(c.started_at for c in worked)
        last = max(c.ended_at or c.started_at for c in worked)
        entry(user_id, "agent.join", first - timedelta(minutes=12), None)
        entry(user_id, "agent.ready", first - timedelta(minutes=10), None)
        if last - first > timedelta(hours=5):
            lunch = first + (last - first) / 2
            entry(user_id, "agent.pause", lunch, {"pause_code": "lunch"})
            entry(user_id, "agent.ready", lunch + timedelta(minutes=30), None)
        for call in worked:
            if call.ended_at is not None and call.body:  # a call somebody spoke on
                seconds = float(rng.randint(15, 90))
                entry(user_id, "agent.wrap", call.ended_at + timedelta(seconds=seconds),
                      {"seconds": seconds})
        entry(user_id, "agent.leave", last + timedelta(minutes=10), None)


def seed_messages(session: AsyncSession, rng: random.Random, people: list[Contact],
                  now: datetime, days: int) -> None:
    """Reminders and confirmations sent by SMS and e-mail over the last `days`."""
    for index, person in enumerate(rng.sample(people, k=min(120, len(people)))):
        sms = bool(person.phones) and rng.random() < 0.6
        created = now - timedelta(days=rng.uniform(0.5, days))
        state = rng.choices((MessageState.DELIVERED, MessageState.SENT, MessageState.FAILED),
                            (85, 10, 5))[0]
        to = person.phones[0].e164 if sms else person.emails[0].address
        session.add(OutboxMessage(
            idempotency_key=f"demo-history-{index}", channel=Channel.SMS if sms else Channel.EMAIL,
            state=state, contact_id=person.id, to_address=to,
            subject="" if sms else "Your appointment is confirmed",
            body=f"Hello {person.first_name}, your appointment is confirmed.",
            attempts=1, provider_id=f"hist{index:06d}" if state is not MessageState.FAILED
            else None, error="rejected by the provider" if state is MessageState.FAILED else "",
            created_at=created, sent_at=created + timedelta(seconds=2)
            if state is not MessageState.FAILED else None,
            delivered_at=created + timedelta(seconds=9)
            if state is MessageState.DELIVERED else None,
        ))


async def seed_documents(db: Database, data_dir: Path, days: int) -> None:
    """Offers, contracts and letters from the built-in templates, dated over `days`; once
    (nothing happens when documents exist). Run after start-up: each PDF takes ~1 s."""
    async with db.session() as session:
        if await session.scalar(select(func.count()).select_from(Document)):
            return
        contact_ids = list(await session.scalars(select(Contact.id).order_by(Contact.id)))
    rng = random.Random(len(contact_ids))
    now = datetime.now(UTC)
    # fpdf2's font subsetting logs every table at INFO: a few PDFs would flood the log.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    service = DocumentService(db, data_dir, sender="contactd demo")
    await service.install_defaults()
    kinds = ("offer", "contract", "letter", "invoice")
    for contact_id in rng.sample(contact_ids, k=min(DOCUMENTS, len(contact_ids))):
        document = await service.generate(rng.choice(kinds), contact_id)
        async with db.transaction() as session:
            await session.execute(update(Document).where(Document.id == document.id).values(
                created_at=now - timedelta(days=rng.uniform(0, days))))
