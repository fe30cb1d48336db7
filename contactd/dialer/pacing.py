"""How many calls to start now: progressive (one per free agent) and predictive pacing.

Pure: the caller passes a snapshot of the live state and its own clock (seconds), and reports
what happened (calls resolved, talks and wraps ended, live answers). The same classes drive the
daemon's dial loop and `bench/dialer.py`.

The predictive pacer knows no parameters in advance. It learns online the chance that a call
ends up needing an agent (human, after AMD when AMD runs), when that happens, when failures
give up, and how long talks and wrap-ups last. From those it forecasts, over the next half
minute, how many answered calls will need an agent versus how many agents will be free (plus
the 2 s grace), and adds calls while the *next* call's expected abandons per expected answer
stay within what the abandon-rate governor allows now. Judging the marginal call, not the
average over the calls in flight, spends the abandon budget where it buys the most talk time
(a Lagrangian threshold); a calibration factor learnt from real outcomes maps the threshold to
the realized rate. The forecast is checked against a simulation of the same calls
(tests/unit/dialer/test_dialer_pacing.py): what is left for the calibration is mostly the gap
between the marginal call's abandon share and the average one, and the calls dialled later.

A fresh campaign is the hard part: it dials 1:1 only until the first outcomes and the first
ended talk are in, then dials ahead for its free agents (busy ones count as coming free once
`warmup_talks` talks have ended); talk lengths count the talks still running (the first to
end are the short ones), and the calibration's step starts large and decays. A young estimate
of the answer chance is planned with its uncertainty (an upper bound until talks are known,
then its variance in the forecast), and the calibration moves at most one step a minute, so
one unlucky burst of abandons does not leave the campaign timid for hours.

Dialling ahead commits to answers 3-20 s before they come; when the agents turn out short,
the pacer can take back the latest of them (`calls_to_cancel`): a call that has rung
`hangup_after_s` (the dialer's surplus_hangup_after_s, 15 s, the least the US TSR and Ofcom
allow before an unanswered call is ended) is ended unanswered while its answer would be
abandoned `hangup_ratio` times as often as the budget allows. Fewer abandons in a surplus
leave more of the budget for dialling ahead. A call ended so is learnt as censored
(`call_cancelled`), not as a failure.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol

from contactd.config import DialerSettings
from contactd.dialer.governor import AbandonGovernor

# An answered person must reach an agent within this, or the call is abandoned.
GRACE_S = DialerSettings().agent_connect_s  # the default lives in config.py
CALIBRATION_MIN, CALIBRATION_MAX = 0.05, 20.0


@dataclass(frozen=True)
class PacingSnapshot:
    """The live state of one campaign's agents and calls at one instant."""

    free_agents: int
    talking: Sequence[float] = ()  # seconds each talking agent has talked so far
    wrapping: Sequence[float] = ()  # seconds each agent has spent in wrap-up so far
    ringing: Sequence[float] = ()  # age (s) of every call dialed and not yet resolved
    waiting: int = 0  # answered people not yet connected to an agent

    @property
    def agents(self) -> int:
        return self.free_agents + len(self.talking) + len(self.wrapping)


class Pacer(Protocol):
    """What a dial loop asks of a pacing strategy. A class that names Pacer as its base
    inherits the feedback hooks below, which ignore what they are told."""

    def calls_to_dial(self, snap: PacingSnapshot, now: float) -> int: ...

    def call_resolved(self, ready_s: float, *, needs_agent: bool) -> None:
        return None

    def talk_ended(self, talk_s: float) -> None:
        return None

    def wrap_ended(self, wrap_s: float) -> None:
        return None

    def live_answer(self, now: float, *, abandoned: bool) -> None:
        return None

    def answer_amended(self, at: float) -> bool:
        """A live answer reported connected at `at` was abandoned after all (Asterisk gave up
        connecting it). True when the pacer moved it."""
        return False

    def calls_to_cancel(self, snap: PacingSnapshot, now: float) -> int:
        """How many ringing calls to hang up now, unanswered: the youngest of those that have
        rung long enough to be ended (the dial loop picks them). Most pacers never do."""
        return 0

    def call_cancelled(self, ring_s: float) -> None:
        """A call hung up for `calls_to_cancel` ended unanswered after `ring_s`: not a
        failure, only a fate the dialer did not wait for."""
        return None


