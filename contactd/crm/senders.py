"""Which contact a sender (phone number or e-mail address) is, when several could be.

The rule: every live contact holding the address is a candidate; the best is the one with the
most recent interaction, else (none has any) the lowest id, the oldest record. A sender with
several candidates is linked to the best and never split silently: the interaction carries
`data["review"]` naming every candidate, each pair is listed in `possible_duplicates`, and a
review task goes to a supervisor (chosen by `crm/assign.escalation_target`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.crm.assign import escalation_target
from contactd.crm.bulk_phones import PhoneNormaliser
from contactd.crm.tasks import NewTask, TaskService, agent_snapshot
from contactd.db.models import Contact, ContactEmail, ContactPhone, Interaction, User
from contactd.db.models.duplicates import PossibleDuplicate
from contactd.enums import Role, TaskPriority, TaskSource

AMBIGUOUS: Final = "ambiguous_sender"
MAX_CANDIDATES: Final = 20  # a number shared by more (a switchboard) is still flagged, not listed


@dataclass(frozen=True, slots=True)
class SenderMatch:
    contact_id: int  # the best candidate
    others: tuple[int, ...] = ()  # the rest, best first

    @property
    def ambiguous(self) -> bool:
        return bool(self.others)


def address_key(address: str, phones: PhoneNormaliser) -> tuple[str, str] | None:
    """("email", lower-cased) or ("phone", E.164); None for what is neither."""
    text = address.strip()
    if "@" in text:
        return "email", text.lower()
    parsed = phones.try_parse(text)
    return None if isinstance(parsed, str) else ("phone", parsed.e164)


async def find(session: AsyncSession, kind: str, value: str) -> SenderMatch | None:
    table = ContactEmail if kind == "email" else ContactPhone
    column = ContactEmail.address if kind == "email" else ContactPhone.e164
    ids = sorted(set(await session.scalars(
        select(table.contact_id).join(Contact, Contact.id == table.contact_id)
        .where(column == value, Contact.merged_into_id.is_(None))
        .limit(MAX_CANDIDATES)
    )))
    if not ids:
        return None
    if len(ids) == 1:
        return SenderMatch(ids[0])
    last: dict[int, datetime] = {
        cid: at for cid, at in await session.execute(
            select(Interaction.contact_id, func.max(Interaction.started_at))
            .where(Interaction.contact_id.in_(ids)).group_by(Interaction.contact_id)
        ) if cid is not None and at is not None
    }
    ranked = sorted(ids, key=lambda cid: (cid not in last,
                                          -last[cid].timestamp() if cid in last else 0.0, cid))
    return SenderMatch(ranked[0], tuple(ranked[1:]))


async def flag_for_review(
    session: AsyncSession, tasks: TaskService, row: Interaction, match: SenderMatch,
    address: str,
) -> tuple[int, int | None, str]:
    """Mark the interaction, list the pairs, and make the supervisor's review task."""
    candidates = [match.contact_id, *match.others]
    row.data = {**row.data, "review": {"reason": AMBIGUOUS, "address": address,
                                       "candidates": candidates}}
    for other in match.others:
        low, high = sorted((match.contact_id, other))
        listed = await session.scalar(select(PossibleDuplicate.id).where(
            PossibleDuplicate.contact_id == low, PossibleDuplicate.other_id == high))
        if listed is None:
            session.add(PossibleDuplicate(contact_id=low, other_id=high, reason=AMBIGUOUS))
    supervisors = set(await session.scalars(
        select(User.id).where(User.role == Role.SUPERVISOR, User.active.is_(True))))
    assignee = escalation_target(await agent_snapshot(session), team=None, current_id=None,
                                 supervisors=supervisors)
    return await tasks.create_in(session, NewTask(
        title=f"Review: {address} matches {len(candidates)} contacts",
        source=TaskSource.REVIEW, contact_id=match.contact_id, interaction_id=row.id,
        priority=TaskPriority.NORMAL, assignee_id=assignee,
        description="Linked to contact #{} (most recent interaction, else oldest); also "
                    "{}".format(match.contact_id, ", ".join(f"#{o}" for o in match.others)),
    ))
