"""The predictive pacer's start of campaign: talks still running count (Kaplan-Meier), busy
agents count as supply only once talks are known, and the calibration step decays."""

from __future__ import annotations

import math
import random

import pytest

from contactd.dialer.governor import AbandonGovernor
from contactd.dialer.pacing import Distribution, Forecast, PacingSnapshot, PredictivePacer


def campaign_start(seed: int, at: float) -> tuple[list[float], list[float]]:
    """2000 exponential talks (mean 120 s) begun over [0, at): those ended by `at`, and the
    ages of those still running."""
    rng = random.Random(seed)
    ended, running = [], []
    for _ in range(2000):
        start, length = rng.uniform(0, at), rng.expovariate(1 / 120)
        if start + length <= at:
            ended.append(length)
        else:
            running.append(at - start)
    return ended, running


@pytest.mark.parametrize("at", [90.0, 300.0])
def test_running_talks_correct_the_early_bias_to_short_talks(at: float) -> None:
    ended, running = campaign_start(1, at)
    naive, censored = Distribution(capacity=5000), Distribution(capacity=5000)
    for x in ended:
        naive.add(x)
        censored.add(x)
    naive.refresh()
    censored.refresh(running)
    # Only short talks have ended yet: the samples alone say talks last well under a minute.
    assert naive.mean < 0.6 * 120
    assert naive.cdf(at) == 1.0
    # With the running talks as censored samples the estimate is close to the truth.
    assert censored.mean == pytest.approx(120, rel=0.2)
    for x in (30.0, 60.0, 120.0, 240.0, 400.0):  # 400 s is past every talk seen: the tail
        assert censored.cdf(x) == pytest.approx(1 - math.exp(-x / 120), abs=0.05)


def test_running_durations_are_ignored_once_the_memory_has_dropped_samples() -> None:
    # Past its capacity the memory no longer holds every talk since the start, so running
    # talks are no longer the censored part of the same population.
    dist, plain = Distribution(capacity=20), Distribution(capacity=20)
    for i in range(21):
        dist.add(10.0 + i)
        plain.add(10.0 + i)
    assert not dist.complete
    dist.refresh([500.0] * 10)
    plain.refresh()
    assert [dist.cdf(x) for x in range(0, 40, 3)] == [plain.cdf(x) for x in range(0, 40, 3)]
    assert dist.mean == plain.mean == pytest.approx(20.5)


def learnt_calls(pacer: PredictivePacer, answer_rate: float = 0.25) -> None:
    rng = random.Random(5)
    for _ in range(400):
        if rng.random() < answer_rate:
            pacer.call_resolved(rng.uniform(3, 20), needs_agent=True)
        else:
            pacer.call_resolved(rng.uniform(15, 30), needs_agent=False)


def test_before_talks_are_known_only_free_agents_count_as_supply() -> None:
    pacer = PredictivePacer(AbandonGovernor())
    learnt_calls(pacer)
    # A campaign's first half minute: ten people talking for ten seconds, thirty agents free.
    snap = PacingSnapshot(free_agents=30, talking=(10.0,) * 10)
    assert not pacer.warm  # no talk has ended: nothing tells how long talks last
    pacer.talk_ended(8.0)
    pacer.wrap_ended(10.0)
    assert pacer.warm and not pacer.supply_known
    early = pacer.calls_to_dial(snap, 0.0)
    assert early > 30  # dials ahead for the free agents at once
    horizons = list(pacer.last.horizons)
    p = round(pacer.p_agent, 2)
    assert [supply for _, supply, *_ in pacer._balance(snap, horizons, p)] == [30.0] * len(
        horizons)
    rng = random.Random(2)
    for _ in range(pacer.warmup_talks):
        pacer.talk_ended(rng.expovariate(1 / 120))
        pacer.wrap_ended(10.0)
    assert pacer.supply_known
    pacer.calls_to_dial(snap, 0.0)
    # Now the talking agents are expected back over the horizon.
    assert pacer._balance(snap, horizons, p)[-1][1] > 30.0


def test_the_calibration_step_decays_with_the_abandons_expected_so_far() -> None:
    pacer = PredictivePacer(AbandonGovernor(), calibration_gain=0.05, calibration_gain_max=0.3)
    assert pacer.calibration_gain == 0.3  # a new campaign learns fast
    pacer.last = Forecast(governor_rate=0.02, warm=True)
    for _ in range(250):  # 5 abandons expected
        pacer.live_answer(0.0, abandoned=False)
    assert pacer.calibration_gain == pytest.approx(1 / 5)
    before = pacer.calibration
    pacer.live_answer(1.0, abandoned=True)
    assert pacer.calibration == pytest.approx(before * math.exp(0.2 * (0.02 - 1)))
    for _ in range(2000):  # 45 abandons expected: the step is down to its floor
        pacer.live_answer(2.0, abandoned=False)
    assert pacer.calibration_gain == 0.05


def test_forecasts_are_redone_when_the_horizon_points_change() -> None:
    # Warm with few, quick answers: the forecast reaches fewer points than later. Talk
    # forecasts remembered for the old points must not be reused for the new ones.
    pacer = PredictivePacer(AbandonGovernor())
    for i in range(40):
        if i % 4 == 0:
            pacer.call_resolved(3.0 + i % 5, needs_agent=True)
        else:
            pacer.call_resolved(20.0, needs_agent=False)
    pacer.talk_ended(30.0)
    pacer.wrap_ended(10.0)
    snap = PacingSnapshot(free_agents=5, talking=(12.0,) * 10)
    pacer.calls_to_dial(snap, 0.0)
    few = pacer.last.horizons
    for _ in range(40):
        pacer.call_resolved(25.0, needs_agent=True)  # later answers: a longer horizon
    pacer.calls_to_dial(snap, 1.0)
    assert len(pacer.last.horizons) > len(few)
