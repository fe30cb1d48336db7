"""Where every call, IVR session and message lands: an interaction row on the right contact
and the follow-up tasks the rules in `policy` call for.

The IVR calls `start` at the first frame and `update` as answers arrive (a hang-up mid-way
still leaves a record), then `finish`; the dialer and messaging call `record` once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.crm import repo
from contactd.crm.events import InteractionRecorded, TaskCreated
from contactd.crm.policy import InteractionFacts, follow_ups
from contactd.crm.senders import SenderMatch, address_key, find, flag_for_review
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import NewTask, TaskService
from contactd.db.base import utcnow
from contactd.db.models import ChannelDecision, Interaction
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind
from contactd.errors import NotFoundError
from contactd.events import EventBus

# Contacts the router made from an unknown caller or sender carry this tag until someone
# qualifies them.
NEW_LEAD_TAG: Final = "new-lead"
FOUND_FRESH_S: Final = 1.0
FOUND_MAX: Final = 1024
_UPDATABLE = frozenset({"subject", "body", "transcript", "outcome", "recording_ref",
                        "ended_at", "user_id", "contact_id"})


@dataclass(frozen=True)
class InboundContact:
    """What the routed interaction knows about the remote party."""

    kind: InteractionKind
    direction: Direction
    channel: Channel
    remote_address: str = ""  # caller ID, SMS source or e-mail sender
    contact_id: int | None = None  # known already (campaign lead, reply thread)
    campaign_id: int | None = None
    user_id: int | None = None
    subject: str = ""
    body: str = ""
    transcript: str = ""
    outcome: str = ""
    recording_ref: str | None = None
    started_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FollowUp:
    """How the interaction ended, for the follow-up rules."""

    outcome: str = ""
    ended_at: datetime | None = None
    callback_at: datetime | None = None
    wants_agent: bool = False
    team: str | None = None
    skill: str | None = None


@dataclass(frozen=True)
class Routed:
    interaction_id: int
    contact_id: int | None
    task_ids: list[int]
    created_contact: bool = False


class Router:
    def __init__(
        self, db: Database, contacts: ContactService, tasks: TaskService, *,
        bus: EventBus | None = None, create_unknown: bool = True,
    ) -> None:
        self.db = db
        self.contacts = contacts
        self.tasks = tasks
        self.bus = bus
        # An unknown caller becomes a contact holding just the number, so the agent who calls
        # back sees the history; off, the interaction keeps only remote_address.
        self.create_unknown = create_unknown
        # `resolve` then `start` (inbound SMS, calls) asked the same question twice: start
        # reuses the answer resolve got for that address within FOUND_FRESH_S.
        self._found: dict[str, tuple[float, SenderMatch | None]] = {}

    async def find_sender(self, address: str) -> SenderMatch | None:
        """The contact(s) holding this phone number or e-mail address (crm/senders.py rule)."""
        key = address_key(address, self.contacts.phones)
        if key is None:
            return None
        async with self.db.session() as session:
            return await find(session, *key)

    async def resolve(self, item: InboundContact) -> tuple[int | None, bool]:
        """The contact `item` belongs to, and whether it was made now: the one caller lookup
        (phone or e-mail; the sender rule of crm/senders.py when several hold it), a new lead
        for an unknown sender when `create_unknown` is on."""
        contact_id, created, _match = await self._resolve(item)
        return contact_id, created

    async def _resolve(self, item: InboundContact) -> tuple[int | None, bool, SenderMatch | None]:
        if not item.remote_address:
            return item.contact_id, False, None
        if item.contact_id is not None:
            # The channel matched the sender itself (IVR caller ID, SMS): its choice stays the
            # link, but a shared address is still flagged for review.
            if item.direction is not Direction.INBOUND:
                return item.contact_id, False, None
            return item.contact_id, False, await self._kept(item.contact_id, item.remote_address)
        address = item.remote_address
        match = await self.find_sender(address)
        self._remember(address, match)
        if match is not None:
            return match.contact_id, False, match
        if not self.create_unknown:
            return None, False, None
        data = ContactInput(emails=[address], tags=[NEW_LEAD_TAG]) if "@" in address else (
            ContactInput(phones=[address], tags=[NEW_LEAD_TAG]))
        try:
            return await self.contacts.create_contact(data, allow_duplicate=True), True, None
        except Exception:  # an unreadable caller ID stays on the interaction only
            return None, False, None

    def _remember(self, address: str, match: SenderMatch | None) -> None:
        if len(self._found) >= FOUND_MAX:
            self._found.clear()
        self._found[address] = (time.monotonic(), match)

    async def _kept(self, contact_id: int, address: str) -> SenderMatch | None:
        seen = self._found.pop(address, None)
        if seen is not None and time.monotonic() - seen[0] <= FOUND_FRESH_S:
            found = seen[1]
        else:
            found = await self.find_sender(address)
        if found is None or not found.ambiguous:
            return None
        others = tuple(c for c in (found.contact_id, *found.others) if c != contact_id)
        return SenderMatch(contact_id, others)

    async def link_sender(self, interaction_id: int, match: SenderMatch) -> None:
        """Put the interaction on the best match; several candidates flag it for review."""
        review: tuple[int, int | None, str] | None = None
        async with self.db.transaction() as session:
            row = await session.get(Interaction, interaction_id)
            if row is None:
                raise NotFoundError(f"no interaction {interaction_id}")
            row.contact_id = match.contact_id
            if match.ambiguous:
                review = await flag_for_review(session, self.tasks, row, match,
                                               row.remote_address)
        await self._announce_review(review)

    async def _announce_review(self, review: tuple[int, int | None, str] | None) -> None:
        if review is not None and self.bus is not None:
            await self.bus.publish(
                TaskCreated(task_id=review[0], assignee_id=review[1], source=review[2]))

    async def start(self, item: InboundContact) -> Routed:
        """Store the interaction now (matched to its contact); tasks come with `finish`."""
        contact_id, created, match = await self._resolve(item)
        review: tuple[int, int | None, str] | None = None
        async with self.db.transaction() as session:
            row = Interaction(
                contact_id=contact_id, kind=item.kind, direction=item.direction,
                channel=item.channel, started_at=item.started_at or utcnow(),
                outcome=item.outcome, subject=item.subject[:300], body=item.body,
                transcript=item.transcript, recording_ref=item.recording_ref,
                remote_address=item.remote_address, campaign_id=item.campaign_id,
                user_id=item.user_id, data=item.data,
            )
            session.add(row)
            await session.flush()
            if match is not None and match.ambiguous:
                review = await flag_for_review(session, self.tasks, row, match,
                                               item.remote_address)
            interaction_id = row.id
        await self._announce_review(review)
        return Routed(interaction_id, contact_id, [], created)

    async def update(self, interaction_id: int, **changes: Any) -> None:
        """Record answers as they arrive: transcript, subject, outcome… (`data` is merged)."""
        extra = changes.pop("data", None)
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
        async with self.db.transaction() as session:
            row = await session.get(Interaction, interaction_id)
            if row is None:
                raise NotFoundError(f"no interaction {interaction_id}")
            for name, value in changes.items():
                setattr(row, name, value)
            if extra:
                row.data = {**row.data, **extra}

    async def attach_sender(self, interaction_id: int) -> int | None:
        """Put an interaction stored without a contact on its sender's contact (a new lead,
        tagged as such, when nobody has that number or address); one stored with a contact
        keeps it, flagged for review when others share the address."""
        async with self.db.session() as session:
            row = await session.get(Interaction, interaction_id)
            if row is None:
                raise NotFoundError(f"no interaction {interaction_id}")
            if row.contact_id is not None and "review" in row.data:
                return row.contact_id  # flagged by an earlier try
            item = InboundContact(kind=row.kind, direction=row.direction, channel=row.channel,
                                  remote_address=row.remote_address, contact_id=row.contact_id)
        contact_id, _, match = await self._resolve(item)
        if match is not None:
            await self.link_sender(interaction_id, match)
        elif contact_id is not None and item.contact_id is None:
            await self.update(interaction_id, contact_id=contact_id)
        return contact_id

    async def finish(
        self, interaction_id: int, end: FollowUp, *, data: dict[str, Any] | None = None
    ) -> Routed:
        """Close the interaction and create the follow-up tasks in the same transaction
        (`data` is merged into the interaction's in it too: a marker that it was routed)."""
        created: list[tuple[int, int | None, str]] = []
        async with self.db.transaction() as session:
            row = await session.get(Interaction, interaction_id)
            if row is None:
                raise NotFoundError(f"no interaction {interaction_id}")
            if data:
                row.data = {**row.data, **data}
            if end.outcome:
                row.outcome = end.outcome
            row.ended_at = end.ended_at or row.ended_at or utcnow()
            who = await self._who(session, row)
            facts = InteractionFacts(
                kind=row.kind, direction=row.direction, outcome=row.outcome,
                campaign_id=row.campaign_id, subject=row.subject, callback_at=end.callback_at,
                wants_agent=end.wants_agent, skill=end.skill, team=end.team,
            )
            for spec in follow_ups(facts, utcnow(), who):
                created.append(await self.tasks.create_in(session, NewTask(
                    title=spec.title, source=spec.source, contact_id=row.contact_id,
                    interaction_id=row.id, due_at=spec.due_at, remind_at=spec.remind_at,
                    priority=spec.priority, team=spec.team, skill=spec.skill,
                    description=row.transcript or row.body,
                )))
            routed = Routed(row.id, row.contact_id, [t[0] for t in created])
            event = InteractionRecorded(interaction_id=row.id, contact_id=row.contact_id,
                                        kind=row.kind.value, outcome=row.outcome)
        if self.bus is not None:
            await self.bus.publish(event)
            for task_id, assignee, source in created:
                await self.bus.publish(
                    TaskCreated(task_id=task_id, assignee_id=assignee, source=source)
                )
        return routed

    async def record(self, item: InboundContact, end: FollowUp | None = None) -> Routed:
        """A finished interaction in one call (dialer outcomes, SMS, e-mail)."""
        started = await self.start(item)
        finished = await self.finish(
            started.interaction_id, end or FollowUp(outcome=item.outcome)
        )
        return Routed(finished.interaction_id, finished.contact_id, finished.task_ids,
                      started.created_contact)

    async def record_decision(
        self, contact_id: int, channel: Channel, reason: str, *,
        campaign_id: int | None = None, details: dict[str, Any] | None = None,
    ) -> int:
        """Why a contact was called, texted, e-mailed or left alone: shown on the timeline."""
        async with self.db.transaction() as session:
            row = ChannelDecision(contact_id=contact_id, channel=channel, reason=reason[:64],
                                  campaign_id=campaign_id, details=details or {})
            session.add(row)
            await session.flush()
            return row.id

    async def _who(self, session: AsyncSession, row: Interaction) -> str:
        if row.contact_id is not None:
            c, o = repo.contacts, repo.organisations
            found = (await session.execute(
                select(c.c.first_name, c.c.last_name, o.c.name)
                .select_from(c.outerjoin(o)).where(c.c.id == row.contact_id)
            )).first()
            if found is not None:
                name = f"{found[0]} {found[1]}".strip() or (found[2] or "")
                if name:
                    return name
        return row.remote_address or "unknown caller"

