"""A small thread pool that runs urgent work first: a decision never waits behind audio feeds.

Under load the ASR threads have a queue of 100 ms audio hops from every live call. A caller who
has just stopped speaking waits for `FinalResult()`; with a FIFO pool that call queues behind
every other call's hops, which is what pushed decision p95 far above the bare-Vosk figure.
Here each job carries a priority (lower runs first; equal priorities keep their order), so a
final result jumps the queue while feeds only lose a few milliseconds.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final, TypeVar

T = TypeVar("T")

URGENT: Final = 0  # a caller is waiting for the answer
NORMAL: Final = 1  # audio feeds, recognizer preparation

_STOP: Final = object()


class PriorityPool:
    """Threads taking jobs from one priority queue; `submit` returns a concurrent Future."""

    def __init__(self, workers: int, *, name: str) -> None:
        if workers < 1:
            raise ValueError("PriorityPool needs at least one worker")
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self._lock = threading.Lock()
        self._running = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def waiting(self) -> int:
        """Jobs queued and not yet started (for health and benchmarks)."""
        return self._queue.qsize()

    @property
    def busy(self) -> int:
        """Threads running a job now (free slots are the workers minus these)."""
        return self._running

    def submit(self, priority: int, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("PriorityPool is shut down")
            self._queue.put((priority, next(self._order), (future, fn, args)))
        return future

    def _work(self) -> None:
        while True:
            _, _, job = self._queue.get()
            if job is _STOP:
                return
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            with self._lock:
                self._running += 1
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the waiter, which re-raises it
                error: BaseException | None = exc
            else:
                error = None
            # The thread counts as free before its waiter hears: a waiter woken by the result
            # (say, the model just loaded) that looks at the pool sees it free.
            with self._lock:
                self._running -= 1
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def shutdown(self) -> None:
        """Cancel what has not started, let running jobs finish, join the threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while True:
                try:
                    _, _, job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not _STOP:
                    job[0].cancel()
            # Sentinels sort after every real job (priority above any in use).
            for _ in self._threads:
                self._queue.put((NORMAL + 1, next(self._order), _STOP))
        for thread in self._threads:
            thread.join()
