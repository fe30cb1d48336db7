"""Pacing: progressive never over-dials; the predictive pacer learns, dials ahead, and backs
off to 1:1 when the governor has no abandon budget left."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contactd.dialer.governor import AbandonGovernor
from contactd.dialer.pacing import (
    Distribution,
    PacingSnapshot,
    PredictivePacer,
    ProgressivePacer,
    progressive_calls,
)

ages = st.lists(st.floats(0, 600), max_size=30)


@given(free=st.integers(0, 50), talking=ages, ringing=ages, waiting=st.integers(0, 5))
def test_progressive_never_has_more_calls_out_than_free_agents(
    free: int, talking: list[float], ringing: list[float], waiting: int
) -> None:
    snap = PacingSnapshot(free, talking, (), ringing, waiting)
    new = ProgressivePacer().calls_to_dial(snap, 0.0)
    assert new >= 0
    assert new + len(ringing) + waiting <= max(free, len(ringing) + waiting)


def trained(seed: int = 3, answer_rate: float = 0.25) -> PredictivePacer:
    rng = random.Random(seed)
    pacer = PredictivePacer(AbandonGovernor())
    for _ in range(400):
        if rng.random() < answer_rate:
            pacer.call_resolved(rng.uniform(3, 20), needs_agent=True)
        else:
            pacer.call_resolved(rng.uniform(15, 30), needs_agent=False)
    for _ in range(200):
        pacer.talk_ended(rng.expovariate(1 / 120))
        pacer.wrap_ended(10.0)
    return pacer


def test_untrained_pacer_dials_one_to_one() -> None:
    pacer = PredictivePacer()
    snap = PacingSnapshot(free_agents=3, talking=(50.0,) * 7)
    assert pacer.calls_to_dial(snap, 0.0) == 3
    assert not pacer.last.warm


def test_trained_pacer_dials_ahead_for_agents_about_to_be_free() -> None:
    pacer = trained()
    wrapping = (9.0,) * 5  # five agents leave wrap-up within a second
    snap = PacingSnapshot(free_agents=0, talking=(60.0,) * 45, wrapping=wrapping)
    new = pacer.calls_to_dial(snap, 0.0)
    assert new > 5  # more than 1:1 for the agents about to be free: 1 in 4 calls answers
    assert pacer.last.predicted_rate <= pacer.last.allowed_rate
    assert pacer.p_agent == pytest.approx(0.25, abs=0.06)


def test_more_ringing_calls_mean_fewer_new_ones() -> None:
    pacer = trained()
    base = PacingSnapshot(free_agents=2, talking=(60.0,) * 20)
    busy = PacingSnapshot(free_agents=2, talking=(60.0,) * 20, ringing=(2.0,) * 10)
    assert pacer.calls_to_dial(busy, 0.0) < pacer.calls_to_dial(base, 0.0)


def test_no_budget_means_one_to_one() -> None:
    pacer = trained()
    for i in range(200):
        pacer.live_answer(float(i), abandoned=True)  # a disastrous hour
    snap = PacingSnapshot(free_agents=4, talking=(60.0,) * 20, wrapping=(9.0,) * 5)
    assert pacer.calls_to_dial(snap, 300.0) == progressive_calls(snap) == 4
    assert pacer.last.allowed_rate == 0.0


def test_distribution_cdf_tracks_the_samples() -> None:
    dist = Distribution()
    rng = random.Random(1)
    for _ in range(500):
        dist.add(rng.uniform(0, 100))
    dist.refresh()
    assert dist.cdf(-1) == 0.0
    assert dist.cdf(50) == pytest.approx(0.5, abs=0.06)
    assert dist.cdf(1000) == 1.0
    assert dist.mean == pytest.approx(50, abs=4)


def test_the_last_call_added_is_within_the_allowance_and_one_more_is_not() -> None:
    pacer = trained()
    snap = PacingSnapshot(free_agents=1, talking=(60.0,) * 30, wrapping=(5.0,) * 3)
    k = pacer.calls_to_dial(snap, 0.0)
    assert k > progressive_calls(snap)  # it dials ahead here
    allowed = pacer.last.allowed_rate
    horizons = list(pacer.last.horizons)
    p = round(pacer.p_agent, 2)
    base = pacer._balance(snap, horizons, p)
    new_q = [p * pacer.ready.cdf(h) for h in horizons]

    def marginal(n: int) -> float:
        (b1, a1), (b0, a0) = pacer._blocked(base, new_q, n), pacer._blocked(base, new_q, n - 1)
        return (b1 - b0) / (a1 - a0)

    assert marginal(k) <= allowed < marginal(k + 1)


def test_an_amended_answer_becomes_an_abandon_once() -> None:
    pacer = trained()
    pacer.live_answer(100.0, abandoned=False)
    before = pacer.calibration
    assert pacer.answer_amended(100.0)
    window = pacer.governor.window(100.0, 86400.0)
    assert (window.live, window.abandoned) == (1, 1)
    assert pacer.calibration < before
    assert not pacer.answer_amended(100.0)  # nothing connected left to amend in that minute
    assert not ProgressivePacer().answer_amended(100.0)