def progressive_calls(snap: PacingSnapshot) -> int:
    """One call per free agent not already covered by a ringing or waiting call."""
    return max(0, snap.free_agents - snap.waiting - len(snap.ringing))


class ProgressivePacer(Pacer):
    """1:1 dialing: never more calls in flight than free agents, so no call is abandoned."""

    def calls_to_dial(self, snap: PacingSnapshot, now: float) -> int:
        return progressive_calls(snap)


class Distribution:
    """Recent samples of a duration; the CDF is a table at `step_s` rebuilt as samples arrive.

    Until the memory first overflows it holds every duration that ended since the start, so
    durations still running (`refresh(running=...)`) are censored samples of the same
    population: the table is then a Kaplan-Meier estimate with a memoryless tail. Without
    that, the first durations to end are the short ones and a fresh campaign would expect
    agents back far sooner than they come.
    """

    def __init__(self, capacity: int = 600, step_s: float = 1.0) -> None:
        self._samples: deque[float] = deque(maxlen=capacity)
        self.step_s = step_s
        self._table: list[float] = [1.0]
        self._fresh = 0
        self._sum = 0.0
        self._dropped = False
        self._tail_mean = 0.0  # mean of the memoryless tail past the table (censored only)
        self._censored_mean: float | None = None

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def complete(self) -> bool:
        """True while every sample since the start is still held."""
        return not self._dropped

    def add(self, value: float) -> None:
        value = max(0.0, value)
        if len(self._samples) == self._samples.maxlen:
            self._sum -= self._samples[0]
            self._dropped = True
        self._samples.append(value)
        self._sum += value
        self._fresh += 1

    @property
    def mean(self) -> float:
        if self._censored_mean is not None:
            return self._censored_mean
        return self._sum / len(self._samples) if self._samples else 0.0

    def refresh(self, running: Sequence[float] = ()) -> bool:
        """Rebuild the table when enough has changed (10% new samples); True if rebuilt.
        `running` (durations not ended yet) counts only while the memory is complete."""
        if not (self._fresh and self._fresh * 10 >= len(self._samples)):
            return False
        censored = sorted(max(0.0, c) for c in running) if self.complete else []
        ordered = sorted(self._samples)
        top = max(ordered[-1], censored[-1] if censored else 0.0)
        cells = int(top / self.step_s) + 2
        table = [0.0] * cells
        n = len(ordered)
        if not censored:
            i = 0
            for cell in range(cells):
                edge = cell * self.step_s
                while i < n and ordered[i] <= edge:
                    i += 1
                table[cell] = i / n
            self._tail_mean = 0.0
            self._censored_mean = None
        else:
            # Kaplan-Meier: each ended duration removes its share of the survivors at risk.
            at_risk = n + len(censored)
            survival = 1.0
            i = j = 0
            for cell in range(cells):
                edge = cell * self.step_s
                while (i < n and ordered[i] <= edge) or (j < len(censored)
                                                         and censored[j] <= edge):
                    if i < n and (j >= len(censored) or ordered[i] <= censored[j]):
                        survival *= 1 - 1 / at_risk
                        i += 1
                    else:
                        j += 1
                    at_risk -= 1
                table[cell] = 1 - survival
            # Past the longest duration seen: memoryless, at the rate of ends per time at risk.
            self._tail_mean = (self._sum + sum(censored)) / n
            area = sum(1 - (a + b) / 2 for a, b in pairwise(table))
            self._censored_mean = area * self.step_s + (1 - table[-1]) * self._tail_mean
        self._table = table
        self._fresh = 0
        return True

    def cdf(self, x: float) -> float:
        if x <= 0:
            return self._table[0] if x == 0 else 0.0
        pos = x / self.step_s
        cell = int(pos)
        table = self._table
        if cell + 1 >= len(table):
            last = table[-1]
            if last >= 1.0 or self._tail_mean <= 0:
                return 1.0
            past = x - (len(table) - 1) * self.step_s
            return 1 - (1 - last) * math.exp(-past / self._tail_mean)
        low = table[cell]
        return low + (table[cell + 1] - low) * (pos - cell)


