"""The predictive pacer on an unlucky start: a young answer-chance estimate is planned with
its uncertainty, and a burst of abandons is one lesson for the calibration, not nine."""

from __future__ import annotations

import math
import random

from contactd.dialer.governor import AbandonGovernor
from contactd.dialer.pacing import PacingSnapshot, PredictivePacer


def outcomes(pacer: PredictivePacer, calls: int, answered: int) -> None:
    rng = random.Random(3)
    for i in range(calls):
        if i < answered:
            pacer.call_resolved(rng.uniform(3, 20), needs_agent=True)
        else:
            pacer.call_resolved(rng.uniform(15, 30), needs_agent=False)


def test_a_young_low_answer_estimate_dials_fewer_ahead_than_the_same_rate_well_known() -> None:
    # 6 answers in 45 calls (13 %): seen on a real seed whose true rate was 25 %. The same
    # 13 % after 2,250 calls is an estimate to trust; after 45 it may be half the truth.
    young, known = PredictivePacer(AbandonGovernor()), PredictivePacer(AbandonGovernor())
    outcomes(young, 45, 6)
    outcomes(known, 2250, 300)
    for pacer in (young, known):
        pacer.talk_ended(100.0)
        pacer.wrap_ended(10.0)
        for i in range(200):  # an earlier stretch of connected answers: budget to spend
            pacer.live_answer(float(i), abandoned=False)
    assert young.p_agent_relative_variance > 20 * known.p_agent_relative_variance
    snap = PacingSnapshot(free_agents=7, talking=(30.0, 40.0, 50.0), ringing=(5.0,) * 7)
    assert young.calls_to_dial(snap, 600.0) < known.calls_to_dial(snap, 600.0)


def test_a_burst_of_abandons_moves_the_calibration_once_per_minute() -> None:
    pacer = PredictivePacer(AbandonGovernor())
    pacer.last.governor_rate = 0.02
    for i in range(9):  # one over-dial stranded nine answers within two seconds
        pacer.live_answer(100.0 + i * 0.2, abandoned=True)
    cap = pacer.calibration_gain_max
    assert math.log(pacer.calibration) >= -cap - 1e-9
    assert pacer.calibration < 1.0
    pacer.live_answer(161.0, abandoned=True)  # the next minute is a new lesson
    assert math.log(pacer.calibration) < -cap
