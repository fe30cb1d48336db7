"""The outbox's dispatcher: claims due rows (queued → sending) in batches, sends them with a
fixed set of workers per channel (its concurrency), and decides what each send's result means
(sent, retry after a back-off, failed); the writer records it. It also expires rows whose
time ran out.

Claimed rows wait in a short per-channel queue (up to two rounds of the channel's workers),
so a claim takes dozens of rows, not the two or three slots a finished send frees: claims are
transactions, and their cost per message fell with their size (see bench/messaging.py).
Rows still waiting at stop go back to `queued`.

`maybe_due` avoids a query per finished send: it is cleared when a claim comes back short
(nothing else due now) and set again by enqueue, retries and the due timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Row

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.db.session import Database
from contactd.enums import Channel, MessageState
from contactd.errors import ContactdError
from contactd.messaging import outbox_store as store
from contactd.messaging.errors import TemporaryFailureError
from contactd.messaging.outbox_stats import OutboxStats
from contactd.messaging.outbox_tracking import InFlight, Tracked
from contactd.messaging.outbox_types import Outcome
from contactd.messaging.state import backoff_s
from contactd.messaging.types import ClaimedMessage, Sender

log = logging.getLogger(__name__)

S = MessageState
IDLE_WAKE_S: Final = 30.0
SWEEP_S: Final = 10.0  # how often expired rows are looked for
MIN_IN_HAND: Final = 128  # claimed rows kept ready per channel, at least (see _in_hand)


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float
    max_s: float
    max_attempts: int


def _now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self,
        db: Database,
        senders: Mapping[Channel, Sender],
        *,
        limits: Mapping[Channel, int],
        claim_batch: int,
        retry: RetryPolicy,
        receipt_timeout: timedelta,
        inflight: InFlight,
        post: Callable[[Outcome], None],
        stats: OutboxStats,
        db_writes: asyncio.Lock,
    ) -> None:
        self._db = db
        self._senders = dict(senders)
        self._limits = dict(limits)
        # Claimed rows not yet picked up by a worker, oldest first; woken when rows arrive.
        self._ready: dict[Channel, deque[Row[Any]]] = {ch: deque() for ch in self._senders}
        self._has_rows = {ch: asyncio.Event() for ch in self._senders}
        # Rows claimed ahead: two rounds of the workers, and never so few that claims (each a
        # transaction) come a few rows at a time.
        self._in_hand = {ch: max(2 * limit, MIN_IN_HAND) for ch, limit in self._limits.items()}
        self._claim_batch = claim_batch
        self._retry = retry
        self._receipt_timeout = receipt_timeout
        self._inflight = inflight
        self._post = post
        self._stats = stats
        # The outbox's own write transactions take turns here rather than inside SQLite,
        # whose busy handler sleeps in steps of milliseconds when two writers meet.
        self._db_writes = db_writes
        self._sends = TaskOwner("outbox-send", log)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._maybe_due = True
        self._kicks = 0
        self._wait_s = 0.0  # how long the next step waits for a wake-up
        self._last_sweep = 0.0
        self.state = LoopState("outbox dispatcher")

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self) -> None:
        for channel, limit in self._limits.items():
            for n in range(limit):
                self._sends.spawn(self._worker(channel), f"{channel.value}-{n}")
        await run_resilient(self._step, self.state, logger=log, until=self._stop)

    def stop(self) -> None:
        """End after the current database step (cancelling one inside an aiosqlite call
        leaves the pooled connection broken)."""
        self._stop.set()
        self._wake.set()

    async def cancel_sends(self) -> None:
        """Sends only wait on providers: cut them; their rows resume next start. Rows claimed
        but not yet sent go back to `queued` now (or, with the database down, next start)."""
        await self._sends.close()
        unsent = [int(row.id) for ready in self._ready.values() for row in ready]
        for ready in self._ready.values():
            ready.clear()
        if unsent:
            try:
                async with self._db_writes:
                    await store.release(self._db, unsent)
            except Exception:
                log.exception(
                    "outbox: claimed messages not released; they resume next start",
                    extra={"messages": len(unsent)},
                )

    # -- wake-ups -------------------------------------------------------------------------
    def kick(self) -> None:
        """New rows may be due now (enqueued)."""
        self._kicks += 1
        self._maybe_due = True
        self._wake.set()

    def requeued(self) -> None:
        """A retry was committed: recompute when the next row is due."""
        self._wake.set()

    # -- one step -------------------------------------------------------------------------
    async def _step(self) -> None:
        """Claim due rows while slots are free; then wait until woken or the next retry is due.

        The wait comes first, so a step ends when its work is done (health recovers then) and
        the retry of a failed step (a locked database) claims again at once, after
        run_resilient's back-off, `maybe_due` still being set.
        """
        if self._wait_s > 0:
            try:
                async with asyncio.timeout(self._wait_s):
                    await self._wake.wait()
            except TimeoutError:
                self._maybe_due = True
            self._wait_s = 0.0
        if self._stop.is_set():
            return
        self._wake.clear()
        if self._maybe_due:
            kicks = self._kicks
            exhausted = True
            for channel in self._limits:
                in_hand = self._in_hand[channel]
                waiting = len(self._ready[channel])
                if waiting > in_hand // 2:
                    exhausted = False  # enough work in hand: claim once half of it is used
                    continue
                want = min(in_hand - waiting, self._claim_batch)
                if await self._claim(channel, want) == want:
                    exhausted = False
            if exhausted and kicks == self._kicks:  # no enqueue raced with the claim
                self._maybe_due = False
        if self._stop.is_set():
            return
        if time.monotonic() - self._last_sweep >= SWEEP_S:
            await self._expire_stale()
            self._last_sweep = time.monotonic()
        self._wait_s = SWEEP_S if self._maybe_due else await self._seconds_to_next_due()

    async def _claim(self, channel: Channel, limit: int) -> int:
        now = _now()
        async with self._db_writes:
            rows = await store.claim(self._db, channel, limit, now)
        for row in rows:
            self._inflight.claimed(
                row.id, Tracked(channel, row.contact_id, row.campaign_id, row.interaction_id)
            )
            if row.expires_at is not None and _aware(row.expires_at) <= now:
                self._post(Outcome(S.EXPIRED, row.id, {"error": "expired before sending"}))
                continue
            self._ready[channel].append(row)
        if rows:
            self._has_rows[channel].set()
        return len(rows)

    async def _worker(self, channel: Channel) -> None:
        """Send the channel's claimed rows one at a time, for the outbox's lifetime."""
        ready = self._ready[channel]
        has_rows = self._has_rows[channel]
        refill_at = self._in_hand[channel] // 2
        # A sender with a link (SMPP) says when it can send: while the link is down the
        # claimed rows wait here, in the queue a stop gives back, and no attempt is spent on
        # them; an outage of any length is held, and sending resumes as soon as it is back.
        until_ready: Callable[[], Awaitable[None]] | None = getattr(
            self._senders[channel], "until_ready", None
        )
        while True:
            while not ready:
                has_rows.clear()
                await has_rows.wait()
            if until_ready is not None:
                await until_ready()
                if not ready:
                    continue
            row = ready.popleft()
            if len(ready) <= refill_at and self._maybe_due:
                self._wake.set()  # the dispatcher claims the next rows while these go out
            await self._send(row)

    async def _send(self, row: Row[Any]) -> None:
        message = ClaimedMessage(
            row.id, row.channel, row.to_address, row.body, row.subject, row.html_body, row.meta
        )
        try:
            result = await self._senders[row.channel].send(message)
        except TemporaryFailureError as exc:
            self._post(self._after_temporary_failure(row.id, row.attempts, exc))
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
                self._inflight.sent(row.id, result.provider_ids)
            else:
                values["final"] = True  # SENT is as far as it goes (e-mail)
            self._post(Outcome(S.SENT, row.id, values))

    def _after_temporary_failure(
        self, message_id: int, attempt: int, exc: TemporaryFailureError
    ) -> Outcome:
        """Retry after a back-off, or give up after the last attempt. A retry of a message
        the provider may have taken can deliver it twice: at least once, never lost."""
        if exc.maybe_sent:
            self._stats.maybe_sent += 1
        if attempt >= self._retry.max_attempts:
            return Outcome(S.FAILED, message_id, {"error": f"gave up: {exc}"[:500]})
        delay = backoff_s(attempt, base_s=self._retry.base_s, max_s=self._retry.max_s)
        self._stats.retried += 1
        at = _now() + timedelta(seconds=delay)
        return Outcome(S.QUEUED, message_id, {"next_attempt_at": at, "error": str(exc)})

    async def _seconds_to_next_due(self) -> float:
        now = _now()
        nxt = await store.next_due(self._db, list(self._limits), now)
        if nxt is None:
            return IDLE_WAKE_S
        return max(0.0, min(IDLE_WAKE_S, (nxt - now).total_seconds()))

    async def _expire_stale(self) -> None:
        for row in await store.stale(self._db, _now(), self._receipt_timeout):
            self._inflight.known(
                row.id, Tracked(row.channel, row.contact_id, row.campaign_id, row.interaction_id)
            )
            self._post(Outcome(S.EXPIRED, row.id, {"error": "no delivery receipt"}))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