@dataclass
class Forecast:
    """What the pacer expected when it last decided; shown in the live panel and the bench."""

    allowed_rate: float = 0.0
    governor_rate: float = 0.0
    predicted_rate: float = 0.0
    outstanding: int = 0
    p_agent: float = 0.0
    warm: bool = False
    horizons: tuple[int, ...] = field(default_factory=tuple)


def _beyond(dist: Distribution, at: float, u: float) -> float:
    """The duration at quantile `u` of `dist` given it is longer than `at` (whole-second
    steps, linear within a step; `at` itself when nothing longer was seen)."""
    low = dist.cdf(at)
    if low >= 1 - 1e-9:
        return at
    goal = low + u * (1 - low)
    x = at
    while dist.cdf(x + 1) < goal and x < at + 3600:
        x += 1
    a, b = dist.cdf(x), dist.cdf(x + 1)
    return x + ((goal - a) / (b - a) if b > a else 0.0)


def _own_share(chances: Sequence[float]) -> list[float]:
    """Per slice of the forecast, one call's answer in the slice times its own chance of having
    answered before that answer (half-way through the slice): the part of the demand counted
    before an answer that is the answer's own call. With f the chance by the slice's start
    and g by its end, (g - f) * (f + g) / 2."""
    out = []
    before = 0.0
    for g in chances:
        out.append((g * g - before * before) / 2)
        before = g
    return out


