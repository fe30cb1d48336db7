"""The outbox's batched writer: every outcome queued while the last commit ran goes into the
next one, so thousands of state changes a second cost a few transactions, not thousands.

A batch whose commit fails is kept and committed again (with run_resilient's back-off) ahead
of anything queued later: a lost outcome would leave its row `sending`, and the message would
be sent again after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from contactd.background import LoopState, run_resilient
from contactd.messaging.outbox_types import Outcome

log = logging.getLogger(__name__)

WRITE_BATCH: Final = 1000

# Writes a batch; returns the outcomes that changed their message (not repeats).
Commit = Callable[[list[Outcome]], Awaitable[list[Outcome]]]
# Hears of a committed batch and of the outcomes in it that were applied.
Committed = Callable[[list[Outcome], list[Outcome]], None]


class OutcomeWriter:
    """`post` queues an outcome; `commit` writes a batch, then `committed` hears of it."""

    def __init__(self, commit: Commit, committed: Committed, *, batch: int = WRITE_BATCH) -> None:
        self._commit = commit
        self._committed = committed
        self._batch = batch
        # A deque and one event rather than an asyncio.Queue: two outcomes an SMS, and the
        # queue's wake-up and join bookkeeping cost more than the append.
        self._queue: deque[Outcome] = deque()
        self._posted = asyncio.Event()
        self._idle = asyncio.Event()  # nothing queued or being written
        self._idle.set()
        self._unwritten: list[Outcome] = []  # a batch whose commit failed: retried, never dropped
        self.state = LoopState("outbox writer")
        self.batches = 0

    def post(self, item: Outcome) -> None:
        self._queue.append(item)
        if not self._posted.is_set():
            self._posted.set()
            self._idle.clear()

    async def post_and_wait(self, item: Outcome) -> None:
        """Queue `item` and return once it is committed."""
        item.done = asyncio.get_running_loop().create_future()
        self.post(item)
        await item.done

    @property
    def backlog(self) -> int:
        return len(self._queue) + len(self._unwritten)

    async def run(self) -> None:
        await run_resilient(self._step, self.state, logger=log)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything posted so far is committed; False when time ran out."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _step(self) -> None:
        batch = self._unwritten
        if not batch and not self._queue:
            self._posted.clear()
            self._idle.set()
            await self._posted.wait()
        queue = self._queue
        while len(batch) < self._batch and queue:
            batch.append(queue.popleft())
        applied = await self._commit(batch)  # raises: the batch stays in _unwritten for the retry
        self._unwritten = []
        self.batches += 1
        self._committed(batch, applied)
        for item in batch:
            if item.done is not None and not item.done.done():
                item.done.set_result(None)
