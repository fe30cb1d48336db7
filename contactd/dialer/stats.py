"""Campaign statistics as data, for the web panel, reports and `contactd dialer stats`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import DialRefusal, LiveAnswer
from contactd.enums import CallOutcome

LIVE = (CallOutcome.HUMAN, CallOutcome.ABANDONED)


@dataclass
class HourStats:
    hour: str  # ISO hour, UTC: "2026-11-30T14"
    attempts: int = 0
    answers: int = 0
    humans: int = 0
    machines: int = 0
    abandons: int = 0
    talk_s: float = 0.0


@dataclass
class AbandonWindow:
    """The rolling window the abandon limit is judged on (live answers counted by the dialer)."""

    window_s: float
    live_answers: int = 0
    abandons: int = 0

    @property
    def rate(self) -> float:
        return self.abandons / self.live_answers if self.live_answers else 0.0

    def label(self) -> str:
        days, hours = divmod(round(self.window_s / 3600), 24)
        return f"{days} d" if days and not hours else f"{round(self.window_s / 3600)} h"


@dataclass
class CampaignStats:
    campaign_id: int
    attempts: int = 0
    in_progress: int = 0
    answers: int = 0
    humans: int = 0
    machines: int = 0
    abandons: int = 0
    talk_s: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    per_hour: list[HourStats] = field(default_factory=list)
    agent_logged_in_s: float | None = None
    wrap_s: float = 0.0
    refusals: dict[str, int] = field(default_factory=dict)  # reason -> leads refused
    abandon_windows: list[AbandonWindow] = field(default_factory=list)

    @property
    def abandon_rate(self) -> float:
        """Abandons over live (human) answers, as the law counts them."""
        return self.abandons / self.humans if self.humans else 0.0

    @property
    def occupancy(self) -> float | None:
        """(talk + wrap) / logged-in agent time, when the agent time is known."""
        if not self.agent_logged_in_s:
            return None
        return (self.talk_s + self.wrap_s) / self.agent_logged_in_s

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["abandon_rate"] = round(self.abandon_rate, 4)
        out["occupancy"] = None if self.occupancy is None else round(self.occupancy, 4)
        for window, data in zip(self.abandon_windows, out["abandon_windows"], strict=True):
            data["rate"] = round(window.rate, 4)
        return out

    def lines(self) -> list[str]:
        rows = [
            f"attempts {self.attempts} (in progress {self.in_progress}), answers {self.answers}, "
            f"humans {self.humans}, machines {self.machines}",
            f"abandons {self.abandons} = {self.abandon_rate:.2%} of live answers",
            "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            f"talk time {self.talk_s / 60:.1f} min"
            + (f" (average {self.talk_s / self.humans:.0f} s per person)" if self.humans else ""),
            "refusals: " + (", ".join(f"{k} {v}" for k, v in sorted(self.refusals.items()))
                            or "none"),
        ]
        rows.extend(
            f"abandons over the last {w.label()}: {w.abandons} of {w.live_answers} live "
            f"answers = {w.rate:.2%}" for w in self.abandon_windows)
        if self.occupancy is not None:
            rows.append(f"agent occupancy {self.occupancy:.1%}")
        rows.extend(
            f"  {h.hour}:00  attempts {h.attempts:>5}  answers {h.answers:>4}  humans "
            f"{h.humans:>4}  machines {h.machines:>4}  abandons {h.abandons:>3}"
            for h in self.per_hour
        )
        return rows


async def campaign_stats(
    session: AsyncSession,
    campaign_id: int,
    *,
    since: datetime | None = None,
    agent_logged_in_s: float | None = None,
    wrap_s: float = 0.0,
    windows_s: Sequence[float] = (),
    now: datetime | None = None,
) -> CampaignStats:
    """`windows_s`: the abandon windows to report (the governor's: [dialer]
    abandon_window_days and abandon_short_window_hours)."""
    query = select(
        CallAttempt.id,
        CallAttempt.created_at,
        CallAttempt.answered_at,
        CallAttempt.outcome,
        CallAttempt.talk_s,
    ).where(CallAttempt.campaign_id == campaign_id)
    # The dialer, not the call layer, knows a person found no agent in time: LiveAnswer rows.
    abandoned_ids = set(
        (await session.execute(
            select(LiveAnswer.attempt_id).where(
                LiveAnswer.campaign_id == campaign_id, LiveAnswer.abandoned.is_(True)
            )
        )).scalars()
    )
    if since is not None:
        query = query.where(CallAttempt.created_at >= since)
    stats = CampaignStats(campaign_id, agent_logged_in_s=agent_logged_in_s, wrap_s=wrap_s)
    hours: dict[str, HourStats] = {}
    for attempt_id, created_at, answered_at, outcome, talk_s in (
        await session.execute(query)
    ).all():
        abandoned = outcome is CallOutcome.ABANDONED or attempt_id in abandoned_ids
        hour = hours.setdefault(
            created_at.strftime("%Y-%m-%dT%H"), HourStats(created_at.strftime("%Y-%m-%dT%H"))
        )
        for bucket in (stats, hour):
            bucket.attempts += 1
            bucket.answers += int(answered_at is not None)
            bucket.humans += int(outcome in LIVE)
            bucket.machines += int(outcome is CallOutcome.MACHINE)
            bucket.abandons += int(abandoned)
            bucket.talk_s += talk_s or 0.0
        if outcome is None:
            stats.in_progress += 1
        else:
            stats.outcomes[outcome.value] = stats.outcomes.get(outcome.value, 0) + 1
    stats.per_hour = [hours[k] for k in sorted(hours)]
    stats.refusals = {reason: int(n) for reason, n in (await session.execute(
        select(DialRefusal.reason, func.count(DialRefusal.id))
        .where(DialRefusal.campaign_id == campaign_id).group_by(DialRefusal.reason)
    )).all()}
    now = now or datetime.now(UTC)
    for window_s in windows_s:
        live, abandons = (await session.execute(
            select(func.count(LiveAnswer.id),
                   func.count(LiveAnswer.id).filter(LiveAnswer.abandoned.is_(True)))
            .where(LiveAnswer.campaign_id == campaign_id,
                   LiveAnswer.at >= now - timedelta(seconds=window_s))
        )).one()
        stats.abandon_windows.append(AbandonWindow(window_s, int(live), int(abandons)))
    return stats