class PredictivePacer(Pacer):
    """Dial ahead from live state and online estimates, within the governor's abandon budget."""

    def __init__(
        self,
        governor: AbandonGovernor | None = None,
        *,
        grace_s: float = GRACE_S,
        warmup_calls: int = 40,
        warmup_talks: int = 10,
        max_lines_per_agent: float = 8.0,
        calibration_gain: float = 0.05,
        calibration_gain_max: float = 0.3,
        horizon_points: int = 16,
        outcome_memory: int = 2500,
        samples: int = 600,
        hangup_after_s: float | None = None,
        hangup_ratio: float = 6.0,
    ) -> None:
        self.horizon_points = horizon_points
        # Surplus hang-ups (None: never): a call that has rung this long may be ended unanswered
        # while its answer would be abandoned over `hangup_ratio` times as often as allowed.
        self.hangup_after_s = hangup_after_s
        self.hangup_ratio = hangup_ratio
        self._imputed = (0.0, 0.0)  # two low-discrepancy sequences for call_cancelled
        self.governor = governor or AbandonGovernor()
        self.grace_s = grace_s
        self.warmup_calls = warmup_calls
        self.warmup_talks = warmup_talks
        self.max_lines_per_agent = max_lines_per_agent
        self.ready = Distribution(samples)  # dial -> person ready for an agent
        self.gave_up = Distribution(samples)  # dial -> failure, no answer or machine
        self.talk = Distribution(samples)
        self.wrap = Distribution(samples)
        # The answer chance scales every forecast: its sampling noise (sd 0.018 over 600 calls
        # at 25%) cost more talk time in the bench than the lag of a longer memory.
        self._outcomes: deque[bool] = deque(maxlen=outcome_memory)
        # Per-kind forecasts by (age, p), valid until the distributions they came from change.
        self._memo: dict[str, dict[tuple[int, float], tuple[tuple[float, ...], ...]]] = {
            "ring": {}, "talk": {}, "wrap": {}
        }
        self.calibration = 1.0
        self._calibration_minute = -1
        self._calibration_moved = 0.0  # log-move of the calibration in that minute
        self.calibration_gain_min = calibration_gain
        self.calibration_gain_max = max(calibration_gain, calibration_gain_max)
        self._expected_abandons = 0.0  # the allowance summed over the live answers seen
        self._supply_known = False  # talks seen: busy agents count as coming free
        self._memo_horizons: tuple[int, ...] = ()
        self.last = Forecast()

    # --- observations -----------------------------------------------------------------
    def call_resolved(self, ready_s: float, *, needs_agent: bool) -> None:
        self._outcomes.append(needs_agent)
        (self.ready if needs_agent else self.gave_up).add(ready_s)

    def call_cancelled(self, ring_s: float) -> None:
        """A call hung up after `ring_s` is censored: it might still have answered. Left out,
        the answer chance would be overstated (most calls hung up would have failed); counted
        failed, the late answers would vanish. Its fate is drawn from the estimates given it
        had not resolved by `ring_s` (answer or failure, and when): the estimates are then
        self-consistent, as Kaplan-Meier's are. Deterministic: two Weyl sequences, no RNG."""
        u, v = self._imputed
        u, v = (u + 0.6180339887498949) % 1.0, (v + 0.7548776662466927) % 1.0
        self._imputed = (u, v)
        self._refresh_ringing()
        p = self.p_agent
        answers = p * (1 - self.ready.cdf(ring_s))
        failures = (1 - p) * (1 - self.gave_up.cdf(ring_s))
        if answers + failures <= 1e-12:
            self.call_resolved(ring_s, needs_agent=False)
            return
        person = u < answers / (answers + failures)
        dist = self.ready if person else self.gave_up
        self.call_resolved(_beyond(dist, ring_s, v), needs_agent=person)

    def talk_ended(self, talk_s: float) -> None:
        self.talk.add(talk_s)

    def wrap_ended(self, wrap_s: float) -> None:
        self.wrap.add(wrap_s)

    def live_answer(self, now: float, *, abandoned: bool) -> None:
        self.governor.record(now, abandoned=abandoned)
        # The forecast is an approximation; learn its bias from what really happens so the
        # realized abandon share converges on the allowance (stochastic approximation).
        allowed = max(0.0, self.last.governor_rate)
        step = self.calibration_gain * (allowed - float(abandoned))
        self._expected_abandons += allowed
        self._move_calibration(now, step)

    def _move_calibration(self, now: float, step: float) -> None:
        """Move the calibration's log by `step`, at most `calibration_gain_max` either way per
        minute. Abandons come in bursts (one over-dial strands several answers within a
        second): counted as independent observations, nine of them cut the factor fourteen-
        fold in nine seconds and dialing stayed timid for hours. A burst is one observation."""
        minute = math.floor(now / 60.0)
        if minute != self._calibration_minute:
            self._calibration_minute, self._calibration_moved = minute, 0.0
        cap = self.calibration_gain_max
        step = min(cap - self._calibration_moved, max(-cap - self._calibration_moved, step))
        self._calibration_moved += step
        self.calibration = min(CALIBRATION_MAX, max(CALIBRATION_MIN,
                                                    self.calibration * math.exp(step)))

    def answer_amended(self, at: float) -> bool:
        if not self.governor.amend(at):
            return False
        # live_answer() moved the calibration by exp(gain * allowed); an abandon would have
        # moved it by exp(gain * (allowed - 1)): the difference is exp(-gain).
        self._move_calibration(at, -self.calibration_gain)
        return True

    @property
    def calibration_gain(self) -> float:
        """The calibration's step now: 1 / (abandons the allowance expected so far), between
        `calibration_gain_max` and the `calibration_gain` floor.

        A decaying step (the Robbins-Monro schedule) learns the factor within the first
        minutes of a campaign, then lets it settle: a fixed large step kept it swinging by
        +-50% all day, and the wasted budget cost more talk time than any lag.
        """
        n = self._expected_abandons
        step = 1.0 / n if n > 0 else self.calibration_gain_max
        return min(self.calibration_gain_max, max(self.calibration_gain_min, step))

    @property
    def p_agent(self) -> float:
        """Chance a dialed call ends up needing an agent (Laplace-smoothed)."""
        return (sum(self._outcomes) + 1) / (len(self._outcomes) + 2)

    def _planning_p(self) -> float:
        """The answer chance to plan with. Until the supply side is known (the first talks of
        a fresh campaign), an upper credible bound, two posterior standard deviations above
        the estimate: a 40-call estimate can be half the truth, and the first dial-ahead
        burst is where that costs abandons the day cannot win back. After that the estimate
        itself, with its uncertainty in the forecast's variance."""
        p = self.p_agent
        if self.supply_known:
            return p
        return min(1.0, p * (1 + 2 * math.sqrt(self.p_agent_relative_variance)))

    @property
    def p_agent_relative_variance(self) -> float:
        """Variance of the answer-chance estimate over its square (Beta posterior): 0.14 after
        43 calls at 13%, under 0.002 after 2,500 at 25%."""
        n = len(self._outcomes)
        p = self.p_agent
        return (1 - p) / (p * (n + 3))

    @property
    def warm(self) -> bool:
        return (
            len(self._outcomes) >= self.warmup_calls
            and len(self.ready) >= 5
            and len(self.talk) > 0
        )

    @property
    def supply_known(self) -> bool:
        """Enough talks and wrap-ups ended to forecast when busy agents come free; until then
        only free agents count as supply (the pacer dials ahead for them alone)."""
        return len(self.talk) >= self.warmup_talks and len(self.wrap) > 0

    # --- decision -----------------------------------------------------------------------
    def calls_to_dial(self, snap: PacingSnapshot, now: float) -> int:
        floor = progressive_calls(snap)
        if not self.warm or snap.agents == 0:
            self.last = Forecast(outstanding=len(snap.ringing) + floor, warm=False)
            return floor
        ring = self._refresh_ringing()
        wrap = self.wrap.refresh()
        talk = self.talk.refresh(snap.talking)
        known = self.supply_known
        if known != self._supply_known:  # busy agents start counting: forget the zero forecasts
            self._supply_known = known
            talk = wrap = True
        horizons = self._horizons()
        if tuple(horizons) != self._memo_horizons:  # every forecast is per horizon point
            self._memo_horizons = tuple(horizons)
            ring = talk = wrap = True
        for kind, stale in (("ring", ring), ("talk", talk or wrap), ("wrap", wrap)):
            if stale or len(self._memo[kind]) > 5000:
                self._memo[kind].clear()
        p = round(self._planning_p(), 2)
        handle_s = max(self.talk.mean + self.wrap.mean, 1.0)
        expected = snap.agents * self.governor.horizon_s / handle_s
        budget = self.governor.budget(now, expected)
        governed = budget.allowed_rate
        allowed = governed * self.calibration
        # Never more expected abandons in flight than any window can still absorb: guards
        # against a burst (a shift starting with every agent free) spending the budget at once.
        room = budget.allowed_abandons * self.calibration

        base = self._balance(snap, horizons, p)
        new = self._new_call(horizons, p)
        cap = max(floor, int(self.max_lines_per_agent * snap.agents) - len(snap.ringing))

        def fits(prev: tuple[float, float], this: tuple[float, float]) -> bool:
            """The added call's expected abandons per expected answer are within the allowance."""
            extra_answers = max(this[1] - prev[1], 1e-9)
            return this[0] - prev[0] <= allowed * extra_answers and this[0] <= room

        # That marginal share grows with every call added, so the answer is the last call that
        # fits. Usually only a few calls are added per decision: walk up from the floor reusing
        # each forecast; past a few steps (a shift starting), bisect the rest of the range.
        low = floor
        prev = self._blocked(base, new, low)
        for _ in range(8):
            if low >= cap:
                break
            this = self._blocked(base, new, low + 1)
            if not fits(prev, this):
                break
            low, prev = low + 1, this
        else:
            high = cap
            while low < high:
                mid = (low + high + 1) // 2
                if fits(self._blocked(base, new, mid - 1), self._blocked(base, new, mid)):
                    low = mid
                else:
                    high = mid - 1
            prev = self._blocked(base, new, low)
        blocked, answers = prev
        self.last = Forecast(allowed, governed, blocked / answers if answers > 1e-9 else 0.0,
                             len(snap.ringing) + low, p, True, tuple(horizons))
        return low

    def calls_to_cancel(self, snap: PacingSnapshot, now: float) -> int:
        """Ringing calls past `hangup_after_s` to end now, youngest first (the most likely
        to answer). Each is ended while, with the younger ones gone, its answer would be
        abandoned over `hangup_ratio` times the share the last decision allowed: an answer
        then costs more abandons than it is worth, and the dial loop may dial again for
        the agents. The ratio keeps this for true surpluses: each call ended this way may
        have been a person about to answer, whose lead must be tried again."""
        after = self.hangup_after_s
        allowed = self.last.allowed_rate
        if after is None or not (self.last.warm and self.supply_known) or allowed <= 0:
            return 0
        old = sorted(a for a in snap.ringing if a >= after)
        if not old:
            return 0
        horizons = list(self.last.horizons)  # the memo's, set with `last` by calls_to_dial
        p = round(self._planning_p(), 2)
        base = self._balance(snap, horizons, p)  # it leaves every ringing age in the memo
        new = self._new_call(horizons, p)
        prev = self._blocked(base, new, 0)
        ended = 0
        for age in old:
            entry = self._memo["ring"][(round(age), p)]
            base = [(d - f, s, v - w, r - f, sh, o - q) for (d, s, v, r, sh, o), f, w, q
                    in zip(base, entry[0], entry[1], entry[2], strict=True)]
            this = self._blocked(base, new, 0)
            lost = prev[1] - this[1]
            if lost <= 1e-9 or prev[0] - this[0] <= self.hangup_ratio * allowed * lost:
                break
            ended, prev = ended + 1, this
        return ended

    def _refresh_ringing(self) -> bool:
        """Rebuild the answer and failure tables when due (True if rebuilt); the ringing
        calls' forecasts made from the old tables are dropped with them."""
        rebuilt = self.ready.refresh() | self.gave_up.refresh()
        if rebuilt:
            self._memo["ring"].clear()
        return rebuilt

    def _horizons(self) -> list[int]:
        """Whole-second forecast points up to the time by which nearly every answer has come."""
        top = 2
        while top < 120 and self.ready.cdf(top) < 0.98:
            top += 1
        count = min(top, self.horizon_points)
        return sorted({round(1 + (top - 1) * i / (count - 1)) for i in range(count)})

    def _new_call(self, horizons: list[int], p: float) -> tuple[list[float], list[float]]:
        """A call dialled now: per horizon, its chance of needing an agent by then, and its
        share of its own answer's place in the queue (see `_own_share`)."""
        q = [p * self.ready.cdf(h) for h in horizons]
        return q, _own_share(q)

    def _balance(
        self, snap: PacingSnapshot, horizons: list[int], p: float
    ) -> list[tuple[float, float, float, float, float, float]]:
        """Per horizon h: (mean demand, mean supply, var of demand - supply given the answer
        chance, answers expected from ringing calls, relative variance of the answer chance,
        the answers' own share of the demand before them) by now + h."""
        zero = [0.0] * len(horizons)
        sums: dict[str, list[float]] = {}
        var = zero
        own = zero
        for ages, kind in ((snap.ringing, "ring"), (snap.talking, "talk"),
                           (snap.wrapping, "wrap")):
            memo = self._memo[kind]
            acc = zero
            for age, n in Counter(round(a) for a in ages).items():
                key = (age, p) if kind == "ring" else (age, 0.0)
                entry = memo.get(key)
                if entry is None:
                    probs = self._probabilities(kind, age, horizons, p)
                    own_share = tuple(_own_share(probs)) if kind == "ring" else ()  # demand only
                    entry = memo[key] = (tuple(probs), tuple(f * (1 - f) for f in probs),
                                         own_share)
                acc = [x + n * f for x, f in zip(acc, entry[0], strict=True)]
                var = [x + n * v for x, v in zip(var, entry[1], strict=True)]
                if kind == "ring":
                    own = [x + n * o for x, o in zip(own, entry[2], strict=True)]
            sums[kind] = acc
        # The answer chance is itself an estimate: every ringing call's chance moves with it
        # at once, so its uncertainty adds (relative variance x answers expected)^2 - the term
        # that keeps a young campaign from dialing a burst on 40 lucky or unlucky outcomes.
        shared = self.p_agent_relative_variance
        demand = [snap.waiting + d for d in sums["ring"]]
        supply = [snap.free_agents + t + w
                  for t, w in zip(sums["talk"], sums["wrap"], strict=True)]
        # People already waiting are in the first slice: the i-th of them has i before it.
        own = [own[0] + snap.waiting / 2, *own[1:]]  # a new list: `own` may still be `zero`
        return [(d, s, v, r, shared, o) for d, s, v, r, o in
                zip(demand, supply, var, sums["ring"], own, strict=True)]

    def _probabilities(self, kind: str, age: int, horizons: list[int], p: float) -> list[float]:
        """Per horizon: chance a call of this age needs an agent, or an agent becomes free."""
        if kind == "ring":
            ready = self.ready.cdf
            at_age = ready(age)
            pending = p * (1 - at_age) + (1 - p) * (1 - self.gave_up.cdf(age))
            if pending <= 1e-9:
                return [0.0] * len(horizons)
            return [min(1.0, p * (ready(age + h) - at_age) / pending) for h in horizons]
        grace = self.grace_s
        if not self._supply_known:
            return [0.0] * len(horizons)
        if kind == "wrap":
            wrap = self.wrap.cdf
            alive = 1 - wrap(age)
            if alive <= 1e-6:
                return [1.0] * len(horizons)
            return [(wrap(age + h + grace) - wrap(age)) / alive for h in horizons]
        talk = self.talk.cdf
        at_age = talk(age)
        alive = 1 - at_age
        talk_mean = max(self.talk.mean, 1.0)
        wrap_mean = self.wrap.mean
        out = []
        for h in horizons:
            left = h + grace - wrap_mean
            if left <= 0:
                out.append(0.0)
            elif alive <= 1e-6:  # longer than any talk seen: assume a memoryless tail
                out.append(1 - math.exp(-left / talk_mean))
            else:
                out.append((talk(age + left) - at_age) / alive)
        return out

    def _blocked(
        self, base: list[tuple[float, float, float, float, float, float]],
        new: tuple[list[float], list[float]], k: int,
    ) -> tuple[float, float]:
        """Expected abandons among the answers the calls in flight (plus k new) will bring, and
        the expected number of those answers.

        Each slice of the forecast brings (demand[j] - demand[j-1]) answers; an answer in that
        slice is blocked when the agents free by then (plus the grace) do not outnumber the
        answers before it. The answers before it are the other calls' (its own call cannot
        have answered earlier): counting its own call's chance of an earlier answer made the
        forecast see a queue that is not there, 1.5 times the abandons a simulation of the
        same calls finds. Normal approximation with a continuity correction.
        """
        blocked = 0.0
        before = 0.0
        new_q, new_own = new
        for (demand, supply, var, ringing, shared, own), q, q_own in zip(
                base, new_q, new_own, strict=True):
            total = demand + k * q
            arriving = total - before
            if arriving > 1e-9:
                middle = total - arriving / 2 - (own + k * q_own) / arriving
                answers = ringing + k * q
                sd = math.sqrt(var + k * q * (1 - q) + shared * answers * answers + 1e-9)
                z = (middle + 0.5 - supply) / sd
                blocked += arriving * 0.5 * (1.0 + math.erf(z / math.sqrt(2)))
            before = max(before, total)
        return blocked, before
