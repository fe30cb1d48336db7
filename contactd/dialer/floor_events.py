"""Events the live floor shows: agents changing state and callers waiting in inbound queues.

The agent board and the inbound hand-off publish them; the panel's live floor and the metrics
subscribe. They carry names and numbers only, so a viewer never needs a database read.
"""

from __future__ import annotations

from dataclasses import dataclass

from contactd.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class AgentStateChanged(DomainEvent):
    """`state` is an `AgentState` value; `since` is the monotonic time it began."""

    agent: str
    campaign_id: int | None
    state: str
    since: float
    pause_code: str | None = None


@dataclass(frozen=True, kw_only=True)
class InboundQueued(DomainEvent):
    """A caller started waiting in `queue` for an agent."""

    queue: str
    call_id: str
    caller: str
    contact_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class InboundAnswered(DomainEvent):
    """An agent took the waiting caller after `waited_s` seconds."""

    queue: str
    call_id: str
    agent: str
    waited_s: float


@dataclass(frozen=True, kw_only=True)
class InboundAbandoned(DomainEvent):
    """The caller hung up after `waited_s` seconds in the queue without reaching an agent."""

    queue: str
    call_id: str
    waited_s: float
