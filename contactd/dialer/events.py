"""Events of the dialer's own decisions (the call layer's are in contactd/calls/events.py)."""

from __future__ import annotations

from dataclasses import dataclass

from contactd.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class SurplusHangup(DomainEvent):
    """The predictive dialer ended a call after `ring_s` of ringing, unanswered: the answers
    already coming would have left its answer without a free agent."""

    campaign_id: int
    attempt_id: str
    ring_s: float
