"""The outbox's batched writer: every outcome queued while the last commit ran goes into the
next one, so thousands of state changes a second cost a few transactions, not thousands.

A batch whose commit fails is kept and committed again (with run_resilient's back-off) ahead
of anything queued later: a lost outcome would leave its row `sending`, and the message would
be sent again after a restart.
"""

from __future__ import annotations

import asyncio
import logging
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
        self._queue: asyncio.Queue[Outcome] = asyncio.Queue()
        self._unwritten: list[Outcome] = []  # a batch whose commit failed: retried, never dropped
        self.state = LoopState("outbox writer")
        self.batches = 0

    def post(self, item: Outcome) -> None:
        self._queue.put_nowait(item)

    async def post_and_wait(self, item: Outcome) -> None:
        """Queue `item` and return once it is committed."""
        item.done = asyncio.get_running_loop().create_future()
        self.post(item)
        await item.done

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + len(self._unwritten)

    async def run(self) -> None:
        await run_resilient(self._step, self.state, logger=log)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything posted so far is committed; False when time ran out."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            return False
        return True

    async def _step(self) -> None:
        batch = self._unwritten
        if not batch:
            batch.append(await self._queue.get())
        while len(batch) < self._batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        applied = await self._commit(batch)  # raises: the batch stays in _unwritten for the retry
        self._unwritten = []
        self.batches += 1
        self._committed(batch, applied)
        for item in batch:
            if item.done is not None and not item.done.done():
                item.done.set_result(None)
            self._queue.task_done()
