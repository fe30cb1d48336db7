"""Live pushes to the panel: agents' workspace tabs (LiveHub) and the supervisors' live floor
(FloorHub). Each is one bus subscription per daemon, fanned out to its open tabs.

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
import json
import logging
import math
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Protocol

from sqlalchemy import select

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.calls.events import CallAnswered, CallBridged, CallDialing, CallEnded, CallRinging
from contactd.cluster import PeerEvent, revive
from contactd.config import DialerSettings, Settings
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.dialer.agents import LOGGED_OUT, AgentBoard, AgentState
from contactd.dialer.announce import AgentCallOffered
from contactd.dialer.callstate import DialState
from contactd.dialer.events import SurplusHangup
from contactd.dialer.floor_events import (
    AgentStateChanged,
    InboundAbandoned,
    InboundAnswered,
    InboundQueued,
)
from contactd.dialer.governor import DAY_S
from contactd.dialer.inbound import InboundCallEnded, InboundCallOffered
from contactd.dialer.pacing import PredictivePacer
from contactd.dialer.runtime import CampaignRuntime
from contactd.enums import CampaignStatus
from contactd.events import EventBus
from contactd.health import HealthRegistry
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


# ---- the live floor ----------------------------------------------------------------------

FRAME_S: Final = 0.05  # pushes made within this long leave together, in one write per tab
# Bytes a tab may have unsent before it is skipped (and later sent a snapshot). Below the
# socket's high-water mark (64 KiB), so that a write to it never waits for it to drain: one
# slow viewer must not hold up the frame for the others.
TAB_BUFFER: Final = 32 * 1024
ANSWER_WINDOW_S: Final = 3600.0  # the answer rate the floor shows is over the last hour
CAMPAIGN_REFRESH_S: Final = 30.0  # names and states changed elsewhere (the CLI) show this late
TALKING: Final = "talking"
RINGING: Final = "ringing"


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame as every tab gets it, made once: the SSE bytes, and the same bytes framed
    as one HTTP/1.1 chunk (what a chunked response writes to its socket)."""

    body: bytes
    chunk: bytes

    @classmethod
    def of(cls, body: bytes) -> Frame:
        return cls(body, b"%x\r\n%b\r\n" % (len(body), body))


class FloorTab(Protocol):
    """An open floor stream as the hub writes to it (web/views/floor.py's FloorStream)."""

    def backlog(self) -> int: ...  # bytes written but not yet sent

    def send(self, frame: Frame) -> None: ...  # straight to the socket's buffer, no await

    def fell_behind(self) -> None: ...

    def stopping(self) -> None: ...


class FloorSource(Protocol):
    """What the floor reads of the dialer, in memory: its runtimes and its agent board."""

    @property
    def runtimes(self) -> Iterable[CampaignRuntime]: ...

    @property
    def agents(self) -> AgentBoard: ...


def _epoch(at: datetime) -> float:
    return at.timestamp()


