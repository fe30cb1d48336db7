"""Live events shared between daemons on one PostgreSQL database, over LISTEN/NOTIFY.

Each daemon drives its own Asterisk, so its bus only sees its own calls. The relay sends the
events a live view shows (calls, agents, inbound queues) to the other daemons, batched into a
few NOTIFYs, and publishes what arrives from them as `PeerEvent`s: a panel on any daemon can
show every call. A `PeerEvent` is for viewers only: the dialer, the call writer and the other
services subscribe to the concrete event types and so never act on another daemon's calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import typing
from datetime import datetime
from enum import Enum
from types import TracebackType
from typing import Any, Final

import asyncpg

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.calls.events import CallEvent
from contactd.dialer.floor_events import (
    AgentStateChanged,
    InboundAbandoned,
    InboundAnswered,
    InboundQueued,
)
from contactd.events import DomainEvent, EventBus

log = logging.getLogger(__name__)

CHANNEL: Final = "contactd_events"
RELAYED: Final[tuple[type[DomainEvent], ...]] = (
    CallEvent, AgentStateChanged, InboundQueued, InboundAnswered, InboundAbandoned)
BATCH_S: Final = 0.05  # events sent together: one NOTIFY per batch, not per event
MAX_PAYLOAD: Final = 7000  # PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more
QUEUE_MAX: Final = 10_000  # events waiting to be sent; past it the oldest are dropped


@dataclasses.dataclass(frozen=True, kw_only=True)
class PeerEvent(DomainEvent):
    """An event another daemon published: `kind` is its class name, `data` its fields as
    JSON values (times as ISO 8601 text)."""

    node: str
    kind: str
    data: dict[str, Any]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def encode(node: str, events: list[DomainEvent]) -> list[str]:
    """`events` as NOTIFY payloads of at most MAX_PAYLOAD bytes each."""
    items = [json.dumps({"kind": type(e).__name__,
                         "data": {f.name: _plain(getattr(e, f.name))
                                  for f in dataclasses.fields(e)}},
                        separators=(",", ":"), default=str)
             for e in events]
    head = f'{{"node":{json.dumps(node)},"events":['
    payloads: list[str] = []
    batch: list[str] = []
    size = len(head) + 2
    for item in items:
        if len(item.encode()) + len(head) + 2 > MAX_PAYLOAD:
            log.warning("live event too large to relay", extra={"kind": item[:60]})
            continue
        if batch and size + len(item.encode()) + 1 > MAX_PAYLOAD:
            payloads.append(head + ",".join(batch) + "]}")
            batch, size = [], len(head) + 2
        batch.append(item)
        size += len(item.encode()) + 1
    if batch:
        payloads.append(head + ",".join(batch) + "]}")
    return payloads


def decode(payload: str) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """(node, [(kind, data)]) of a payload `encode` made; ValueError for anything else."""
    body = json.loads(payload)
    if not isinstance(body, dict) or not isinstance(body.get("node"), str) \
            or not isinstance(body.get("events"), list):
        raise ValueError("not a contactd live-event payload")
    out = []
    for item in body["events"]:
        if not isinstance(item, dict) or not isinstance(item.get("kind"), str) \
                or not isinstance(item.get("data"), dict):
            raise ValueError("not a contactd live event")
        out.append((item["kind"], item["data"]))
    return body["node"], out


class ClusterRelay:
    """Sends this daemon's live events to the others and publishes theirs as PeerEvents."""

    def __init__(self, dsn: str, node: str, bus: EventBus) -> None:
        self.dsn, self.node, self.bus = dsn, node, bus
        self.state = LoopState("cluster relay")
        # None: the link to the database was lost (wakes the sender to reconnect at once).
        self._queue: asyncio.Queue[DomainEvent | None] = asyncio.Queue(QUEUE_MAX)
        self._inbound: asyncio.Queue[PeerEvent] = asyncio.Queue(QUEUE_MAX)
        self._tasks = TaskOwner("cluster-relay", log)
        self._conn: asyncpg.Connection | None = None
        self.listening = asyncio.Event()
        self.dropped = 0

    async def __aenter__(self) -> ClusterRelay:
        for kind in RELAYED:
            self.bus.subscribe(kind, self._on_local)
        self._tasks.spawn(run_resilient(self._step, self.state, logger=log), "cluster-relay")
        self._tasks.spawn(self._deliver(), "cluster-deliver")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for kind in RELAYED:
            self.bus.unsubscribe(kind, self._on_local)
        await self._tasks.close()
        await self._close()

    def _on_local(self, event: DomainEvent | None) -> None:
        if self._queue.full():  # no peer is listening fast enough: keep the newest
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    def _on_lost(self, _conn: Any) -> None:
        self.listening.clear()
        self._on_local(None)

    async def _step(self) -> None:
        """Connect and LISTEN (again after a failure), then send batches until it fails."""
        if self._conn is None or self._conn.is_closed():
            await self._close()
            self.listening.clear()
            self._conn = await asyncpg.connect(self.dsn, server_settings={
                "application_name": f"contactd-relay-{self.node}"})
            self._conn.add_termination_listener(self._on_lost)
            await self._conn.add_listener(CHANNEL, self._on_notify)
            self.listening.set()
            log.info("relaying live events to other daemons", extra={"node": self.node})
        first = await self._queue.get()
        if first is None or self._conn.is_closed():
            raise ConnectionError("the LISTEN connection to the database was lost")
        await asyncio.sleep(BATCH_S)  # gather what follows it into the same NOTIFY
        events = [first]
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is not None:
                events.append(event)
        for payload in encode(self.node, events):
            await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            node, events = decode(payload)
        except ValueError as exc:
            log.warning("unreadable live event from another daemon", extra={"error": str(exc)})
            return
        if node == self.node:
            return  # our own, echoed back
        for kind, data in events:
            if self._inbound.full():
                self._inbound.get_nowait()
                self.dropped += 1
            self._inbound.put_nowait(PeerEvent(node=node, kind=kind, data=data))

    async def _deliver(self) -> None:
        """Publish other daemons' events on this bus, one at a time, in arrival order."""
        while True:
            await self.bus.publish(await self._inbound.get())

    async def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None


def _kinds() -> dict[str, type[DomainEvent]]:
    out: dict[str, type[DomainEvent]] = {}
    todo: list[type[DomainEvent]] = list(RELAYED)
    while todo:
        kind = todo.pop()
        out[kind.__name__] = kind
        todo.extend(kind.__subclasses__())
    return out


def _value(hint: Any, raw: Any) -> Any:
    """`raw` (a JSON value) as the field's type: datetimes and enums come back typed."""
    if raw is None:
        return None
    options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    for option in options:
        if option is datetime and isinstance(raw, str):
            return datetime.fromisoformat(raw)
        if isinstance(option, type) and issubclass(option, Enum):
            with contextlib.suppress(ValueError):
                return option(raw)
    return raw


def revive(event: PeerEvent) -> DomainEvent | None:
    """The event another daemon published, typed again, for a live view to show as its own;
    None for a kind this daemon does not know (an older or newer peer)."""
    kind = _kinds().get(event.kind)
    if kind is None:
        return None
    hints = typing.get_type_hints(kind)
    names = {f.name for f in dataclasses.fields(kind)}
    try:
        return kind(**{k: _value(hints.get(k), v) for k, v in event.data.items() if k in names})
    except (TypeError, ValueError):
        return None


def asyncpg_dsn(url: str) -> str:
    """The plain postgresql:// DSN asyncpg takes, from SQLAlchemy's postgresql+asyncpg URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
