"""contactd's own AMI event dispatcher (DESIGN.md §4 trap 2).

panoramisk schedules coroutine callbacks and drops their exceptions; here every handler
failure is logged with the event name and counted, and async handlers run as owned tasks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

RawEvent = Mapping[str, Any]
EventHandler = Callable[[RawEvent], Awaitable[None] | None]


class EventDispatcher:
    """Routes raw AMI events by exact `Event` name; `"*"` handlers receive every event."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[EventHandler]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.failures: Counter[str] = Counter()
        self.unhandled: Counter[str] = Counter()  # events no handler wanted (filter check)
        self.dispatched = 0

    def on(self, name: str, handler: EventHandler) -> None:
        self._handlers.setdefault(name, []).append(handler)

    def off(self, name: str, handler: EventHandler) -> None:
        self._handlers.get(name, []).remove(handler)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def dispatch(self, event: RawEvent) -> None:
        """Deliver one event; never raises (a broken handler must not stop the stream)."""
        self.dispatched += 1
        try:
            name = event.get("Event")
        except Exception:
            name = None
        if not isinstance(name, str):
            self.failures["<malformed>"] += 1
            log.warning("AMI event without a usable Event header dropped")
            return
        handlers = self._handlers.get(name)
        wildcard = self._handlers.get("*")
        if handlers is None and wildcard is None:
            self.unhandled[name] += 1
            return
        for handler in (*(handlers or ()), *(wildcard or ())):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    self._own(name, result)
            except Exception:
                self.failures[name] += 1
                log.exception("AMI event handler failed", extra={"ami_event": name})

    def _own(self, name: str, awaitable: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                self.failures[name] += 1
                log.exception("AMI event handler failed", extra={"ami_event": name})

        task = asyncio.get_running_loop().create_task(run(), name=f"ami-event-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the async handlers still running (used at shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
