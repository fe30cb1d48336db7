"""Live answers: the LiveAnswer rows the abandon-rate governor and the statistics count.

One row per attempt a person answered, connected or abandoned. Asterisk may abandon a call the
dialer had counted connected (its queue timed out, the agent's phone did not answer): the row
is then amended in place, never doubled, so a governor rebuilt from the rows after a restart
(recovery.seed_governor) counts exactly what the live one counted.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, NamedTuple

from sqlalchemy import select, update

from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import LiveAnswer
from contactd.db.session import Database
from contactd.dialer.pacing import Pacer

KEEP: Final = 10_000  # live answers remembered per campaign (a late CallAbandoned amends them)


class Answer(NamedTuple):
    at: float  # seconds: the instant the governor counted it (the row's `at`)
    abandoned: bool


class StoredAnswer(NamedTuple):
    campaign_id: int | None  # the attempt's campaign; None: not a campaign call
    answer: Answer | None  # its live answer row, if one was written


def as_datetime(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


async def insert(
    db: Database, campaign_id: int, attempt_id: str, answer: Answer, wait_s: float,
    node: str | None = None,
) -> None:
    async with db.transaction() as session:
        session.add(LiveAnswer(campaign_id=campaign_id, attempt_id=attempt_id,
                               abandoned=answer.abandoned, wait_s=wait_s,
                               at=as_datetime(answer.at), node=node))


async def mark_abandoned(db: Database, attempt_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(LiveAnswer).where(LiveAnswer.attempt_id == attempt_id).values(abandoned=True)
        )


async def stored(db: Database, attempt_id: str) -> StoredAnswer:
    """What the database knows of an attempt this process did not dial (after a restart)."""
    async with db.session() as session:
        campaign_id = await session.scalar(
            select(CallAttempt.campaign_id).where(CallAttempt.id == attempt_id)
        )
        row = (await session.execute(
            select(LiveAnswer.at, LiveAnswer.abandoned).where(LiveAnswer.attempt_id == attempt_id)
        )).first()
    if row is None:
        return StoredAnswer(campaign_id, None)
    return StoredAnswer(campaign_id, Answer(row.at.timestamp(), row.abandoned))


class AnswerLedger:
    """One campaign's live answers as this process counted them: each counted once, in the
    pacer and as a row; one counted connected may later turn abandoned (amended in place)."""

    def __init__(
        self, db: Database, campaign_id: int, pacer: Pacer, node: str | None = None
    ) -> None:
        self.db, self.campaign_id, self.pacer, self.node = db, campaign_id, pacer, node
        self._known: OrderedDict[str, Answer] = OrderedDict()
        self._lock = asyncio.Lock()  # one writer: a row is never written twice

    def get(self, attempt_id: str) -> Answer | None:
        return self._known.get(attempt_id)

    async def count(self, attempt_id: str, *, at: float, abandoned: bool, wait_s: float) -> None:
        async with self._lock:
            known = self._known.get(attempt_id)
            if known is None:
                answer = self._known[attempt_id] = Answer(at, abandoned)
                while len(self._known) > KEEP:
                    self._known.popitem(last=False)
                self.pacer.live_answer(at, abandoned=abandoned)
                await insert(self.db, self.campaign_id, attempt_id, answer, wait_s, self.node)
            elif abandoned and not known.abandoned:
                self._known[attempt_id] = known._replace(abandoned=True)
                self.pacer.answer_amended(known.at)
                await mark_abandoned(self.db, attempt_id)


async def amend_stored(
    db: Database, attempt_id: str, now: float, seeded_pacer: Callable[[int], Pacer | None],
    node: str | None = None,
) -> bool:
    """Abandon an attempt dialed by an earlier process (before a restart): amend its stored
    row (or write one), and the pacer of its campaign if that was already seeded from the
    rows (`seeded_pacer`; the caller keeps seeding out meanwhile). True: a campaign call."""
    known = await stored(db, attempt_id)
    if known.campaign_id is None:
        return False
    if known.answer is not None and known.answer.abandoned:
        return True
    pacer = seeded_pacer(known.campaign_id)
    if known.answer is None:
        await insert(db, known.campaign_id, attempt_id, Answer(now, True), 0.0, node)
        if pacer is not None:
            pacer.live_answer(now, abandoned=True)
    else:
        await mark_abandoned(db, attempt_id)
        if pacer is not None:
            pacer.answer_amended(known.answer.at)
    return True
