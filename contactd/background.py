"""Background work with an owner: every task named, tracked, its failure logged in one style.

Two pieces, used by every long-lived part instead of a private `_spawn`:

- `TaskOwner` keeps the tasks a component started; `close()` cancels and awaits them, so a
  component's `__aexit__` leaves nothing running.
- `run_resilient` runs one step of a loop again and again. A failed step (a locked database, a
  dropped link) is logged, backs off and is retried; the loop never dies of it, and its
  `LoopState` tells health probes that it is degraded until a step succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from contactd.health import ComponentHealth

log = logging.getLogger(__name__)

BACKOFF_MIN_S: Final = 0.1
BACKOFF_MAX_S: Final = 30.0
CLOSE_TIMEOUT_S: Final = 10.0


class TaskOwner:
    """The tasks one component started. Exceptions are logged once, with the task's name."""

    def __init__(self, owner: str, logger: logging.Logger | None = None) -> None:
        self.owner = owner
        self._log = logger or log
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.owner}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failures += 1
            self._log.error(
                "background task failed",
                exc_info=exc,
                extra={"owner": self.owner, "task": task.get_name()},
            )

    def __len__(self) -> int:
        return len(self._tasks)

    async def join(self) -> None:
        """Wait for the tasks running now (and any they start) to finish by themselves."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Cancel every task and wait for them; a task that ignores cancellation is reported."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            self._log.error(
                "background task did not stop", extra={"owner": self.owner, "task": task.get_name()}
            )


@dataclass
class LoopState:
    """What a resilient loop tells health probes: ok, or failing since when and why."""

    name: str
    consecutive_failures: int = 0
    total_failures: int = 0
    last_error: str = ""
    failing_since: datetime | None = None
    ok_since: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def healthy(self) -> bool:
        return self.consecutive_failures == 0

    def probe(self) -> ComponentHealth:
        if self.healthy:
            return ComponentHealth("ok", "", self.ok_since)
        return ComponentHealth(
            "degraded",
            f"{self.name}: {self.consecutive_failures} failed step(s), last: {self.last_error}",
            self.failing_since,
        )


async def run_resilient(
    step: Callable[[], Awaitable[None]],
    state: LoopState,
    *,
    backoff_min_s: float = BACKOFF_MIN_S,
    backoff_max_s: float = BACKOFF_MAX_S,
    logger: logging.Logger | None = None,
    until: asyncio.Event | None = None,
) -> None:
    """Run `step` until cancelled (or `until` is set, checked between steps and ending a
    back-off early: for a loop that must finish its current step rather than be cut inside it);
    a step that raises is retried after a doubling back-off.

    The step waits for its own work (an event, a queue, a timeout): this loop never sleeps on a
    healthy path. The first failure of a streak is logged with its traceback, later ones as one
    line each, and the recovery once.
    """
    out = logger or log
    delay = backoff_min_s
    while until is None or not until.is_set():
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.total_failures += 1
            state.consecutive_failures += 1
            state.last_error = f"{type(exc).__name__}: {exc}"
            fields = {
                "loop": state.name,
                "failures": state.consecutive_failures,
                "error": state.last_error,
                "retry_in_s": round(delay, 3),
            }
            if state.consecutive_failures == 1:
                state.failing_since = datetime.now(UTC)
                out.error("loop step failed; retrying", exc_info=exc, extra=fields)
            else:
                out.warning("loop step failed again", extra=fields)
            if until is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(until.wait(), delay)
            delay = min(delay * 2, backoff_max_s)
            continue
        if state.consecutive_failures:
            out.info(
                "loop recovered",
                extra={"loop": state.name, "failures": state.consecutive_failures},
            )
            state.consecutive_failures = 0
            state.failing_since = None
            state.ok_since = datetime.now(UTC)
        delay = backoff_min_s
