"""Domain events the IVR publishes on the bus (metrics count them; nothing else needs them).

A session is "in progress" from its first AudioSocket frame until its record is finished, on
every path. `SpeechDecided` is one recognized answer: end of the caller's speech to the
recognizer's result, the figure the benchmark's decision latency measures.
"""

from __future__ import annotations

from dataclasses import dataclass

from contactd.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class IvrSessionStarted(DomainEvent):
    session_id: str


@dataclass(frozen=True, kw_only=True)
class IvrSessionEnded(DomainEvent):
    session_id: str
    outcome: str


@dataclass(frozen=True, kw_only=True)
class SpeechDecided(DomainEvent):
    latency_s: float
