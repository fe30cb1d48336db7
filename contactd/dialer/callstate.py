"""The dialer's view of each call it placed: one state per call, moved only by its table.

`calls/machine.py` follows the attempt as Asterisk sees it (ringing, answered, bridged); this
follows what the dialer must decide about it: is it still ringing for the pacer, is a person
waiting for an agent, was it handed to one, was it counted as an abandon. A call leaves the
table when it ends (`LiveCalls.end`).

    RINGING --answered_no_agent--> ANSWERED      machine, or a campaign that needs no agent
    RINGING --answered_person----> WAITING       the dialer looks for a free agent
    RINGING --queued-------------> CONNECTING    Asterisk's queue connects (counted connected)
    WAITING --handed_off---------> CONNECTING    an agent was claimed in time
    WAITING, CONNECTING --abandon--> ABANDONED   past the grace, late, hung up, or Asterisk
                                                 gave up (counted abandoned, once)
    CONNECTING --bridged---------> BRIDGED       reached an agent or a queue member

An abandon is final: a late hand-off that still reached its agent stays counted abandoned,
and a second verdict (Asterisk's own timer after the dialer's) changes nothing. Any other
move is refused and logged: the call keeps its state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

log = logging.getLogger(__name__)


class DialState(StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"  # answered, no agent needed (machine, automated campaign)
    WAITING = "waiting"  # a person waits for the dialer to find a free agent
    CONNECTING = "connecting"  # handed to an agent or a queue, counted connected
    BRIDGED = "bridged"
    ABANDONED = "abandoned"  # counted as an abandon


class DialEvent(StrEnum):
    ANSWERED_NO_AGENT = "answered_no_agent"
    ANSWERED_PERSON = "answered_person"
    QUEUED = "queued"
    HANDED_OFF = "handed_off"
    ABANDON = "abandon"
    BRIDGED = "bridged"


S, E = DialState, DialEvent

TRANSITIONS: Final[Mapping[tuple[DialState, DialEvent], DialState]] = {
    (S.RINGING, E.ANSWERED_NO_AGENT): S.ANSWERED,
    (S.RINGING, E.ANSWERED_PERSON): S.WAITING,
    (S.RINGING, E.QUEUED): S.CONNECTING,
    (S.WAITING, E.HANDED_OFF): S.CONNECTING,
    (S.WAITING, E.ABANDON): S.ABANDONED,
    (S.CONNECTING, E.ABANDON): S.ABANDONED,
    (S.CONNECTING, E.BRIDGED): S.BRIDGED,
    # Repeated or late news that changes nothing, said here so it is not logged as illegal.
    (S.ABANDONED, E.ABANDON): S.ABANDONED,
    (S.ABANDONED, E.BRIDGED): S.ABANDONED,
    (S.BRIDGED, E.BRIDGED): S.BRIDGED,
}


def next_state(state: DialState, event: DialEvent) -> DialState | None:
    """The state `event` moves a call in `state` to; None when the move is not allowed."""
    return TRANSITIONS.get((state, event))


@dataclass
class LiveCall:
    attempt_id: str
    dialed_at: float  # clock seconds when the Originate left
    state: DialState = DialState.RINGING
    since: float = 0.0  # clock seconds when it entered its state
    agent: str | None = None  # a preview call goes to the agent who chose it, nobody else
    # When the dialer hung it up unanswered (a surplus of answers coming): no longer ringing
    # for the pacer, and its end is censored, not a failure.
    hung_up_at: float | None = None


class LiveCalls:
    """The calls one campaign has out, each in one state."""

    def __init__(self, campaign_id: int) -> None:
        self.campaign_id = campaign_id
        self._calls: dict[str, LiveCall] = {}

    def add(self, attempt_id: str, dialed_at: float) -> LiveCall:
        call = self._calls[attempt_id] = LiveCall(attempt_id, dialed_at, since=dialed_at)
        return call

    def get(self, attempt_id: str) -> LiveCall | None:
        return self._calls.get(attempt_id)

    def __contains__(self, attempt_id: object) -> bool:
        return attempt_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[LiveCall]:
        return iter(list(self._calls.values()))

    def in_state(self, state: DialState) -> list[LiveCall]:
        """The calls in `state`, longest there first."""
        return sorted((c for c in self._calls.values() if c.state is state),
                      key=lambda c: c.since)

    def move(self, attempt_id: str, event: DialEvent, now: float) -> LiveCall | None:
        """Apply `event`; the call when the table allows it, else None (the call is unknown,
        or the move is illegal: logged, and the call keeps its state)."""
        call = self._calls.get(attempt_id)
        if call is None:
            return None
        target = next_state(call.state, event)
        if target is None:
            log.warning("dialer call move refused", extra={
                "attempt_id": attempt_id, "campaign_id": self.campaign_id,
                "state": call.state.value, "event": event.value})
            return None
        if target is not call.state:
            call.state, call.since = target, now
        return call

    def end(self, attempt_id: str) -> LiveCall | None:
        """The call ended: it leaves the table (returned as it last stood)."""
        return self._calls.pop(attempt_id, None)

    def describe(self) -> dict[str, str]:
        """attempt id -> state, for logs and test failure messages."""
        return {c.attempt_id: c.state.value for c in self._calls.values()}
