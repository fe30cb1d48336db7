"""Prometheus metrics: what the daemon does, counted from the event bus and read at scrape.

Counters follow domain events (attempts by outcome, abandons, messages by channel and state),
so they cost one dict lookup per event and no query. Gauges that describe state are read when
Prometheus scrapes: component links from the health registry, each campaign's pacing target
and abandon windows from the dialer's live pacers. The outbox depth needs a query: a small
owned loop refreshes it every few seconds, never per scrape. Database query time is measured
on the engine's cursor events; event-loop lag by a task that knows when it should have woken.
The registry is the daemon's own, not the process-global one, so tests and several daemons
in one process never share figures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.calls.events import CallAbandoned, CallDialing, CallEnded
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.dialer.events import SurplusHangup
from contactd.dialer.pacing import PredictivePacer, ProgressivePacer
from contactd.enums import MessageState
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.ivr.events import IvrSessionEnded, IvrSessionStarted, SpeechDecided
from contactd.messaging.events import InboundSmsReceived, MessageStateChanged

log = logging.getLogger(__name__)

LINK_VALUE = {"ok": 1.0, "degraded": 0.5, "down": 0.0}
LAG_TICK_S = 0.25
DEPTH_EVERY_S = 5.0
PENDING = (MessageState.QUEUED, MessageState.SENDING)

# (campaign id, its pacer), as the dialer holds them now.
PacerView = Callable[[], Iterable[tuple[int, PredictivePacer | ProgressivePacer]]]


class _StateCollector(Collector):
    """Read at scrape: component links and each campaign's pacer."""

    def __init__(self, health: HealthRegistry, pacers: PacerView | None,
                 windows_s: tuple[float, ...]) -> None:
        self.health, self.pacers, self.windows_s = health, pacers, windows_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("contactd_component_up",
                               "1 ok, 0.5 degraded, 0 down, per component (AMI, SMPP, SMTP, "
                               "IMAP, database, loops)", labels=["component"])
        for name, component in sorted(self.health.snapshot().items()):
            up.add_metric([name], LINK_VALUE.get(component.status, 0.0))
        yield up
        if self.pacers is None:
            return
        target = GaugeMetricFamily("contactd_pacing_target_calls",
                                   "calls the pacer wants in flight now, per campaign",
                                   labels=["campaign"])
        rate = GaugeMetricFamily("contactd_abandon_rate",
                                 "abandoned share of live answers in the governor's window",
                                 labels=["campaign", "window"])
        allowed = GaugeMetricFamily("contactd_abandon_allowed_rate",
                                    "abandon share the governor allows the pacer now",
                                    labels=["campaign"])
        now = time.time()
        for campaign_id, pacer in self.pacers():
            label = str(campaign_id)
            if isinstance(pacer, PredictivePacer):
                target.add_metric([label], float(pacer.last.outstanding))
                allowed.add_metric([label], pacer.last.governor_rate)
                for window_s in self.windows_s:
                    state = pacer.governor.window(now, window_s)
                    rate.add_metric([label, _window_name(window_s)], state.rate)
        yield target
        yield rate
        yield allowed


def _window_name(seconds: float) -> str:
    return f"{seconds / 86400:g}d" if seconds >= 86400 else f"{seconds / 3600:g}h"


