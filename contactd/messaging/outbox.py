"""The durable outbox: a message is a row before any provider sees it, and its state moves only
along the transition table in `state.py`, guarded in SQL so two writers cannot disagree.

`Outbox` is the facade the daemon uses; the work is done by small parts:
- `outbox_dispatch.Dispatcher` claims due rows and sends them, per-channel limits, retries;
- `outbox_writer.OutcomeWriter` commits outcomes in batches, a failed batch first;
- `outbox_receipts.ReceiptMatcher` turns a delivery receipt into a state change;
- `outbox_timeline` keeps each message's row on its contact's timeline;
- `outbox_publisher.OrderedPublisher` publishes events in commit order;
- `outbox_stats.OutboxStats` counts what was done.

Delivery is at least once: a restart puts rows left in `sending` back to `queued`, and a send
that failed after the provider may have taken the message is retried (counted as
`maybe_sent`). SMPP has no idempotency key to ask an SMSC whether it has a message already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Final

from contactd.background import TaskOwner
from contactd.db.session import Database, storage_errors
from contactd.enums import Channel, MessageState
from contactd.events import EventBus
from contactd.health import ComponentHealth
from contactd.messaging import outbox_store as store
from contactd.messaging.errors import TemporaryFailureError
from contactd.messaging.outbox_dispatch import Dispatcher, RetryPolicy
from contactd.messaging.outbox_publisher import OrderedPublisher, event_for
from contactd.messaging.outbox_receipts import ReceiptMatcher
from contactd.messaging.outbox_stats import OutboxStats
from contactd.messaging.outbox_tracking import InFlight
from contactd.messaging.outbox_types import OutboundMessage, Outcome
from contactd.messaging.outbox_writer import OutcomeWriter
from contactd.messaging.state import FINAL
from contactd.messaging.types import DeliveryReceipt, Sender

__all__ = ["OutboundMessage", "Outbox", "OutboxStats"]

log = logging.getLogger(__name__)

S = MessageState
CLOSE_TIMEOUT_S: Final = 10.0


class Outbox:
    """Enqueue messages, send them through per-channel senders, record every outcome."""

    def __init__(
        self,
        db: Database,
        senders: Mapping[Channel, Sender],
        bus: EventBus | None = None,
        *,
        concurrency: Mapping[Channel, int] | None = None,
        claim_batch: int = 500,
        retry_base_s: float = 5.0,
        retry_max_s: float = 600.0,
        max_attempts: int = 8,
        receipt_timeout_s: float = 48 * 3600.0,
    ) -> None:
        self._db = db
        self.stats = OutboxStats()
        self._inflight = InFlight()
        # The outbox's write transactions (enqueue, claim, outcomes) take turns here.
        self._db_writes = asyncio.Lock()
        self._writer = OutcomeWriter(self._write, self._after_commit)
        self._dispatcher = Dispatcher(
            db,
            senders,
            limits={ch: (concurrency or {}).get(ch, 100) for ch in senders},
            claim_batch=claim_batch,
            retry=RetryPolicy(retry_base_s, retry_max_s, max_attempts),
            receipt_timeout=timedelta(seconds=receipt_timeout_s),
            inflight=self._inflight,
            post=self._writer.post,
            stats=self.stats,
            db_writes=self._db_writes,
        )
        self._receipts = ReceiptMatcher(db, self._inflight, self.stats)
        self._publisher = OrderedPublisher(bus) if bus is not None else None
        self._commit_seen = asyncio.Event()
        self._closing = False
        self._tasks = TaskOwner("outbox", log)
        self._dispatch_task: asyncio.Task[None] | None = None
        self.dispatch_state = self._dispatcher.state
        self.writer_state = self._writer.state

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> Outbox:
        self.stats.resumed = await store.requeue_interrupted(self._db)
        if self.stats.resumed:
            log.warning(
                "outbox: messages interrupted mid-send requeued",
                extra={"messages": self.stats.resumed},
            )
        self._dispatch_task = self._tasks.spawn(self._dispatcher.run(), "dispatch")
        self._tasks.spawn(self._writer.run(), "writer")
        if self._publisher is not None:
            self._tasks.spawn(self._publisher.run(), "publisher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        self._dispatcher.stop()
        if self._dispatch_task is not None:  # it ends between steps (see Dispatcher.stop)
            await asyncio.wait([self._dispatch_task], timeout=CLOSE_TIMEOUT_S)
        await self._dispatcher.cancel_sends()
        # Let the writer record what already happened; rows still `sending` resume next start
        # (at least once), so a database that stays down cannot hold the stop forever.
        if not await self._writer.drain(CLOSE_TIMEOUT_S):
            log.error(
                "outbox: outcomes not recorded at stop; their messages resume next start",
                extra={"outcomes": self._writer.backlog},
            )
        if self._publisher is not None and not await self._publisher.drain(CLOSE_TIMEOUT_S):
            log.error(
                "outbox: events unpublished at stop", extra={"events": self._publisher.backlog}
            )
        await self._tasks.close()

    def probe(self) -> ComponentHealth:
        """Degraded while the dispatcher or the writer keeps failing (a locked database …)."""
        for state in (self.dispatch_state, self.writer_state):
            if not state.healthy:
                return state.probe()
        return self.dispatch_state.probe()

    # -- enqueue --------------------------------------------------------------------------
    async def enqueue(self, message: OutboundMessage) -> int:
        """Store the message (or find the one with the same key) and return its id."""
        (message_id,) = await self.enqueue_many([message])
        return message_id

    async def enqueue_many(self, messages: Sequence[OutboundMessage]) -> list[int]:
        """Store many at once (one transaction); ids in the order given."""
        async with self._db_writes, storage_errors(f"{len(messages)} outgoing message(s)"):
            ids, inserted = await store.insert_messages(self._db, messages)
        self.stats.enqueued += inserted
        if inserted:
            self._dispatcher.kick()
        return ids

    # -- receipts -------------------------------------------------------------------------
    async def on_receipt(self, receipt: DeliveryReceipt) -> None:
        """Apply a provider's delivery receipt; returns once the outcome is committed."""
        await self.on_receipts([receipt])

    async def on_receipts(self, receipts: Sequence[DeliveryReceipt]) -> None:
        """Apply receipts that arrived together; returns once all their outcomes are committed
        (the writer commits in order, so waiting for the last one waits for all)."""
        if self._closing:
            # Not acknowledged, so the SMSC delivers them again after the next bind.
            raise TemporaryFailureError("outbox is closing")
        last: Outcome | None = None
        for receipt in receipts:
            outcome = await self._receipts.outcome(receipt)
            if outcome is not None:
                if last is not None:
                    self._writer.post(last)
                last = outcome
        if last is not None:
            await self._writer.post_and_wait(last)

    # -- after each batch -----------------------------------------------------------------
    async def _write(self, batch: list[Outcome]) -> list[Outcome]:
        async with self._db_writes:
            return await store.write_outcomes(self._db, batch, self._inflight.interaction_of)

    def _after_commit(self, batch: list[Outcome], applied: list[Outcome]) -> None:
        """Count and publish what changed (a repeated receipt did not); stop tracking what
        is settled, applied or not."""
        self.stats.batches += 1
        for item in applied:
            self.stats.committed(item.state)
            if self._publisher is not None:
                event = event_for(item, self._inflight.get(item.id))
                if event is not None:
                    self._publisher.publish(event)
        for item in batch:
            if item.state in FINAL or item.state is S.QUEUED or item.values.get("final"):
                self._inflight.forget(item.id)
            if item.state is S.QUEUED:
                self._dispatcher.requeued()
        # Wakes whoever waits in `wait_for`; the next commit gets a fresh event.
        self._commit_seen.set()
        self._commit_seen = asyncio.Event()

    # -- waiting (tests, benchmarks, graceful stops) --------------------------------------
    async def wait_for(self, condition: Callable[[OutboxStats], bool], timeout_s: float) -> None:
        """Wait until `condition(stats)` holds after some commit."""
        async with asyncio.timeout(timeout_s):
            while not condition(self.stats):
                await self._commit_seen.wait()
