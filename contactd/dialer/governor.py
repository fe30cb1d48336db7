"""Abandon-rate governor: how many more abandoned calls each rolling window can still absorb.

An abandon is a live (human) answer that found no agent within the grace time (2 s). The law
caps abandons at a share of live answers over a rolling window (US: 30 days; UK: 24 hours).
The governor keeps per-minute counts and, looking `horizon_s` ahead, asks of every window:
after the answers expected in the horizon, how many abandons keep the rate under
`target_fraction` of the limit? (A window not yet full counts the answers it will still hold,
and a day's window past its first hour must hold the limit as it stands, too.) That budget,
spread over the expected answers, is the abandon probability the pacer may accept now - so
pacing is cut while there is still room, not after the cap is crossed. Pure: the caller
supplies the clock.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass

DAY_S = 86400.0


@dataclass(frozen=True)
class WindowState:
    window_s: float
    live: int
    abandoned: int

    @property
    def rate(self) -> float:
        return self.abandoned / self.live if self.live else 0.0


@dataclass(frozen=True)
class Budget:
    """The abandon probability the pacer may accept now, the abandons every window can still
    absorb over the horizon, and the window that binds the probability."""

    allowed_rate: float
    allowed_abandons: float
    binding_window_s: float
    windows: tuple[WindowState, ...]


class AbandonGovernor:
    """Rolling abandon counts over several windows, per campaign."""

    def __init__(
        self,
        *,
        limit_pct: float = 3.0,
        windows_s: tuple[float, ...] = (30 * DAY_S, DAY_S),
        target_fraction: float = 0.95,
        horizon_s: float = 900.0,
        bin_s: float = 60.0,
        max_rate_factor: float = 1.0,
        reserve_sd: float = 3.0,
        react_s: float = 120.0,
        min_reserve: float = 2.0,
        payback_s: float = 3600.0,
    ) -> None:
        self.payback_s = payback_s
        self.react_s = react_s
        self.min_reserve = min_reserve
        if not 0 < target_fraction <= 1:
            raise ValueError("target_fraction must be in (0, 1]")
        self.limit = limit_pct / 100.0
        self.windows_s = windows_s
        self.target_fraction = target_fraction
        self.horizon_s = horizon_s
        self.bin_s = bin_s
        self.max_rate = self.limit * target_fraction * max_rate_factor
        self.reserve_sd = reserve_sd
        # Per-bin start times with running totals, so a window is two bisects, not a scan.
        self._starts: list[float] = []
        self._cum_live: list[int] = []
        self._cum_abandoned: list[int] = []
        self._base_live = 0  # running totals just before the first kept bin
        self._base_abandoned = 0
        self.live_total = 0
        self.abandoned_total = 0
        self.first_at: float | None = None  # the first live answer counted

    def record(self, at: float, *, abandoned: bool) -> None:
        """Count one live answer at time `at` (seconds), abandoned or connected."""
        start = at - at % self.bin_s
        if self.first_at is None or at < self.first_at:
            self.first_at = at
        self.live_total += 1
        self.abandoned_total += int(abandoned)
        if not self._starts or self._starts[-1] < start:
            self._starts.append(start)
            self._cum_live.append(self.live_total)
            self._cum_abandoned.append(self.abandoned_total)
            self._trim(at)
            return
        # Same bin, or a late report for an older bin: every later running total grows.
        first = bisect_left(self._starts, start)
        for i in range(first, len(self._starts)):
            self._cum_live[i] += 1
            self._cum_abandoned[i] += int(abandoned)

    def _trim(self, now: float) -> None:
        oldest = now - max(self.windows_s) - 2 * self.bin_s
        if len(self._starts) > 1024 and self._starts[512] < oldest:
            cut = bisect_left(self._starts, oldest)
            self._base_live = self._cum_live[cut - 1]
            self._base_abandoned = self._cum_abandoned[cut - 1]
            del self._starts[:cut], self._cum_live[:cut], self._cum_abandoned[:cut]

    def window(self, now: float, window_s: float, *, ahead_s: float = 0.0) -> WindowState:
        """Counts in the window that will end at `now + ahead_s` (events up to now)."""
        since = now + ahead_s - window_s
        # Bins starting at or after `since - bin_s` overlap the window; count them whole.
        first = bisect_left(self._starts, since - self.bin_s + 1e-9)
        if first >= len(self._starts):
            return WindowState(window_s, 0, 0)
        base_live = self._cum_live[first - 1] if first > 0 else self._base_live
        base_ab = self._cum_abandoned[first - 1] if first > 0 else self._base_abandoned
        return WindowState(
            window_s, self._cum_live[-1] - base_live, self._cum_abandoned[-1] - base_ab
        )

    def budget(self, now: float, expected_answers: float) -> Budget:
        """Allowed abandon probability for the next `horizon_s`, given the answers expected."""
        expected = max(expected_answers, 1.0)
        # The reserve covers what can still go wrong before a cut in pacing takes effect: the
        # abandons of the answers expected while the calls in flight resolve (`react_s`), not
        # of the whole horizon - once the budget is spent the pacer falls back to 1:1 dialing.
        reacting = expected * min(1.0, self.react_s / max(self.horizon_s, 1e-9))
        target = self.limit * self.target_fraction
        # A few standard deviations of those abandons, and never under `min_reserve` whole
        # abandons: it matters for small teams (one abandon moves their window visibly), hardly
        # for large ones.
        in_flight = self.reserve_sd * math.sqrt(target * reacting)
        reserve = max(self.min_reserve, in_flight)
        best = Budget(self.max_rate, float("inf"), 0.0, ())
        states = []
        for window_s in self.windows_s:
            now_state = self.window(now, window_s)
            states.append(now_state)
            coming = self._answers_to_come(now, window_s, now_state)
            if coming is not None:
                # Not yet a full window: the rate is measured over all the answers it will
                # hold, so an early burst is paid back over those, not by stopping.
                allowed = max(0.0, target * (now_state.live + coming) - now_state.abandoned
                              - reserve)
                rate = allowed / coming
                if (window_s <= DAY_S and self.first_at is not None
                        and now - self.first_at >= self.payback_s):
                    # A window of a day or less closes on the calling day as it stands when
                    # calling stops (the day's hours end, the agents leave), and nobody knows
                    # when that is: past its first hour it must hold the limit by itself, with
                    # only the horizon's answers to come. A longer window keeps its payback.
                    # Held to the limit, not the target, and with the in-flight reserve
                    # alone, not its two-abandon floor: the target's margin and the floor cover
                    # the payback's guess; holding the standing rate to them too cost a team
                    # of ten at a 10% answer rate 2.7 points of occupancy in the bench, and a
                    # team of five most of its first hours' allowance.
                    standing = max(0.0, self.limit * (now_state.live + expected)
                                   - now_state.abandoned - in_flight)
                    if standing / expected < rate:
                        allowed, rate = standing, standing / expected
            else:
                # Judge the window as it stands now and as it will stand at the end of the
                # horizon (older counts drop out); the stricter of the two binds.
                ahead = self.window(now, window_s, ahead_s=min(self.horizon_s, window_s / 2))
                allowed = max(0.0, min(
                    target * (state.live + expected) - state.abandoned - reserve
                    for state in (now_state, ahead)
                ))
                rate = allowed / expected
            if rate < best.allowed_rate:
                best = Budget(rate, best.allowed_abandons, window_s, ())
            fewest = min(best.allowed_abandons, allowed)
            best = Budget(best.allowed_rate, fewest, best.binding_window_s, ())
        return Budget(best.allowed_rate, best.allowed_abandons, best.binding_window_s,
                      tuple(states))

    def _answers_to_come(self, now: float, window_s: float,
                         state: WindowState) -> float | None:
        """Answers a window not yet full can still expect before it is; None once it is full.

        Forecast from its own past, not a clock: as many again as since the first answer
        (calling hours included), less in proportion when the window fills sooner; and at
        least the answers of the next `payback_s` at the pace of the last `payback_s`. The
        second is for a fresh campaign: with a few dozen answers, "as many again" held every
        place of the reserve (two abandons) against the window's first minutes, and the pacer
        dialled 1:1 for its first ten minutes, a third of them idle. Calling is assumed to go
        on for `payback_s` at the pace it has; past that first hour a window of a day or less
        must also hold the limit as it stands (see `budget`), so a day whose calling stops
        early ends within the limit."""
        if self.first_at is None:
            return None
        elapsed = now - self.first_at
        left = window_s - elapsed
        if left <= 0:
            return None
        share = 1.0 if elapsed <= 0 else min(1.0, left / elapsed)
        coming = state.live * share
        recent_s = min(elapsed, self.payback_s)
        if recent_s >= self.bin_s:
            pace = self.window(now, recent_s).live / recent_s
            coming = max(coming, pace * min(left, self.payback_s))
        return max(coming, 1.0)

    def amend(self, at: float) -> bool:
        """A live answer recorded connected at `at` was abandoned after all (Asterisk's queue
        or the agent's phone gave up): one more abandon, no extra live answer. The answer is
        found in the bin `record()` put it in; False (nothing changed) when that bin holds no
        connected answer."""
        first = bisect_left(self._starts, at - at % self.bin_s)
        if first >= len(self._starts):
            return False
        live_before = self._cum_live[first - 1] if first > 0 else self._base_live
        ab_before = self._cum_abandoned[first - 1] if first > 0 else self._base_abandoned
        connected = (self._cum_live[first] - live_before) - (self._cum_abandoned[first] - ab_before)
        if connected <= 0:
            return False
        self.abandoned_total += 1
        for i in range(first, len(self._starts)):
            self._cum_abandoned[i] += 1
        return True
