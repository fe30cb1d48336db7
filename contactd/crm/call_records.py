"""Every call attempt that ends leaves one interaction on its contact's timeline.

The dialer and click-to-call write `CallAttempt` rows; this subscriber turns each ended attempt
into an `Interaction` (outcome, ring and talk time, agent, campaign) linked both ways, then lets
the router create the follow-up tasks. Exactly once, across crashes: the interaction is created
in the same transaction that links it to the attempt, and a sweep at start picks up attempts
that ended while nobody listened (or whose follow-ups were not made yet).

In batches: `CallEnded` only queues the event; one owned worker takes everything queued and
records it in two transactions (link: the interactions inserted and their attempts linked;
finish: `crm/routing_pending.route_pending_many` makes the follow-up tasks and marks each
`call: done`), so a campaign's burst of outcomes costs a few statements per batch, not a
dozen round trips per call. Leaving, the recorder records what is still queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, select, update

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.calls.events import CallEnded
from contactd.crm.routing import FollowUp, Router
from contactd.crm.routing_batch import _insert_ids
from contactd.crm.routing_pending import route_pending_many
from contactd.db.base import utcnow
from contactd.db.models import Interaction
from contactd.db.models.calls import CallAttempt
from contactd.db.session import Database
from contactd.enums import AttemptState, Channel, Direction, InteractionKind
from contactd.events import EventBus

log = logging.getLogger(__name__)

# The mark in Interaction.data: linked, follow-ups not made yet ("done" once they are).
KEY: Final = "call"
PENDING: Final = "pending"
DONE: Final = "done"
MAX_BATCH: Final = 500
DRAIN_S: Final = 10.0  # leaving, how long what is queued may take before the sweep gets it
ATTEMPTS = cast(Table, CallAttempt.__table__)


class CallRecorder:
    """Subscribes to CallEnded; `sweep()` settles what ended before it subscribed."""

    def __init__(self, db: Database, router: Router, bus: EventBus) -> None:
        self.db = db
        self.router = router
        self.bus = bus
        self._lock = asyncio.Lock()  # the sweep and live events never link one attempt twice
        self._queue: asyncio.Queue[CallEnded] = asyncio.Queue()
        self._owner = TaskOwner("call-records", log)
        self.state = LoopState("call-records")
        self.batches = 0

    async def __aenter__(self) -> CallRecorder:
        self.bus.subscribe(CallEnded, self._on_ended)
        await self.sweep()
        self._owner.spawn(run_resilient(self._step, self.state, logger=log), "record")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bus.unsubscribe(CallEnded, self._on_ended)
        try:
            await asyncio.wait_for(self._queue.join(), DRAIN_S)
        except TimeoutError:  # stored calls all the same: the next start's sweep records them
            log.warning("ended calls left for the next start", extra={"calls": self._queue.qsize()})
        await self._owner.close()

    async def _on_ended(self, event: CallEnded) -> None:
        self._queue.put_nowait(event)

    async def _step(self) -> None:
        events = [await self._queue.get()]
        await asyncio.sleep(0)  # events published in the same turn join this batch
        while len(events) < MAX_BATCH and not self._queue.empty():
            events.append(self._queue.get_nowait())
        try:
            await self.record_many([(e.attempt_id, e) for e in events])
        except Exception:  # the sweep at next start retries; the calls themselves are stored
            log.exception("calls not recorded on the timeline", extra={"calls": len(events)})
        finally:
            for _ in events:
                self._queue.task_done()

    async def record_many(self, attempts: Sequence[tuple[str, CallEnded | None]]) -> dict[str, int]:
        """Record ended attempts (with the event that ended each, when there is one) in two
        transactions; attempt id -> its interaction, for those made now."""
        async with self._lock:
            linked = await self._link_many(attempts)
            if not linked:
                return {}
            ends = {interaction_id: ended for interaction_id, ended in linked.values()}
            result = await route_pending_many(
                self.router,
                list(ends),
                KEY,
                PENDING,
                DONE,
                ended={i: e for i, e in ends.items() if e is not None},
                unknown_stays=True,  # as `_finish`: a number nobody holds stays on no contact
            )
            for interaction_id in result.one_by_one:  # a sender to decide on: as one by one
                await self._finish(interaction_id)
            self.batches += 1
        log.debug("calls recorded on the timeline", extra={"calls": len(linked)})
        return {attempt_id: i for attempt_id, (i, _) in linked.items()}

    async def _link_many(
        self, attempts: Sequence[tuple[str, CallEnded | None]]
    ) -> dict[str, tuple[int, datetime | None]]:
        """One transaction: an interaction for each attempt that has none yet, linked to it.
        attempt id -> (interaction id, the attempt's end)."""
        events = dict(attempts)  # an event repeated in the batch counts once
        async with self.db.transaction() as session:
            found = list(
                await session.scalars(
                    select(CallAttempt).where(
                        CallAttempt.id.in_(list(events)), CallAttempt.interaction_id.is_(None)
                    )
                )
            )
            if not found:
                return {}
            rows = [self._row(a, events.get(a.id)) for a in found]
            ids = await _insert_ids(session, Interaction, rows)
            await session.execute(
                update(ATTEMPTS)
                .where(ATTEMPTS.c.id == bindparam("b_id"))
                .values(interaction_id=bindparam("b_interaction")),
                [{"b_id": a.id, "b_interaction": i} for a, i in zip(found, ids, strict=True)],
                execution_options={"synchronize_session": False},
            )
            return {a.id: (i, a.ended_at) for a, i in zip(found, ids, strict=True)}

    @staticmethod
    def _row(attempt: CallAttempt, ended: CallEnded | None) -> dict[str, Any]:
        """Every column of the attempt's interaction (as `_link` makes it), marked pending."""
        outcome = ended.outcome if ended is not None else attempt.outcome
        return {
            "contact_id": attempt.contact_id,
            "kind": InteractionKind.CALL,
            "direction": Direction.OUTBOUND,
            "channel": Channel.CALL,
            "started_at": attempt.created_at,
            "ended_at": None,
            "outcome": outcome.value if outcome else "",
            "subject": "",
            "body": "",
            "transcript": "",
            "recording_ref": None,
            "remote_address": attempt.phone_e164,
            "campaign_id": attempt.campaign_id,
            "user_id": attempt.agent_id,
            "data": {
                "attempt_id": attempt.id,
                "ring_s": ended.ring_s if ended is not None else attempt.ring_s,
                "talk_s": ended.talk_s if ended is not None else attempt.talk_s,
                "hangup_cause": ended.cause if ended is not None else attempt.hangup_cause,
                "amd_status": attempt.amd_status,
                KEY: PENDING,
            },
        }

    async def record(self, attempt_id: str, ended: CallEnded | None = None) -> int | None:
        """The interaction of one ended attempt (made now, or the one made before)."""
        async with self._lock:
            interaction_id, fresh = await self._link(attempt_id, ended)
            if interaction_id is None:
                return None
            if fresh:
                await self._finish(interaction_id)
            return interaction_id

    async def _link(self, attempt_id: str, ended: CallEnded | None) -> tuple[int | None, bool]:
        async with self.db.transaction() as session:
            attempt = await session.get(CallAttempt, attempt_id)
            if attempt is None:
                return None, False
            if attempt.interaction_id is not None:
                return attempt.interaction_id, False
            outcome = ended.outcome if ended is not None else attempt.outcome
            ring_s = ended.ring_s if ended is not None else attempt.ring_s
            talk_s = ended.talk_s if ended is not None else attempt.talk_s
            cause = ended.cause if ended is not None else attempt.hangup_cause
            row = Interaction(
                contact_id=attempt.contact_id,
                kind=InteractionKind.CALL,
                direction=Direction.OUTBOUND,
                channel=Channel.CALL,
                started_at=attempt.created_at,
                outcome=outcome.value if outcome else "",
                remote_address=attempt.phone_e164,
                campaign_id=attempt.campaign_id,
                user_id=attempt.agent_id,
                data={
                    "attempt_id": attempt.id,
                    "ring_s": ring_s,
                    "talk_s": talk_s,
                    "hangup_cause": cause,
                    "amd_status": attempt.amd_status,
                },
            )
            session.add(row)
            await session.flush()
            attempt.interaction_id = row.id
            log.debug(
                "call recorded on the timeline",
                extra={
                    "attempt_id": attempt.id,
                    "interaction_id": row.id,
                    "contact_id": attempt.contact_id,
                },
            )
            return row.id, True

    async def _finish(self, interaction_id: int) -> None:
        async with self.db.session() as session:
            ended_at = await session.scalar(
                select(CallAttempt.ended_at).where(CallAttempt.interaction_id == interaction_id)
            )
        await self.router.finish(
            interaction_id, FollowUp(ended_at=ended_at or utcnow()), data={KEY: DONE}
        )

    async def sweep(self) -> int:
        """Record every ended attempt without an interaction, and finish any left unfinished
        (a crash between the two steps); returns how many were handled."""
        async with self.db.session() as session:
            unlinked = list(
                await session.scalars(
                    select(CallAttempt.id).where(
                        CallAttempt.state == AttemptState.ENDED,
                        CallAttempt.interaction_id.is_(None),
                    )
                )
            )
            unfinished = list(
                await session.scalars(
                    select(Interaction.id)
                    .join(CallAttempt, CallAttempt.interaction_id == Interaction.id)
                    .where(CallAttempt.state == AttemptState.ENDED, Interaction.ended_at.is_(None))
                )
            )
        for start in range(0, len(unlinked), MAX_BATCH):
            await self.record_many([(a, None) for a in unlinked[start : start + MAX_BATCH]])
        for interaction_id in unfinished:
            async with self._lock:
                await self._finish(interaction_id)
        if unlinked or unfinished:
            log.info(
                "ended calls recorded at start",
                extra={"recorded": len(unlinked), "finished": len(unfinished)},
            )
        return len(unlinked) + len(unfinished)
