"""Group commit for attempt rows: one transaction carries every insert and update queued
while the previous one ran, so hundreds of originations per second cost a few commits.

`create()` returns only once its row is committed (the Originate may then go out);
`apply()` queues an update behind every earlier write and returns at once.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Final

from contactd.calls.events import CallEvent
from contactd.calls.repo import AttemptRepository, NewAttempt

log = logging.getLogger(__name__)

MAX_BATCH: Final = 500

_Item = tuple[NewAttempt, "asyncio.Future[None]"] | CallEvent | asyncio.Event


class AttemptWriter:
    def __init__(self, repo: AttemptRepository) -> None:
        self.repo = repo
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        self.commits = 0

    async def __aenter__(self) -> AttemptWriter:
        self._task = asyncio.create_task(self._run(), name="attempt-writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def create(self, attempt: NewAttempt) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((attempt, future))
        await future

    def apply(self, event: CallEvent) -> None:
        self._queue.put_nowait(event)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (or failed and logged)."""
        if self._task is None or self._task.done():
            return
        marker = asyncio.Event()
        self._queue.put_nowait(marker)
        await marker.wait()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[_Item]) -> None:
        inserts = [item for item in batch if isinstance(item, tuple)]
        events = [item for item in batch if isinstance(item, CallEvent)]
        try:
            async with self.repo.db.transaction() as session:
                await self.repo.insert_in(session, [attempt for attempt, _ in inserts])
                await self.repo.apply_in(session, events)
            self.commits += 1
        except Exception as exc:
            self.failures += 1
            log.exception(
                "attempt write failed", extra={"rows": len(inserts), "updates": len(events)}
            )
            for _attempt, future in inserts:
                if not future.done():
                    future.set_exception(exc)
        else:
            for _attempt, future in inserts:
                if not future.done():
                    future.set_result(None)
        for item in batch:
            if isinstance(item, asyncio.Event):
                item.set()
