"""The durable outbox: a message is a row before any provider sees it, and its state moves only
along the transition table in `state.py`, guarded in SQL so two writers cannot disagree.

One dispatcher claims due rows (queued → sending) and runs senders with a per-channel limit;
one writer commits outcomes in batches (sending → sent/queued/failed, sent → delivered …) so
thousands of messages a second cost a few transactions, not thousands. A restart puts rows
left in `sending` back to `queued`: at least once rather than lost (an SMSC may have taken a
message whose answer never arrived; SMPP has no idempotency key to ask it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

from sqlalchemy import func, select, update

from contactd.background import LoopState, run_resilient
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, MessageState
from contactd.errors import ContactdError
from contactd.events import EventBus
from contactd.health import ComponentHealth
from contactd.messaging import events
from contactd.messaging import outbox_store as store
from contactd.messaging.errors import TemporaryFailureError
from contactd.messaging.outbox_store import OutboundMessage, Outcome
from contactd.messaging.outbox_tracking import InFlight, Tracked
from contactd.messaging.state import FINAL, backoff_s
from contactd.messaging.types import ClaimedMessage, DeliveryReceipt, ReceiptOutcome, Sender

__all__ = ["OutboundMessage", "Outbox", "OutboxStats"]

log = logging.getLogger(__name__)

S = MessageState
IDLE_WAKE_S: Final = 30.0
CLOSE_TIMEOUT_S: Final = 10.0
SWEEP_S: Final = 10.0  # how often expired rows are looked for
WRITE_BATCH: Final = 1000
_CLAIM_COLUMNS: Final = (
    OutboxMessage.id,
    OutboxMessage.channel,
    OutboxMessage.to_address,
    OutboxMessage.body,
    OutboxMessage.subject,
    OutboxMessage.html_body,
    OutboxMessage.meta,
    OutboxMessage.attempts,
    OutboxMessage.expires_at,
    OutboxMessage.contact_id,
    OutboxMessage.campaign_id,
    OutboxMessage.interaction_id,
)
_EVENT = {
    S.SENT: events.MessageSent,
    S.DELIVERED: events.MessageDelivered,
    S.FAILED: events.MessageFailed,
    S.EXPIRED: events.MessageExpired,
}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class OutboxStats:
    enqueued: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    expired: int = 0
    retried: int = 0
    resumed: int = 0
    maybe_sent: int = 0  # attempts that failed after the provider may have taken the message
    receipts_unmatched: int = 0
    batches: int = 0


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
        self._senders = dict(senders)
        self._bus = bus
        self._limits = {ch: (concurrency or {}).get(ch, 100) for ch in self._senders}
        self._inflight = dict.fromkeys(self._senders, 0)
        self._claim_batch = claim_batch
        self._retry = (retry_base_s, retry_max_s)
        self._max_attempts = max_attempts
        self._receipt_timeout = timedelta(seconds=receipt_timeout_s)
        self._wake = asyncio.Event()
        self._writes: asyncio.Queue[Outcome] = asyncio.Queue()
        self._events: asyncio.Queue[events.MessageStateChanged] = asyncio.Queue()
        self._inflight_messages = InFlight()
        self._committed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._stop = asyncio.Event()  # set with _closing: the dispatcher ends between steps
        self._last_sweep = 0.0
        self._wait_s = 0.0  # how long the next dispatcher step waits for a wake-up
        self._unwritten: list[Outcome] = []  # a batch whose commit failed: retried, never dropped
        self.dispatch_state = LoopState("outbox dispatcher")
        self.writer_state = LoopState("outbox writer")
        self._maybe_due = True
        self._kicks = 0
        # The outbox's own write transactions take turns here rather than inside SQLite,
        # whose busy handler sleeps in steps of milliseconds when two writers meet.
        self._db_writes = asyncio.Lock()
        self.stats = OutboxStats()

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> Outbox:
        async with self._db.transaction() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.state == S.SENDING)
                .values(state=S.QUEUED, next_attempt_at=None)
            )
        self.stats.resumed = int(getattr(result, "rowcount", 0) or 0)
        if self.stats.resumed:
            log.warning("outbox: %d message(s) interrupted mid-send requeued", self.stats.resumed)
        self._spawn(self._dispatch_loop(), "outbox-dispatch")
        self._spawn(self._write_loop(), "outbox-writer")
        self._spawn(self._publish_loop(), "outbox-publisher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The dispatcher finishes its current database step (cancelling a task inside an
        # aiosqlite call leaves the pooled connection broken); sends only wait on providers.
        self._closing = True
        self._stop.set()
        self._wake.set()
        await self._finish(lambda name: name == "outbox-dispatch", cancel=False)
        await self._finish(lambda name: name.startswith("outbox-send"), cancel=True)
        # Let the writer record what already happened; rows still `sending` resume next start
        # (at least once), so a database that stays down cannot hold the stop forever.
        try:
            await asyncio.wait_for(self._writes.join(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.error(
                "outbox: outcomes not recorded at stop; their messages resume next start",
                extra={"outcomes": self._writes.qsize() + len(self._unwritten)},
            )
        await self._finish(lambda name: name == "outbox-writer", cancel=True)
        try:
            await asyncio.wait_for(self._events.join(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.error("outbox: events unpublished at stop", extra={"events": self._events.qsize()})
        await self._finish(lambda name: name == "outbox-publisher", cancel=True)
        await self._finish(lambda name: True, cancel=False)

    async def _finish(self, which: Callable[[str], bool], *, cancel: bool) -> None:
        tasks = [t for t in self._tasks if which(t.get_name())]
        if cancel:
            for task in tasks:
                task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("outbox task %s failed", task.get_name(), exc_info=task.exception())

    # -- enqueue --------------------------------------------------------------------------
    async def enqueue(self, message: OutboundMessage) -> int:
        """Store the message (or find the one with the same key) and return its id."""
        (message_id,) = await self.enqueue_many([message])
        return message_id

    async def enqueue_many(self, messages: Sequence[OutboundMessage]) -> list[int]:
        """Store many at once (one transaction); ids in the order given."""
        async with self._db_writes:
            ids, inserted = await store.insert_messages(self._db, messages)
        self.stats.enqueued += inserted
        if inserted:
            self._kick()
        return ids

    def probe(self) -> ComponentHealth:
        """Degraded while the dispatcher or the writer keeps failing (a locked database …)."""
        for state in (self.dispatch_state, self.writer_state):
            if not state.healthy:
                return state.probe()
        return self.dispatch_state.probe()

    # -- dispatch -------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        await run_resilient(self._dispatch_step, self.dispatch_state, logger=log, until=self._stop)

    async def _dispatch_step(self) -> None:
        """Claim due rows while slots are free; sleep until woken or the next retry is due.

        `_maybe_due` avoids a query per finished send: it is cleared when a claim comes back
        short (nothing else due now) and set again by enqueue, retries and the due timer.
        A step that fails (a locked database) leaves `_maybe_due` set, so the retry claims.
        The wait comes first, so a step ends when its work is done (health recovers then) and
        the retry of a failed step does its work again at once, after run_resilient's back-off.
        """
        if self._wait_s > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), self._wait_s)
            except TimeoutError:
                self._maybe_due = True
            self._wait_s = 0.0
        if self._closing:
            return
        self._wake.clear()
        if self._maybe_due:
            kicks = self._kicks
            exhausted = True
            for channel, limit in self._limits.items():
                free = limit - self._inflight[channel]
                if free < max(1, limit // 4):
                    exhausted = False  # claim in batches once enough slots are free
                    continue
                want = min(free, self._claim_batch)
                if await self._claim(channel, want) == want:
                    exhausted = False
            if exhausted and kicks == self._kicks:  # no enqueue raced with the claim
                self._maybe_due = False
        if self._closing:
            return
        if time.monotonic() - self._last_sweep >= SWEEP_S:
            await self._expire_stale()
            self._last_sweep = time.monotonic()
        self._wait_s = SWEEP_S if self._maybe_due else await self._seconds_to_next_due()

    def _kick(self) -> None:
        self._kicks += 1
        self._maybe_due = True
        self._wake.set()

    async def _claim(self, channel: Channel, limit: int) -> int:
        now = _now()
        async with self._db_writes, self._db.transaction() as session:
            rows = (
                await session.execute(
                    select(*_CLAIM_COLUMNS)
                    .where(
                        OutboxMessage.state == S.QUEUED,
                        OutboxMessage.channel == channel,
                        (OutboxMessage.next_attempt_at.is_(None))
                        | (OutboxMessage.next_attempt_at <= now),
                    )
                    .order_by(OutboxMessage.id)
                    .limit(limit)
                )
            ).all()
            if not rows:
                return 0
            ids = [row.id for row in rows]
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.state == S.QUEUED)
                .values(state=S.SENDING, attempts=OutboxMessage.attempts + 1)
                .execution_options(synchronize_session=False)
            )
        for row in rows:
            if row.expires_at is not None and row.expires_at <= now:
                self._post(Outcome(S.EXPIRED, row.id, {"error": "expired before sending"}))
                continue
            self._inflight_messages.claimed(
                row.id, Tracked(channel, row.contact_id, row.campaign_id, row.interaction_id)
            )
            self._inflight[channel] += 1
            self._spawn(self._send(row, row.attempts + 1), f"outbox-send-{row.id}")
        return len(rows)

    async def _send(self, row: Any, attempt: int) -> None:
        message = ClaimedMessage(
            row.id, row.channel, row.to_address, row.body, row.subject, row.html_body, row.meta
        )
        try:
            result = await self._senders[row.channel].send(message)
        except TemporaryFailureError as exc:
            if exc.maybe_sent:
                self.stats.maybe_sent += 1  # the retry may deliver it twice (at least once)
            if attempt >= self._max_attempts:
                self._post(Outcome(S.FAILED, row.id, {"error": f"gave up: {exc}"[:500]}))
            else:
                delay = backoff_s(attempt, base_s=self._retry[0], max_s=self._retry[1])
                self.stats.retried += 1
                at = _now() + timedelta(seconds=delay)
                self._post(Outcome(S.QUEUED, row.id, {"next_attempt_at": at, "error": str(exc)}))
        except ContactdError as exc:  # SendFailedError: the provider refused it for good
            self._post(Outcome(S.FAILED, row.id, {"error": str(exc)[:500]}))
        except Exception as exc:  # a sender bug: not worth retrying blindly
            self._post(Outcome(S.FAILED, row.id, {"error": str(exc)[:500]}))
            log.exception("outbox: sender crashed", extra={"message_id": row.id})
        else:
            values: dict[str, Any] = {"provider_id": result.provider_ids[0], "sent_at": _now()}
            if len(result.provider_ids) > 1:
                values["meta"] = {**row.meta, "parts": result.provider_ids}
            if result.awaits_receipt:
                self._inflight_messages.sent(row.id, result.provider_ids)
            elif self._inflight_messages.get(row.id) is not None:
                values["final"] = True
            self._post(Outcome(S.SENT, row.id, values))
        finally:
            self._inflight[row.channel] -= 1
            if self._maybe_due:
                self._wake.set()

    async def _seconds_to_next_due(self) -> float:
        now = _now()
        async with self._db.session() as session:
            nxt = await session.scalar(
                select(
                    # A row without next_attempt_at is due now.
                    func.min(func.coalesce(OutboxMessage.next_attempt_at, now))
                ).where(
                    OutboxMessage.state == S.QUEUED,
                    OutboxMessage.channel.in_(list(self._limits)),
                )
            )
        if nxt is None:
            return IDLE_WAKE_S
        if isinstance(nxt, str):  # SQLite hands back an aggregate over a coalesce as text
            nxt = datetime.fromisoformat(nxt)
        if nxt.tzinfo is None:
            nxt = nxt.replace(tzinfo=UTC)
        return max(0.0, min(IDLE_WAKE_S, (nxt - now).total_seconds()))

    async def _expire_stale(self) -> None:
        now = _now()
        async with self._db.transaction() as session:
            rows = (
                await session.execute(
                    select(OutboxMessage.id).where(
                        (
                            (OutboxMessage.state == S.QUEUED)
                            & OutboxMessage.expires_at.is_not(None)
                            & (OutboxMessage.expires_at <= now)
                        )
                        | (
                            (OutboxMessage.state == S.SENT)
                            & (OutboxMessage.channel == Channel.SMS)
                            & (OutboxMessage.sent_at <= now - self._receipt_timeout)
                        )
                    )
                )
            ).scalars()
            for message_id in rows:
                self._post(Outcome(S.EXPIRED, message_id, {"error": "no delivery receipt"}))

    # -- receipts -------------------------------------------------------------------------
    async def on_receipt(self, receipt: DeliveryReceipt) -> None:
        """Apply a provider's delivery receipt; returns once the outcome is committed."""
        if self._closing:
            # Not acknowledged, so the SMSC delivers it again after the next bind.
            raise TemporaryFailureError("outbox is closing")
        part = receipt.provider_id
        message_id = await self._inflight_messages.match(part)
        if message_id is None:
            message_id = await self._sent_before_restart(part)
        if message_id is None:
            self.stats.receipts_unmatched += 1
            log.warning("outbox: receipt for an unknown message", extra={"provider_id": part})
            return
        outcome = receipt.outcome
        if outcome is ReceiptOutcome.DELIVERED:
            if not self._inflight_messages.part_delivered(message_id, part):
                return  # the other parts' receipts decide
            update_ = Outcome(S.DELIVERED, message_id, {"delivered_at": _now()})
        elif outcome is ReceiptOutcome.EXPIRED:
            update_ = Outcome(S.EXPIRED, message_id, {"error": receipt.detail})
        elif outcome is ReceiptOutcome.FAILED:
            update_ = Outcome(S.FAILED, message_id, {"error": receipt.detail})
        else:
            return  # intermediate
        await self._post_and_wait(update_)

    async def _sent_before_restart(self, part: str) -> int | None:
        # The first part's id is stored as provider_id.
        async with self._db.session() as session:
            found: int | None = await session.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.channel == Channel.SMS, OutboxMessage.provider_id == part
                )
            )
        return found

    # -- writer ---------------------------------------------------------------------------
    def _post(self, item: Outcome) -> None:
        self._writes.put_nowait(item)

    async def _post_and_wait(self, item: Outcome) -> None:
        item.done = asyncio.get_running_loop().create_future()
        self._post(item)
        await item.done

    async def _write_loop(self) -> None:
        await run_resilient(self._write_step, self.writer_state, logger=log)

    async def _write_step(self) -> None:
        """Commit the outcomes queued so far in one transaction.

        A batch whose commit fails stays in `_unwritten` and is retried (with run_resilient's
        back-off) ahead of anything queued later: an outcome that is lost would leave its row
        `sending`, and the message would be sent again after a restart.
        """
        batch = self._unwritten
        if not batch:
            batch.append(await self._writes.get())
        while len(batch) < WRITE_BATCH and not self._writes.empty():
            batch.append(self._writes.get_nowait())
        await self._commit(batch)
        self._unwritten = []
        for _ in batch:
            self._writes.task_done()

    async def _commit(self, batch: list[Outcome]) -> None:
        async with self._db_writes:
            await store.write_outcomes(self._db, batch, self._inflight_messages.timeline(batch))
        self.stats.batches += 1
        for item in batch:
            self._after_commit(item)
        async with self._committed:
            self._committed.notify_all()

    def _after_commit(self, item: Outcome) -> None:
        state = item.state
        counter = {S.SENT: "sent", S.DELIVERED: "delivered", S.FAILED: "failed",
                   S.EXPIRED: "expired"}.get(state)
        if counter:
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        tracked = self._inflight_messages.get(item.id)
        if state in FINAL or (state is S.SENT and item.values.get("final")):
            self._inflight_messages.forget(item.id)
        if self._bus is not None and state in _EVENT:
            event = _EVENT[state](
                message_id=item.id,
                channel=tracked.channel if tracked else Channel.SMS,
                state=state,
                contact_id=tracked.contact_id if tracked else None,
                campaign_id=tracked.campaign_id if tracked else None,
                error=str(item.values.get("error", "")),
            )
            self._events.put_nowait(event)  # one publisher: subscribers see commit order
        if state is S.QUEUED:
            self._inflight_messages.forget(item.id)
            self._wake.set()  # recompute when the next retry is due
        if item.done is not None and not item.done.done():
            item.done.set_result(None)

    async def _publish_loop(self) -> None:
        """Publish events one at a time, in the order their outcomes were committed."""
        while True:
            event = await self._events.get()
            try:
                if self._bus is not None:
                    await self._bus.publish(event)
            except Exception:
                log.exception(
                    "outbox: publishing an event failed", extra={"message_id": event.message_id}
                )
            finally:
                self._events.task_done()

    # -- waiting (tests, benchmarks, graceful stops) --------------------------------------
    async def wait_for(self, condition: Callable[[OutboxStats], bool], timeout_s: float) -> None:
        """Wait until `condition(stats)` holds after some commit."""
        async with asyncio.timeout(timeout_s), self._committed:
            await self._committed.wait_for(lambda: condition(self.stats))
