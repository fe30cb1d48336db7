"""An inbound SMS becomes work for a person: on its sender's contact, with a follow-up task.

Messaging stores the text (and any STOP opt-out) the moment it arrives, marked as waiting for
the router; this subscriber then attaches the sender (a new lead when the number is unknown)
and finishes the interaction through the router, whose rules make the reply task. The marker
changes in the transaction that makes the task, so each message is routed exactly once, and a
sweep at start routes what a crash left waiting.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Final

from contactd.crm.pending import pending_row, sweep_pending
from contactd.crm.routing import FollowUp, Router
from contactd.crm.routing_pending import PendingBatcher
from contactd.db.session import Database
from contactd.events import EventBus
from contactd.messaging.events import InboundSmsReceived
from contactd.messaging.inbound import ROUTE_PENDING

log = logging.getLogger(__name__)

ROUTE_DONE: Final = "done"


class InboundMessageRecorder:
    """Subscribes to InboundSmsReceived; `sweep()` routes what waited across a restart."""

    def __init__(self, db: Database, router: Router, bus: EventBus) -> None:
        self.db = db
        self.router = router
        self.bus = bus
        self._lock = asyncio.Lock()  # the sweep and a live event never route one message twice
        self._batcher: PendingBatcher | None = None

    async def __aenter__(self) -> InboundMessageRecorder:
        # Messages arriving together are routed together, in one transaction.
        self._batcher = await PendingBatcher(
            self.router, key="route", mark=ROUTE_PENDING, done=ROUTE_DONE, one=self.route,
            lock=self._lock, name="sms-routing",
            make_leads=True).__aenter__()
        self.bus.subscribe(InboundSmsReceived, self._on_sms)
        await self.sweep()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bus.unsubscribe(InboundSmsReceived, self._on_sms)
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await batcher.__aexit__(exc_type, exc, tb)

    async def _on_sms(self, event: InboundSmsReceived) -> None:
        if event.interaction_id is None:
            return
        try:
            if self._batcher is not None:
                await self._batcher.route(event.interaction_id)
            else:
                await self.route(event.interaction_id)
        except Exception:  # stored already; the sweep at next start routes it
            log.exception("inbound message not routed",
                          extra={"interaction_id": event.interaction_id})

    async def route(self, interaction_id: int) -> bool:
        """Route one waiting message; False when it was routed before (or is not waiting)."""
        async with self._lock:
            if await pending_row(self.db, interaction_id, "route", ROUTE_PENDING) is None:
                return False
            contact_id = await self.router.attach_sender(interaction_id)
            routed = await self.router.finish(interaction_id, FollowUp(),
                                              data={"route": ROUTE_DONE})
        log.info("inbound message routed",
                 extra={"interaction_id": interaction_id, "contact_id": contact_id,
                        "task_ids": routed.task_ids})
        return True

    async def sweep(self) -> int:
        routed = await sweep_pending(self.db, "route", ROUTE_PENDING, self.route)
        if routed:
            log.info("inbound messages routed at start", extra={"routed": routed})
        return routed