def encode(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass
class QueueFloor:
    """One inbound queue as the floor shows it; `service_level_s` is its answer target."""

    name: str
    service_level_s: float
    waiting: dict[str, float] = field(default_factory=dict)  # call id -> queued at (epoch)
    answered: int = 0
    answered_in_time: int = 0
    abandoned: int = 0

    def as_json(self) -> dict[str, Any]:
        offered = self.answered + self.abandoned
        return {"name": self.name, "waiting": len(self.waiting),
                "oldest": min(self.waiting.values()) if self.waiting else None,
                "answered": self.answered, "abandoned": self.abandoned,
                "service_level": self.answered_in_time / offered if offered else None,
                "service_level_s": self.service_level_s}


def queue_levels(settings: Settings) -> dict[str, float]:
    """Each configured inbound queue's service-level target, in seconds."""
    return {name: queue.service_level_s for name, queue in settings.inbound.queues.items()}


class FloorHub:
    """The live floor: one set of bus subscriptions per daemon, fanned out to every tab.

    Calls, agents and inbound queues are kept from the events; per-campaign figures are read
    from the dialer's runtimes and health from the registry once a second, and only what
    changed is pushed. Each push is encoded once; the pushes of each FRAME_S go to every tab
    in one write, so an open tab costs one write per frame: no database query, no task, no
    encoding of its own.
    Campaign names and states are the one thing read from the database: at start, when a
    call of an unknown campaign appears, when the panel changes a campaign, and every
    `CAMPAIGN_REFRESH_S`.
    """

    def __init__(self, db: Database, bus: EventBus, health: HealthRegistry,
                 dialer: FloorSource | None, *, service_level_s: float = 20.0,
                 queue_levels: Mapping[str, float] | None = None,
                 tick_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self._db, self._bus, self._health = db, bus, health
        self.dialer = dialer  # set later by the daemon when the floor starts before the dialer
        self.service_level_s, self.tick_s, self._clock = service_level_s, tick_s, clock
        # Each inbound queue's own target ([inbound.queues.NAME] service_level_s); a queue
        # without one (a peer daemon's, say) is held to `service_level_s`.
        self.queue_levels = dict(queue_levels or {})
        self._tabs: set[FloorTab] = set()
        self._pending: list[bytes] = []
        self._flush = asyncio.Event()
        self._tasks = TaskOwner("floor", log)
        self.calls: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, QueueFloor] = {}
        for name in self.queue_levels:  # configured queues show before their first caller
            self._queue(name)
        self.campaigns: dict[int, dict[str, Any]] = {}
        self.health: dict[str, dict[str, str]] = {}
        self._dialed: defaultdict[int, deque[float]] = defaultdict(deque)
        self._answered: defaultdict[int, deque[float]] = defaultdict(deque)
        self._hung_up: defaultdict[int, deque[float]] = defaultdict(deque)  # surplus hang-ups
        self._sent: dict[int, dict[str, Any]] = {}  # campaign figures as last pushed
        self._refresh = asyncio.Event()
        self.pushes = 0  # encoded pushes made (not per tab): the bench reads it
        self.frames = 0  # frames sent (each one write per tab)

    def _handlers(self) -> tuple[tuple[type[Any], Callable[[Any], None]], ...]:
        return ((CallDialing, self._on_dialing), (CallRinging, self._on_ringing),
                (CallAnswered, self._on_answered), (CallBridged, self._on_bridged),
                (CallEnded, self._on_ended), (AgentStateChanged, self._on_agent),
                (InboundQueued, self._on_queued), (InboundAnswered, self._on_taken),
                (InboundAbandoned, self._on_hung_up), (SurplusHangup, self._on_surplus),
                (PeerEvent, self._on_peer))

    def _on_peer(self, event: PeerEvent) -> None:
        """Another daemon's call, agent or queue (several daemons on one PostgreSQL): shown
        as this daemon's own are."""
        revived = revive(event)
        if revived is None:
            return
        for kind, handler in self._handlers():
            if kind is type(revived):
                handler(revived)
        if isinstance(revived, AgentStateChanged) and revived.agent in self.agents:
            self.agents[revived.agent]["node"] = event.node  # whose board holds the agent

    async def __aenter__(self) -> FloorHub:
        for kind, handler in self._handlers():
            self._bus.subscribe(kind, handler)
        if self.dialer is not None:  # agents logged in before the floor started
            for agent in list(self.dialer.agents.agents.values()):
                self.agents[agent.name] = {"name": agent.name, "campaign_id": agent.campaign_id,
                                           "state": agent.state.value, "since": agent.since,
                                           "pause_code": agent.pause_code}
        self._tasks.spawn(self._run(), "tick")
        self._tasks.spawn(self._send_frames(), "frames")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for kind, handler in self._handlers():
            self._bus.unsubscribe(kind, handler)
        await self._tasks.close()
        self.close_tabs()

    def close_tabs(self) -> None:
        for tab in list(self._tabs):
            tab.stopping()

    def join(self, tab: FloorTab) -> bytes:
        """Adds a tab; returns the snapshot it must be sent first (before any await, so that
        no frame reaches it before the state the frames change)."""
        self._tabs.add(tab)
        return self.snapshot()

    def leave(self, tab: FloorTab) -> None:
        self._tabs.discard(tab)

    @property
    def tabs(self) -> int:
        return len(self._tabs)

    def snapshot(self) -> bytes:
        return encode("snapshot", {
            "t": self._clock(), "calls": list(self.calls.values()),
            "agents": list(self.agents.values()),
            "campaigns": list(self.campaigns.values()),
            "queues": [q.as_json() for q in self.queues.values()],
            "health": self.health, "service_level_s": self.service_level_s})

    def refresh_campaigns(self) -> None:
        """A campaign was created or changed state: read names and states again (once)."""
        self._refresh.set()

    # ---- fan-out ---------------------------------------------------------------------------
    def _push(self, kind: str, data: dict[str, Any], at: float | None = None) -> None:
        data["t"] = at if at is not None else self._clock()
        self._pending.append(encode(kind, data))
        self.pushes += 1
        self._flush.set()

    async def _send_frames(self) -> None:
        """Every FRAME_S at most, what was pushed goes to every tab in one write. The frame
        (and its HTTP chunk) is made once; this one task then hands the same bytes to each
        tab's socket buffer, without an await, a task or an encoding per tab. A tab whose
        connection does not keep up is skipped and told to catch up by itself."""
        while True:
            await self._flush.wait()
            await asyncio.sleep(FRAME_S)  # gathers the pushes of this frame
            self._flush.clear()
            # An SSE comment (browsers skip it) says when the frame left: bench/live.py
            # splits event -> browser into the server's part and the delivery's.
            frame = Frame.of(b": sent %.3f\n\n" % self._clock() + b"".join(self._pending))
            self._pending = []
            self.frames += 1
            for tab in list(self._tabs):
                if tab.backlog() > TAB_BUFFER:
                    self._tabs.discard(tab)
                    tab.fell_behind()
                    continue
                try:
                    tab.send(frame)
                except (ConnectionError, RuntimeError):  # the tab went away meanwhile
                    self._tabs.discard(tab)
                    tab.stopping()

    # ---- calls -----------------------------------------------------------------------------
    def _call(self, attempt_id: str, state: str, at: float, **fields: Any) -> None:
        call = self.calls.get(attempt_id)
        if call is None:
            call = self.calls[attempt_id] = {"id": attempt_id, "campaign_id": None,
                                             "number": "", "agent": None}
        call.update(fields, state=state, since=at)
        self._push("call", dict(call), at)

    def _on_dialing(self, event: CallDialing) -> None:
        at = _epoch(event.at)
        self._call(event.attempt_id, RINGING, at, campaign_id=event.campaign_id,
                   number=event.phone_e164)
        if event.campaign_id is not None:
            self._dialed[event.campaign_id].append(at)
            if event.campaign_id not in self.campaigns:
                self._refresh.set()

    def _on_surplus(self, event: SurplusHangup) -> None:
        """A ringing call the predictive dialer ended unanswered (contactd/dialer/surplus.py):
        counted per campaign over the last hour, beside the answer rate."""
        self._hung_up[event.campaign_id].append(_epoch(event.at))

    def _on_ringing(self, event: CallRinging) -> None:
        call = self.calls.get(event.attempt_id)
        if call is None:  # a call placed by someone else's originate (click-to-call)
            self._call(event.attempt_id, RINGING, _epoch(event.at))

    def _on_answered(self, event: CallAnswered) -> None:
        at = _epoch(event.at)
        call = self.calls.get(event.attempt_id)
        if call is not None and call["campaign_id"] is not None:
            self._answered[call["campaign_id"]].append(at)
        self._call(event.attempt_id, TALKING, at)

    def _on_bridged(self, event: CallBridged) -> None:
        call = self.calls.get(event.attempt_id)
        since = call["since"] if call is not None and call["state"] == TALKING else None
        self._call(event.attempt_id, TALKING, since or _epoch(event.at),
                   agent=event.agent_interface)

    def _on_ended(self, event: CallEnded) -> None:
        if self.calls.pop(event.attempt_id, None) is not None:
            self._push("call", {"id": event.attempt_id, "state": "ended",
                                "outcome": event.outcome.value}, _epoch(event.at))

    # ---- agents and queues -----------------------------------------------------------------
    def _on_agent(self, event: AgentStateChanged) -> None:
        data = {"name": event.agent, "campaign_id": event.campaign_id, "state": event.state,
                "since": event.since, "pause_code": event.pause_code}
        if event.state == LOGGED_OUT:
            self.agents.pop(event.agent, None)
        else:
            self.agents[event.agent] = data
        self._push("agent", dict(data), _epoch(event.at))

    def _queue(self, name: str) -> QueueFloor:
        queue = self.queues.get(name)
        if queue is None:
            level = self.queue_levels.get(name, self.service_level_s)
            queue = self.queues[name] = QueueFloor(name, level)
        return queue

    def _on_queued(self, event: InboundQueued) -> None:
        queue = self._queue(event.queue)
        queue.waiting[event.call_id] = _epoch(event.at)
        self._push("queue", queue.as_json(), _epoch(event.at))

    def _on_taken(self, event: InboundAnswered) -> None:
        queue = self._queue(event.queue)
        queue.waiting.pop(event.call_id, None)
        queue.answered += 1
        queue.answered_in_time += event.waited_s <= queue.service_level_s
        self._push("queue", queue.as_json(), _epoch(event.at))

    def _on_hung_up(self, event: InboundAbandoned) -> None:
        queue = self._queue(event.queue)
        queue.waiting.pop(event.call_id, None)
        queue.abandoned += 1
        self._push("queue", queue.as_json(), _epoch(event.at))

    # ---- once a second: campaigns and health -----------------------------------------------
    async def _run(self) -> None:
        state = LoopState("floor")
        last_read = -CAMPAIGN_REFRESH_S

        async def step() -> None:
            nonlocal last_read
            now = self._clock()
            if self._refresh.is_set() or now - last_read >= CAMPAIGN_REFRESH_S:
                self._refresh.clear()
                last_read = now
                await self._read_campaigns()
            self.tick(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh.wait(), self.tick_s)

        await run_resilient(step, state, logger=log)

    async def _read_campaigns(self) -> None:
        async with self._db.session() as session:
            rows = (await session.execute(
                select(Campaign.id, Campaign.name, Campaign.mode, Campaign.status)
                .where(Campaign.status.in_((CampaignStatus.RUNNING, CampaignStatus.PAUSED))
                       | Campaign.id.in_(list(self.campaigns)))
            )).all()
        for campaign_id, name, mode, status in rows:
            known = self.campaigns.setdefault(campaign_id, {"id": campaign_id})
            known.update(name=name, mode=mode.value, status=status.value)

    def tick(self, now: float) -> None:
        """Push the campaign figures and health states that changed since the last tick."""
        health = {name: {"status": h.status, "detail": h.detail}
                  for name, h in self._health.snapshot().items()}
        if health != self.health:
            self.health = health
            self._push("health", {"components": health})
        for campaign_id, figures in self._campaign_figures(now).items():
            if campaign_id not in self.campaigns:
                self._refresh.set()  # its name and state are read at the next step
            self.campaigns.setdefault(campaign_id, {"id": campaign_id, "name": "", "mode": "",
                                                    "status": ""}).update(figures)
        for campaign_id, known in self.campaigns.items():
            if self._sent.get(campaign_id) != known:
                self._sent[campaign_id] = dict(known)
                self._push("campaign", dict(known))

    def _campaign_figures(self, now: float) -> dict[int, dict[str, Any]]:
        if self.dialer is None:
            return {}
        out: dict[int, dict[str, Any]] = {}
        board = self.dialer.agents
        for rt in self.dialer.runtimes:
            dialed, answered = self._dialed[rt.campaign_id], self._answered[rt.campaign_id]
            hung_up = self._hung_up[rt.campaign_id]
            for times in (dialed, answered, hung_up):
                while times and times[0] < now - ANSWER_WINDOW_S:
                    times.popleft()
            staffed = sum(1 for a in board.agents.values()
                          if a.campaign_id == rt.campaign_id and a.state is not AgentState.PAUSED)
            out_now = sum(1 for c in rt.calls if c.state is DialState.RINGING)
            figures: dict[str, Any] = {
                "calls_out": out_now, "agents": staffed,
                "dial_level": round(out_now / staffed, 2) if staffed else None,
                "answer_rate": round(len(answered) / len(dialed), 3) if dialed else None,
                "hung_up_1h": None,  # a predictive campaign's, when surplus hang-ups are on
                "abandon_24h": None, "abandon_30d": None, "limit_pct": None,
                "reserve": None, "target": None}
            pacer = rt.pacer
            if isinstance(pacer, PredictivePacer):
                governor = pacer.governor
                day, month = (governor.window(now, s) for s in (DAY_S, 30 * DAY_S))
                budget = governor.budget(now, 1.0)
                figures.update(
                    abandon_24h=round(day.rate, 4), abandon_30d=round(month.rate, 4),
                    limit_pct=round(governor.limit * 100, 2),
                    reserve=(round(budget.allowed_abandons, 1)
                             if math.isfinite(budget.allowed_abandons) else None),
                    target=pacer.last.outstanding,
                    hung_up_1h=len(hung_up) if pacer.hangup_after_s is not None else None)
            else:
                figures["target"] = sum(1 for a in board.agents.values()
                                        if a.campaign_id == rt.campaign_id
                                        and a.state is AgentState.FREE)
            out[rt.campaign_id] = figures
        return out
