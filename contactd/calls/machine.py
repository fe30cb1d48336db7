"""The call-attempt state machine: one transition table shared by the tracker and the store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from contactd.enums import AttemptState

S = AttemptState

# Forward only: a late or duplicated event can never move an attempt back.
TRANSITIONS: Final[Mapping[AttemptState, frozenset[AttemptState]]] = {
    S.DIALING: frozenset({S.RINGING, S.ANSWERED, S.ENDED}),
    S.RINGING: frozenset({S.ANSWERED, S.ENDED}),
    S.ANSWERED: frozenset({S.BRIDGED, S.ENDED}),
    S.BRIDGED: frozenset({S.ENDED}),
    S.ENDED: frozenset(),
}

OPEN_STATES: Final = frozenset(s for s in AttemptState if s is not S.ENDED)


def can_move(current: AttemptState, target: AttemptState) -> bool:
    return target in TRANSITIONS[current]


def sources_of(target: AttemptState) -> frozenset[AttemptState]:
    """States from which `target` is one legal step (used as the guard of an UPDATE)."""
    return frozenset(state for state, targets in TRANSITIONS.items() if target in targets)
