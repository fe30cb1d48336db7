"""The outbox message state machine and its retry back-off: pure rules, no I/O."""

from __future__ import annotations

from typing import Final

from contactd.enums import MessageState
from contactd.messaging.errors import InvalidTransitionError

S = MessageState

TRANSITIONS: Final[dict[MessageState, frozenset[MessageState]]] = {
    # FAILED from QUEUED: cancelled before sending (contact opted out, no sender configured).
    S.QUEUED: frozenset({S.SENDING, S.EXPIRED, S.FAILED}),
    # Back to QUEUED: a temporary failure, to be retried after a back-off.
    S.SENDING: frozenset({S.SENT, S.QUEUED, S.FAILED}),
    # SENT waits for a delivery receipt (SMS); email stays SENT once the server accepted it.
    S.SENT: frozenset({S.DELIVERED, S.FAILED, S.EXPIRED}),
    S.DELIVERED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
}

FINAL: Final = frozenset(state for state, nexts in TRANSITIONS.items() if not nexts)


def can_move(current: MessageState, new: MessageState) -> bool:
    return new in TRANSITIONS[current]


def check_move(current: MessageState, new: MessageState) -> None:
    if not can_move(current, new):
        raise InvalidTransitionError(
            f"a message cannot go from {current.value} to {new.value}",
            current=current.value,
            new=new.value,
        )


def sources_of(new: MessageState) -> frozenset[MessageState]:
    """States from which `new` may be reached: the guard used in UPDATE … WHERE state IN (…)."""
    return frozenset(state for state, nexts in TRANSITIONS.items() if new in nexts)


def backoff_s(attempts: int, *, base_s: float, max_s: float) -> float:
    """Delay before attempt `attempts + 1`: base, 2·base, 4·base … capped at max_s."""
    return float(min(max_s, base_s * 2 ** max(0, attempts - 1)))
