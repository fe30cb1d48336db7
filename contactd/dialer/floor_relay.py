"""Puts the agent board's state changes on the event bus, in the order they happened.

The board is synchronous (the dialer moves agents inside its own steps); its `on_change` hook
hands each `AgentStateChanged` to this relay, whose one task publishes them one by one.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from contactd.background import TaskOwner
from contactd.dialer.agents import AgentBoard
from contactd.dialer.floor_events import AgentStateChanged
from contactd.events import EventBus

log = logging.getLogger(__name__)


class AgentStateRelay:
    def __init__(self, board: AgentBoard, bus: EventBus) -> None:
        self._board, self._bus = board, bus
        self._queue: asyncio.Queue[AgentStateChanged] = asyncio.Queue()
        self._tasks = TaskOwner("agent-state-relay", log)

    def __call__(self, event: AgentStateChanged) -> None:
        self._queue.put_nowait(event)

    async def __aenter__(self) -> AgentStateRelay:
        self._board.on_change = self
        self._tasks.spawn(self._run(), "publish")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._board.on_change is self:
            self._board.on_change = None
        await self._tasks.close()
        while not self._queue.empty():  # changes made just before the stop still go out
            await self._bus.publish(self._queue.get_nowait())

    async def _run(self) -> None:
        while True:
            await self._bus.publish(await self._queue.get())
