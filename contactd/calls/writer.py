"""Group commit for attempt rows: one transaction carries every insert and update queued
while the previous one ran, so hundreds of originations per second cost a few commits.

`create()` returns only once its row is committed (the Originate may then go out);
`apply()` queues an update behind every earlier write and returns at once.

A batch whose commit fails is kept and committed again after a back-off, ahead of anything
queued later: a lost answer, end or outcome would skew the abandon statistics, so the writer
reports degraded health (`probe`) and waits for the database rather than drop it.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Final

from sqlalchemy.exc import IntegrityError

from contactd.background import LoopState, run_resilient
from contactd.calls.events import CallEvent
from contactd.calls.repo import AttemptRepository, NewAttempt
from contactd.health import ComponentHealth

log = logging.getLogger(__name__)

MAX_BATCH: Final = 500
CLOSE_TIMEOUT_S: Final = 10.0

_Item = tuple[NewAttempt, "asyncio.Future[None]"] | CallEvent | asyncio.Event


class AttemptWriter:
    def __init__(self, repo: AttemptRepository) -> None:
        self.repo = repo
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._unwritten: list[_Item] = []  # a batch whose commit failed, retried first
        self.state = LoopState("attempt writer")
        self.commits = 0
        self.rejected = 0  # inserts refused by the database (their create() raised)

    @property
    def failures(self) -> int:
        return self.state.total_failures + self.rejected

    def probe(self) -> ComponentHealth:
        return self.state.probe()

    async def __aenter__(self) -> AttemptWriter:
        self._task = asyncio.create_task(
            run_resilient(self._step, self.state, logger=log), name="attempt-writer"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await asyncio.wait_for(self.flush(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.error(
                "attempt writes not committed at stop",
                extra={"items": self._queue.qsize() + len(self._unwritten)},
            )
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
        """Wait until everything queued so far is committed."""
        if self._task is None or self._task.done():
            return
        marker = asyncio.Event()
        self._queue.put_nowait(marker)
        await marker.wait()

    async def _commit(
        self, inserts: list[tuple[NewAttempt, asyncio.Future[None]]], events: list[CallEvent]
    ) -> None:
        async with self.repo.db.transaction() as session:
            await self.repo.insert_in(session, [attempt for attempt, _ in inserts])
            await self.repo.apply_in(session, events)
        self.commits += 1
        for _attempt, future in inserts:
            if not future.done():
                future.set_result(None)

    async def _step(self) -> None:
        batch = self._unwritten
        if not batch:
            batch.append(await self._queue.get())
        while len(batch) < MAX_BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        await self._write(batch)  # raises: the batch stays in _unwritten for the retry
        self._unwritten = []

    async def _write(self, batch: list[_Item]) -> None:
        # An insert whose future is done was committed (or refused) by an earlier try.
        inserts = [item for item in batch if isinstance(item, tuple) and not item[1].done()]
        events = [item for item in batch if isinstance(item, CallEvent)]
        try:
            await self._commit(inserts, events)
        except IntegrityError:
            # A row that can never be stored (a duplicate attempt id) fails its own create()
            # alone; retrying the batch would block every call behind it.
            for insert in inserts:
                try:
                    await self._commit([insert], [])
                except IntegrityError as exc:
                    self.rejected += 1
                    insert[1].set_exception(exc)
            await self._commit([], events)
        for item in batch:
            if isinstance(item, asyncio.Event):
                item.set()
