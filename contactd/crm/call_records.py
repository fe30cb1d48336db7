"""Every call attempt that ends leaves one interaction on its contact's timeline.

The dialer and click-to-call write `CallAttempt` rows; this subscriber turns each ended attempt
into an `Interaction` (outcome, ring and talk time, agent, campaign) linked both ways, then lets
the router create the follow-up tasks. Exactly once, across crashes: the interaction is created
in the same transaction that links it to the attempt, and a sweep at start picks up attempts
that ended while nobody listened (or whose follow-ups were not made yet).
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from sqlalchemy import select

from contactd.calls.events import CallEnded
from contactd.crm.routing import FollowUp, Router
from contactd.db.base import utcnow
from contactd.db.models import Interaction
from contactd.db.models.calls import CallAttempt
from contactd.db.session import Database
from contactd.enums import AttemptState, Channel, Direction, InteractionKind
from contactd.events import EventBus

log = logging.getLogger(__name__)


class CallRecorder:
    """Subscribes to CallEnded; `sweep()` settles what ended before it subscribed."""

    def __init__(self, db: Database, router: Router, bus: EventBus) -> None:
        self.db = db
        self.router = router
        self.bus = bus
        self._lock = asyncio.Lock()  # the sweep and live events never link one attempt twice

    async def __aenter__(self) -> CallRecorder:
        self.bus.subscribe(CallEnded, self._on_ended)
        await self.sweep()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bus.unsubscribe(CallEnded, self._on_ended)

    async def _on_ended(self, event: CallEnded) -> None:
        try:
            await self.record(event.attempt_id, event)
        except Exception:  # the sweep at next start retries; the call itself is stored
            log.exception("call not recorded on the timeline",
                          extra={"attempt_id": event.attempt_id})

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
                contact_id=attempt.contact_id, kind=InteractionKind.CALL,
                direction=Direction.OUTBOUND, channel=Channel.CALL,
                started_at=attempt.created_at, outcome=outcome.value if outcome else "",
                remote_address=attempt.phone_e164, campaign_id=attempt.campaign_id,
                user_id=attempt.agent_id,
                data={"attempt_id": attempt.id, "ring_s": ring_s, "talk_s": talk_s,
                      "hangup_cause": cause, "amd_status": attempt.amd_status},
            )
            session.add(row)
            await session.flush()
            attempt.interaction_id = row.id
            log.debug("call recorded on the timeline",
                     extra={"attempt_id": attempt.id, "interaction_id": row.id,
                            "contact_id": attempt.contact_id})
            return row.id, True

    async def _finish(self, interaction_id: int) -> None:
        async with self.db.session() as session:
            ended_at = await session.scalar(
                select(CallAttempt.ended_at).where(CallAttempt.interaction_id == interaction_id)
            )
        await self.router.finish(interaction_id, FollowUp(ended_at=ended_at or utcnow()))

    async def sweep(self) -> int:
        """Record every ended attempt without an interaction, and finish any left unfinished
        (a crash between the two steps); returns how many were handled."""
        async with self.db.session() as session:
            unlinked = list(await session.scalars(
                select(CallAttempt.id).where(CallAttempt.state == AttemptState.ENDED,
                                             CallAttempt.interaction_id.is_(None))
            ))
            unfinished = list(await session.scalars(
                select(Interaction.id).join(CallAttempt,
                                            CallAttempt.interaction_id == Interaction.id)
                .where(CallAttempt.state == AttemptState.ENDED, Interaction.ended_at.is_(None))
            ))
        for attempt_id in unlinked:
            await self.record(attempt_id)
        for interaction_id in unfinished:
            async with self._lock:
                await self._finish(interaction_id)
        if unlinked or unfinished:
            log.info("ended calls recorded at start",
                     extra={"recorded": len(unlinked), "finished": len(unfinished)})
        return len(unlinked) + len(unfinished)
