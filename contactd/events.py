"""Domain events and the in-process bus that carries them to their listeners.

Services publish; the DB writer, the web panel's live views and metrics subscribe. A failing
listener is logged and counted, never allowed to break the publisher or other listeners.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from contactd.logs import ids_of, log_ids

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Base of every event; `interaction_id` ties it to a stored interaction (the row's id)
    when there is one."""

    at: datetime = field(default_factory=_now)
    interaction_id: int | None = None


E = TypeVar("E", bound=DomainEvent)
Handler = Callable[[Any], Awaitable[None] | None]


class EventBus:
    """Type-keyed publish/subscribe; handlers for a base class also receive its subclasses."""

    def __init__(self) -> None:
        self._handlers: dict[type[DomainEvent], list[Handler]] = defaultdict(list)
        self.failures = 0

    def subscribe(
        self, event_type: type[E], handler: Callable[[E], Awaitable[None] | None]
    ) -> None:
        self._handlers[event_type].append(handler)

    def unsubscribe(
        self, event_type: type[E], handler: Callable[[E], Awaitable[None] | None]
    ) -> None:
        self._handlers[event_type].remove(handler)

    async def publish(self, event: DomainEvent) -> None:
        """Deliver to every matching handler in subscription order, awaiting coroutines. Each
        handler's log lines carry the event's ids (attempt, message, interaction …)."""
        if not any(self._handlers.get(klass) for klass in type(event).__mro__):
            return  # nobody listens: no ids to set up (a routing batch publishes thousands)
        with log_ids(**ids_of(event)):
            await self._deliver(event)

    async def _deliver(self, event: DomainEvent) -> None:
        for klass in type(event).__mro__:
            for handler in list(self._handlers.get(klass, ())):
                try:
                    result = handler(event)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    self.failures += 1
                    log.exception(
                        "event handler failed",
                        extra={"event": type(event).__name__, "handler": repr(handler)},
                    )
