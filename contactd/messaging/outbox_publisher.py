"""Outbox events, published one at a time in the order their outcomes were committed.

One queue and one task, as `CallService` does: a subscriber sees `sent` before `delivered`,
and a slow subscriber delays later events rather than reordering them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from contactd.enums import Channel, MessageState
from contactd.events import EventBus
from contactd.messaging import events
from contactd.messaging.outbox_tracking import Tracked
from contactd.messaging.outbox_types import Outcome

log = logging.getLogger(__name__)

S = MessageState
_EVENT: Final[dict[MessageState, type[events.MessageStateChanged]]] = {
    S.SENT: events.MessageSent,
    S.DELIVERED: events.MessageDelivered,
    S.FAILED: events.MessageFailed,
    S.EXPIRED: events.MessageExpired,
}


def event_for(item: Outcome, tracked: Tracked | None) -> events.MessageStateChanged | None:
    """The event a committed outcome publishes; None for a state nobody hears of (queued)."""
    kind = _EVENT.get(item.state)
    if kind is None:
        return None
    return kind(
        message_id=item.id,
        channel=tracked.channel if tracked else Channel.SMS,
        state=item.state,
        contact_id=tracked.contact_id if tracked else None,
        campaign_id=tracked.campaign_id if tracked else None,
        interaction_id=tracked.interaction_id if tracked else None,
        error=str(item.values.get("error", "")),
    )


class OrderedPublisher:
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[events.MessageStateChanged] = asyncio.Queue()

    def publish(self, event: events.MessageStateChanged) -> None:
        self._queue.put_nowait(event)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._bus.publish(event)
            except Exception:
                log.exception(
                    "outbox: publishing an event failed", extra={"message_id": event.message_id}
                )
            finally:
                self._queue.task_done()

    async def drain(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            return False
        return True
