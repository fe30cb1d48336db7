"""What the outbox knows of the messages it has in flight, and nothing else.

For each claimed message: who it is for (events name the contact and campaign), its timeline
row (whose outcome follows the message's state), and the provider ids of its parts, so a
delivery receipt finds its message and a long SMS counts as delivered once every part is.
A receipt may arrive before the send that caused it has been recorded here: `match` waits a
moment for that send (`EARLY_RECEIPT_WAIT_S`) before the caller asks the database.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

from contactd.enums import Channel

EARLY_RECEIPT_WAIT_S: Final = 2.0


@dataclass
class Tracked:
    channel: Channel
    contact_id: int | None
    campaign_id: int | None
    interaction_id: int | None
    parts: list[str] = field(default_factory=list)
    parts_left: set[str] = field(default_factory=set)


class InFlight:
    def __init__(self) -> None:
        self._tracked: dict[int, Tracked] = {}
        self._by_part: dict[str, int] = {}
        self._early: dict[str, asyncio.Future[int]] = {}

    def claimed(self, message_id: int, tracked: Tracked) -> None:
        self._tracked[message_id] = tracked

    def known(self, message_id: int, tracked: Tracked) -> None:
        """A message this process did not claim (sent before a restart, or expiring unsent):
        tracked until its outcome is committed, so its event and timeline row are right."""
        self._tracked.setdefault(message_id, tracked)

    def get(self, message_id: int) -> Tracked | None:
        return self._tracked.get(message_id)

    def sent(self, message_id: int, parts: list[str]) -> None:
        """The provider took the message as `parts`; their receipts will name them."""
        tracked = self._tracked.get(message_id)
        if tracked is None:
            return
        tracked.parts = list(parts)
        tracked.parts_left = set(parts)
        for part in parts:
            self._by_part[part] = message_id
            early = self._early.get(part)
            if early is not None and not early.done():
                early.set_result(message_id)

    def part_delivered(self, message_id: int, part: str) -> bool:
        """Note one part's delivery; True once no part is left (or nothing is known)."""
        tracked = self._tracked.get(message_id)
        if tracked is None:
            return True
        tracked.parts_left.discard(part)
        return not tracked.parts_left

    async def match(self, part: str) -> int | None:
        """The message a receipt's part belongs to; None when this process did not send it."""
        message_id = self._by_part.get(part)
        if message_id is not None:
            return message_id
        future = self._early.get(part)
        if future is None:
            future = self._early[part] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(asyncio.shield(future), EARLY_RECEIPT_WAIT_S)
        except TimeoutError:
            return None
        finally:
            self._early.pop(part, None)

    def interaction_of(self, message_id: int) -> int | None:
        """The timeline row of a tracked message (None: none, or not tracked)."""
        tracked = self._tracked.get(message_id)
        return tracked.interaction_id if tracked is not None else None

    def forget(self, message_id: int) -> None:
        tracked = self._tracked.pop(message_id, None)
        if tracked is not None:
            for part in tracked.parts:
                self._by_part.pop(part, None)