class Metrics:
    """The daemon's metrics; enter it to start the loops and subscribe to the bus."""

    def __init__(self, db: Database, bus: EventBus, health: HealthRegistry, *,
                 pacers: PacerView | None = None,
                 windows_s: tuple[float, ...] = (30 * 86400.0, 86400.0)) -> None:
        self.db, self.bus = db, bus
        self.registry = CollectorRegistry()
        r = self.registry
        self.attempts = Counter("contactd_call_attempts", "ended call attempts by outcome",
                                ["outcome"], registry=r)
        self.dialed = Counter("contactd_calls_dialed", "Originates sent", registry=r)
        self.abandons = Counter("contactd_call_abandons", "answered people no agent reached",
                                registry=r)
        self.surplus_hangups = Counter(
            "contactd_dialer_surplus_hangups",
            "ringing calls the predictive dialer ended unanswered (answers coming for no agent)",
            ["campaign"], registry=r)
        self.in_progress = Gauge("contactd_calls_in_progress", "calls dialled and not ended",
                                 registry=r)
        self.messages = Counter("contactd_messages", "outbox messages entering a state",
                                ["channel", "state"], registry=r)
        self.inbound_sms = Counter("contactd_inbound_sms", "SMS received", registry=r)
        self.outbox_depth = Gauge("contactd_outbox_depth", "messages queued or being sent",
                                  ["channel"], registry=r)
        self.loop_lag = Histogram("contactd_event_loop_lag_seconds",
                                  "how late the event loop ran a timer",
                                  buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5),
                                  registry=r)
        self.db_query = Histogram("contactd_db_query_seconds", "database statement time",
                                  buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25,
                                           .5, 1, 5), registry=r)
        # IVR: sessions from first AudioSocket frame to finished record; spoken answers from
        # end of speech to the recognizer's result (the benchmark's decision latency).
        self.ivr_sessions = Gauge("contactd_ivr_sessions_in_progress",
                                  "IVR calls connected and not finished", registry=r)
        self.ivr_decision = Histogram("contactd_ivr_speech_decision_seconds",
                                      "end of caller speech to the recognized answer",
                                      buckets=(.1, .2, .3, .4, .45, .5, .75, 1, 2, 5), registry=r)
        self._ivr_live: set[str] = set()
        r.register(_StateCollector(health, pacers, windows_s))
        self._live: set[str] = set()
        self._tasks = TaskOwner("metrics", log)
        self.depth_state = LoopState("outbox-depth")

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def __aenter__(self) -> Metrics:
        for kind, handler in self._handlers():
            self.bus.subscribe(kind, handler)
        sync_engine = self.db.engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", self._before_query)
        event.listen(sync_engine, "after_cursor_execute", self._after_query)
        self._tasks.spawn(self._measure_lag(), "loop-lag")
        self._tasks.spawn(run_resilient(self._depth_every, self.depth_state, logger=log),
                          "outbox-depth")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._tasks.close()
        sync_engine = self.db.engine.sync_engine
        event.remove(sync_engine, "before_cursor_execute", self._before_query)
        event.remove(sync_engine, "after_cursor_execute", self._after_query)
        for kind, handler in self._handlers():
            self.bus.unsubscribe(kind, handler)

    def _handlers(self) -> list[tuple[type[Any], Callable[[Any], None]]]:
        return [(CallDialing, self._on_dialing), (CallEnded, self._on_ended),
                (CallAbandoned, self._on_abandoned), (SurplusHangup, self._on_surplus_hangup),
                (MessageStateChanged, self._on_message),
                (InboundSmsReceived, self._on_inbound), (IvrSessionStarted, self._on_ivr_start),
                (IvrSessionEnded, self._on_ivr_end), (SpeechDecided, self._on_speech)]

    def _on_dialing(self, ev: CallDialing) -> None:
        self.dialed.inc()
        self._live.add(ev.attempt_id)
        self.in_progress.set(len(self._live))

    def _on_ended(self, ev: CallEnded) -> None:
        self.attempts.labels(ev.outcome.value).inc()
        self._live.discard(ev.attempt_id)
        self.in_progress.set(len(self._live))

    def _on_abandoned(self, ev: CallAbandoned) -> None:
        self.abandons.inc()

    def _on_surplus_hangup(self, ev: SurplusHangup) -> None:
        self.surplus_hangups.labels(str(ev.campaign_id)).inc()

    def _on_message(self, ev: MessageStateChanged) -> None:
        self.messages.labels(ev.channel.value, ev.state.value).inc()

    def _on_inbound(self, ev: InboundSmsReceived) -> None:
        self.inbound_sms.inc()

    def _on_ivr_start(self, ev: IvrSessionStarted) -> None:
        self._ivr_live.add(ev.session_id)
        self.ivr_sessions.set(len(self._ivr_live))

    def _on_ivr_end(self, ev: IvrSessionEnded) -> None:
        self._ivr_live.discard(ev.session_id)
        self.ivr_sessions.set(len(self._ivr_live))

    def _on_speech(self, ev: SpeechDecided) -> None:
        self.ivr_decision.observe(ev.latency_s)

    def _before_query(self, conn: Any, cursor: Any, statement: str, parameters: Any,
                      context: Any, executemany: bool) -> None:
        conn.info.setdefault("contactd_query_started", []).append(time.perf_counter())

    def _after_query(self, conn: Any, cursor: Any, statement: str, parameters: Any,
                     context: Any, executemany: bool) -> None:
        started = conn.info.get("contactd_query_started")
        if started:
            self.db_query.observe(time.perf_counter() - started.pop())

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_TICK_S
            await asyncio.sleep(LAG_TICK_S)
            self.loop_lag.observe(max(0.0, loop.time() - due))

    async def _depth_every(self) -> None:
        await self._refresh_depth()
        await asyncio.sleep(DEPTH_EVERY_S)

    async def _refresh_depth(self) -> None:
        async with self.db.session() as session:
            rows = (await session.execute(
                select(OutboxMessage.channel, func.count())
                .where(OutboxMessage.state.in_(PENDING))
                .group_by(OutboxMessage.channel))).all()
        seen = {str(getattr(channel, "value", channel)): int(n) for channel, n in rows}
        for channel in ("sms", "email"):
            self.outbox_depth.labels(channel).set(seen.get(channel, 0))
