"""Live pushes to agents' workspace tabs: one bus subscription per daemon, fanned out.

When the dialer hands a call to an agent (AgentCallOffered), or an inbound queue a caller
(InboundCallOffered), the hub loads the card once and puts it on the queue of every open tab
of that agent; when the call ends it says so. An open
tab costs a queue, never a database query per event. A tab too slow to read loses its oldest
pushes rather than holding memory.

When an agent's last tab closes and none comes back within `[dialer] tab_closed_pause_s`,
`on_away` runs for them (the desk pauses a Ready agent with reason "tab_closed"): a call must
not go to a desk nobody watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Final

from contactd.background import TaskOwner
from contactd.calls.events import CallEnded
from contactd.config import DialerSettings
from contactd.db.session import Database
from contactd.dialer.announce import AgentCallOffered
from contactd.dialer.inbound import InboundCallEnded, InboundCallOffered
from contactd.events import EventBus
from contactd.web.card import Card, card_of_attempt, card_of_caller

log = logging.getLogger(__name__)

TAB_QUEUE: Final = 32  # pushes kept for a tab that is not reading
ATTEMPTS_KEPT: Final = 10_000  # attempt -> agent it was given to (dispositions check it)

Push = dict[str, Any]


class LiveHub:
    def __init__(self, db: Database, bus: EventBus, dialer: DialerSettings) -> None:
        self._db, self._bus, self._dialer = db, bus, dialer
        self._tabs: defaultdict[str, set[asyncio.Queue[Push | None]]] = defaultdict(set)
        self._attempts: OrderedDict[str, str] = OrderedDict()
        self.last: dict[str, Push] = {}  # agent -> the last offer, for a tab opened mid-call
        self.tab_grace_s = dialer.tab_closed_pause_s
        self.on_away: Callable[[str], Awaitable[None]] | None = None
        self._away: dict[str, asyncio.Task[None]] = {}  # agent -> the grace running out
        self._tasks = TaskOwner("live-hub", log)
        self._stopping = False
        self.changed = asyncio.Event()  # set whenever a tab opens or closes (tests wait on it)

    async def __aenter__(self) -> LiveHub:
        self._bus.subscribe(AgentCallOffered, self._on_offered)
        self._bus.subscribe(CallEnded, self._on_ended)
        self._bus.subscribe(InboundCallOffered, self._on_inbound)
        self._bus.subscribe(InboundCallEnded, self._on_inbound_ended)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bus.unsubscribe(AgentCallOffered, self._on_offered)
        self._bus.unsubscribe(CallEnded, self._on_ended)
        self._bus.unsubscribe(InboundCallOffered, self._on_inbound)
        self._bus.unsubscribe(InboundCallEnded, self._on_inbound_ended)
        self.close_tabs()
        await self._tasks.close()

    def close_tabs(self) -> None:
        """Every open stream ends (the server is stopping)."""
        self._stopping = True
        for queues in self._tabs.values():
            for queue in queues:
                self._put(queue, None)

    @contextlib.contextmanager
    def listen(self, agent: str) -> Iterator[asyncio.Queue[Push | None]]:
        """A queue of pushes for one open tab of `agent`; None means the server is stopping."""
        queue: asyncio.Queue[Push | None] = asyncio.Queue(TAB_QUEUE)
        self._tabs[agent].add(queue)
        self.changed.set()
        away = self._away.pop(agent, None)
        if away is not None:  # the tab came back (a reload) within the grace
            away.cancel()
        try:
            yield queue
        finally:
            self._tabs[agent].discard(queue)
            if not self._tabs[agent]:
                del self._tabs[agent]
                if not self._stopping and self.on_away is not None:
                    self._away[agent] = self._tasks.spawn(self._grace(agent), f"away-{agent}")
            self.changed.set()

    def tabs(self, agent: str) -> int:
        """How many workspace tabs of `agent` are open now."""
        return len(self._tabs.get(agent, ()))

    def away(self, agent: str) -> asyncio.Task[None] | None:
        """The grace running for an agent whose last tab closed, if any."""
        return self._away.get(agent)

    async def _grace(self, agent: str) -> None:
        await asyncio.sleep(self.tab_grace_s)
        self._away.pop(agent, None)
        if agent not in self._tabs and self.on_away is not None:
            await self.on_away(agent)

    def forget(self, agent: str) -> None:
        """The agent signed out of the campaign: no card to show a new tab."""
        self.last.pop(agent, None)

    def offered_to(self, attempt_id: str) -> str | None:
        return self._attempts.get(attempt_id)

    def disposed(self, agent: str, attempt_id: str) -> None:
        """The agent said what the call came to: its card is put away in every tab."""
        last = self.last.get(agent)
        if last is not None and last["card"]["attempt_id"] == attempt_id:
            del self.last[agent]
        self.send(agent, {"type": "disposed", "attempt_id": attempt_id})

    def send(self, agent: str, push: Push) -> None:
        for queue in list(self._tabs.get(agent, ())):
            self._put(queue, push)

    @staticmethod
    def _put(queue: asyncio.Queue[Push | None], push: Push | None) -> None:
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(push)

    async def _on_offered(self, event: AgentCallOffered) -> None:
        card = await card_of_attempt(self._db, self._dialer, event.attempt_id)
        if card is None:
            log.warning("offered call has no lead", extra={"attempt_id": event.attempt_id})
            return
        self._offer(event.agent, event.attempt_id, card)
        log.info("card pushed to agent", extra={"attempt_id": event.attempt_id,
                                                "lead_id": card.lead_id, "agent": event.agent})

    def _offer(self, agent: str, attempt_id: str, card: Card) -> None:
        self._attempts[attempt_id] = agent
        while len(self._attempts) > ATTEMPTS_KEPT:
            self._attempts.popitem(last=False)
        push = {"type": "offer", "card": card.as_json()}
        self.last[agent] = push
        self.send(agent, push)

    async def _on_inbound(self, event: InboundCallOffered) -> None:
        card = await card_of_caller(self._db, event.call_id, event.queue, event.caller,
                                    event.contact_id)
        self._offer(event.agent, event.call_id, card)
        log.info("card pushed to agent", extra={"call_id": event.call_id, "queue": event.queue,
                                                "agent": event.agent})

    def _on_inbound_ended(self, event: InboundCallEnded) -> None:
        self._ended(event.call_id, "answered" if event.answered else "not_answered")

    def _on_ended(self, event: CallEnded) -> None:
        self._ended(event.attempt_id, event.outcome.value)

    def _ended(self, attempt_id: str, outcome: str) -> None:
        agent = self._attempts.get(attempt_id)
        if agent is None:
            return
        push = {"type": "ended", "attempt_id": attempt_id, "outcome": outcome}
        last = self.last.get(agent)
        if last is not None and last["card"]["attempt_id"] == attempt_id:
            last["ended"] = True  # a tab opened during wrap-up shows the call as over
        self.send(agent, push)
