"""The floor's fan-out: pushes made together leave in one frame per tab, and a tab whose
connection does not keep up is skipped and told to catch up, never holding up the others.
The tabs are fakes: a socket buffer that stays full is the fault a real browser would need
minutes to produce."""

from __future__ import annotations

import asyncio

from contactd.db.session import Database
from contactd.dialer.floor_events import AgentStateChanged
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.web.live import TAB_BUFFER, FloorHub, Frame


class Tab:
    def __init__(self, backlog: int = 0) -> None:
        self.frames: list[bytes] = []
        self._backlog = backlog
        self.behind = self.ended = False
        self.heard = asyncio.Event()

    def backlog(self) -> int:
        return self._backlog

    def send(self, frame: Frame) -> None:
        self.frames.append(frame.body)
        self.heard.set()

    def fell_behind(self) -> None:
        self.behind = True
        self.heard.set()

    def stopping(self) -> None:
        self.ended = True


async def test_pushes_made_together_leave_in_one_frame_and_a_slow_tab_is_skipped(
    db: Database,
) -> None:
    bus = EventBus()
    async with FloorHub(db, bus, HealthRegistry(), None) as hub:
        fast, slow = Tab(), Tab(backlog=TAB_BUFFER + 1)
        assert hub.join(fast).startswith(b"event: snapshot\n")
        hub.join(slow)
        for n in range(3):
            await bus.publish(
                AgentStateChanged(agent=f"a{n}", campaign_id=1, state="free", since=float(n))
            )
        async with asyncio.timeout(5):
            await fast.heard.wait()
            await slow.heard.wait()
        assert len(fast.frames) == 1 and fast.frames[0].count(b"event: agent\n") == 3
        assert slow.behind and slow.frames == [] and hub.tabs == 1
        # Caught up, it joins again and gets the whole state first.
        slow._backlog = 0
        assert b'"name":"a2"' in hub.join(slow) and hub.tabs == 2
        hub.close_tabs()
    assert fast.ended and slow.ended
