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


def trained(seed: int = 3, answer_rate: float = 0.25, **options: float) -> PredictivePacer:
    rng = random.Random(seed)
    pacer = PredictivePacer(AbandonGovernor(), **options)
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
    new_q = pacer._new_call(horizons, p)

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


def simulated_abandons(snap: PacingSnapshot, rng: random.Random, runs: int) -> float:
    """Abandons among the answers of the calls in `snap`, dialling nothing more, by
    simulating the world `trained()` learnt from: a call answers (1 in 4) 3-20 s after it is
    dialled or fails after 15-30 s, talks are exponential (120 s), wrap-ups last 10 s; an
    answer waits 2 s for the first agent to come free."""
    total = 0
    for _ in range(runs):
        free_at = [0.0] * snap.free_agents
        free_at += [rng.expovariate(1 / 120) + 10.0 for _ in snap.talking]
        free_at += [max(0.0, 10.0 - age) for age in snap.wrapping]
        answers = [0.0] * snap.waiting
        for age in snap.ringing:
            # Not resolved by `age`: answering with the posterior chance, then uniformly later.
            answer = 0.25 * (20.0 - max(3.0, age)) / 17.0
            fail = 0.75 * (30.0 - max(15.0, age)) / 15.0
            if rng.random() < answer / (answer + fail):
                answers.append(rng.uniform(max(3.0, age), 20.0) - age)
        free_at.sort()
        for at in sorted(answers):
            if free_at and free_at[0] <= at + 2.0:
                free_at.pop(0)
            else:
                total += 1
    return total / runs


@pytest.mark.parametrize("snap", [
    PacingSnapshot(free_agents=1, talking=(30.0, 60.0, 90.0, 200.0) * 2, wrapping=(5.0,),
                   ringing=(0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0)),
    PacingSnapshot(free_agents=0, talking=(100.0,) * 24, wrapping=(8.0,) * 1,
                   ringing=tuple(float(a) for a in range(0, 14, 1)), waiting=1),
])
def test_the_forecast_of_abandons_matches_a_simulation_of_the_same_calls(
    snap: PacingSnapshot,
) -> None:
    # What the forecast says of the calls in flight is what the calibration has to correct:
    # counting an answer's own call among the answers before it made the forecast see
    # 1.5-2 times the abandons there were, and the calibration climbed all day to catch up.
    pacer = trained()
    pacer.calls_to_dial(snap, 0.0)  # brings its tables up to date
    horizons = list(pacer.last.horizons)
    p = round(pacer.p_agent, 2)
    forecast, _answers = pacer._blocked(pacer._balance(snap, horizons, p),
                                       pacer._new_call(horizons, p), 0)
    simulated = simulated_abandons(snap, random.Random(11), 20_000)
    assert forecast == pytest.approx(simulated, rel=0.15)


@pytest.mark.parametrize(("wrapping", "lost"), [((9.5,), 0.0), ((), 1.0)])
def test_a_person_already_waiting_is_lost_only_when_no_agent_comes_free_in_time(
    wrapping: tuple[float, ...], lost: float,
) -> None:
    # No call rings; one person waits for an agent. One agent leaves wrap-up (10 s) within
    # half a second: the person is connected. Without that agent, the talks (60 s in) do not
    # end within the 2 s grace: the person is lost. (The forecast once counted the person
    # among the answers before it, and saw a coin toss in the first case.)
    pacer = trained()
    snap = PacingSnapshot(free_agents=0, talking=(60.0,) * 5, wrapping=wrapping, waiting=1)
    pacer.calls_to_dial(snap, 0.0)
    horizons = list(pacer.last.horizons)
    p = round(pacer.p_agent, 2)
    base = pacer._balance(snap, horizons, p)
    assert [demand for demand, *_ in base] == [1.0] * len(horizons)
    assert [ringing for _, _, _, ringing, *_ in base] == [0.0] * len(horizons)
    blocked, answers = pacer._blocked(base, pacer._new_call(horizons, p), 0)
    assert answers == 1.0
    assert blocked == pytest.approx(lost, abs=0.01)


# --- surplus hang-ups ------------------------------------------------------------------------
ALL_TALKING = PacingSnapshot(free_agents=0, talking=(5.0,) * 20)  # nobody free for a while


def with_ringing(snap: PacingSnapshot, ringing: tuple[float, ...]) -> PacingSnapshot:
    return PacingSnapshot(snap.free_agents, snap.talking, snap.wrapping, ringing, snap.waiting)


def test_without_the_setting_no_ringing_call_is_ended() -> None:
    pacer = trained()
    pacer.calls_to_dial(ALL_TALKING, 0.0)
    assert pacer.calls_to_cancel(with_ringing(ALL_TALKING, (16.0,) * 12), 0.0) == 0


def test_a_surplus_of_answers_ends_calls_that_rang_long_enough_and_only_those() -> None:
    pacer = trained(hangup_after_s=15.0)
    pacer.calls_to_dial(ALL_TALKING, 0.0)
    # Twelve calls at 15.5 s may still answer (1 in 11 of them) within seconds, when every
    # agent has just begun a talk: most of those answers would be abandoned.
    surplus = with_ringing(ALL_TALKING, (15.5,) * 12 + (4.0,) * 8)
    ended = pacer.calls_to_cancel(surplus, 0.0)
    assert 0 < ended <= 12  # the eight young calls must ring on
    # The same calls with agents free to take their answers: none is ended.
    free = PacingSnapshot(free_agents=15, talking=(5.0,) * 5, ringing=surplus.ringing)
    pacer.calls_to_dial(free, 1.0)
    assert pacer.calls_to_cancel(free, 1.0) == 0
    # No call has rung 15 s yet: none may be ended, whatever the surplus.
    young = with_ringing(ALL_TALKING, (14.5,) * 12 + (4.0,) * 8)
    pacer.calls_to_dial(young, 2.0)
    assert pacer.calls_to_cancel(young, 2.0) == 0


def test_a_higher_ratio_ends_fewer_calls() -> None:
    counts = []
    for ratio in (1.0, 4.0, 1e6):
        pacer = trained(hangup_after_s=15.0, hangup_ratio=ratio)
        pacer.calls_to_dial(ALL_TALKING, 0.0)
        counts.append(pacer.calls_to_cancel(
            with_ringing(ALL_TALKING, (15.0, 15.5, 16.0, 17.0) * 5), 0.0))
    assert counts[0] >= counts[1] > counts[2] == 0


def test_calls_ended_ringing_are_learnt_as_if_they_had_rung_on() -> None:
    """Two in five calls still ringing at 15 s are ended there. The pacer told so estimates
    the answer chance and when answers come as the pacer that saw every call ring to its end
    (learnt as failures instead, the chance falls by 0.03 and answers look 0.09 earlier)."""
    rng = random.Random(11)
    fates = []
    for _ in range(5000):
        person = rng.random() < 0.25
        at = rng.uniform(3, 20) if person else rng.uniform(15, 30)
        fates.append((person, at, at > 15.0 and rng.random() < 0.4))
    whole, cut = (PredictivePacer(AbandonGovernor(), hangup_after_s=15.0) for _ in range(2))
    for person, at, ended in fates:
        whole.call_resolved(at, needs_agent=person)
        if ended:
            cut.call_cancelled(15.0)
        else:
            cut.call_resolved(at, needs_agent=person)
    for pacer in (whole, cut):
        pacer.ready.refresh()
    assert cut.p_agent == pytest.approx(whole.p_agent, abs=0.01)
    assert cut.ready.cdf(15.0) == pytest.approx(whole.ready.cdf(15.0), abs=0.02)
