"""The abandon-rate governor: budget per rolling window, cut before the cap, windows roll."""

from __future__ import annotations

import random

import pytest

from contactd.dialer.governor import DAY_S, AbandonGovernor


def test_fresh_campaign_may_use_the_target_share_less_a_reserve() -> None:
    gov = AbandonGovernor(limit_pct=3.0, target_fraction=0.9, reserve_sd=0.0, min_reserve=0.0)
    assert gov.budget(0.0, 100).allowed_rate == pytest.approx(0.027)
    # The reserve (2 sd of the abandons 1000 answers may bring) comes off the top.
    reserved = AbandonGovernor(limit_pct=3.0, target_fraction=0.9, reserve_sd=2.0,
                               react_s=900.0)
    assert reserved.budget(0.0, 1000).allowed_abandons == pytest.approx(27 - 2 * 27**0.5)


def test_the_reserve_covers_only_the_answers_before_a_cut_takes_effect() -> None:
    # 1000 answers expected over the 900 s horizon; a cut takes effect within 90 s, so the
    # reserve is 2 sd of the abandons of 100 answers, not of 1000.
    gov = AbandonGovernor(limit_pct=3.0, target_fraction=0.9, reserve_sd=2.0,
                          horizon_s=900.0, react_s=90.0)
    assert gov.budget(0.0, 1000).allowed_abandons == pytest.approx(27 - 2 * 2.7**0.5)


def test_the_reserve_is_never_less_than_whole_abandons() -> None:
    # A small team expects few answers before a cut; one abandon more or less still moves its
    # window by a visible share, so at least `min_reserve` abandons are held back.
    gov = AbandonGovernor(limit_pct=3.0, target_fraction=0.9, reserve_sd=1.0, min_reserve=2.0,
                          react_s=900.0)
    assert gov.budget(0.0, 100).allowed_abandons == pytest.approx(2.7 - 2.0)  # 1 sd is 1.6
    assert gov.budget(0.0, 1000).allowed_abandons == pytest.approx(27 - 27**0.5)  # 1 sd: 5.2


def test_budget_shrinks_as_abandons_use_it_and_is_zero_before_the_cap() -> None:
    gov = AbandonGovernor(limit_pct=3.0, target_fraction=0.8, windows_s=(DAY_S,),
                          reserve_sd=0.0, min_reserve=0.0, max_rate_factor=1.25)
    gov.record(0.0, abandoned=False)  # the campaign has run for a day: its window is full
    for i in range(1000):
        gov.record(DAY_S + i, abandoned=False)
    rates = []
    for i in range(28):
        gov.record(DAY_S + 1000.0 + i, abandoned=True)
        rates.append(gov.budget(DAY_S + 1000.0 + i, 100).allowed_rate)
    assert rates == sorted(rates, reverse=True)
    assert rates[0] == pytest.approx(0.03)  # plenty of room: up to the limit for a while
    # 28 abandons in 1028 live answers is 2.7 %, under the 3 % cap, yet no budget is left:
    # the pacer is held back before the cap, not after it.
    assert gov.window(DAY_S + 1028.0, DAY_S).rate < 0.03
    assert rates[-1] == 0.0


def test_the_tighter_window_binds() -> None:
    gov = AbandonGovernor(limit_pct=3.0, target_fraction=1.0, windows_s=(30 * DAY_S, DAY_S),
                          reserve_sd=0.0, min_reserve=0.0)
    # A clean month, then a bad morning: the 24 h window must bind.
    for day in range(20):
        for i in range(300):
            gov.record(day * DAY_S + i * 60.0, abandoned=False)
    now = 25 * DAY_S
    for i in range(20):
        gov.record(now + i, abandoned=i < 6)
    budget = gov.budget(now + 30, 50)
    assert budget.binding_window_s == DAY_S
    assert budget.allowed_rate == 0.0
    assert budget.windows[0].rate < 0.03 < budget.windows[1].rate


def test_old_counts_roll_out_of_the_window() -> None:
    gov = AbandonGovernor(limit_pct=3.0, windows_s=(DAY_S,), horizon_s=0.0, reserve_sd=0.0,
                          min_reserve=0.0)
    for i in range(10):
        gov.record(float(i), abandoned=True)
    # Ten abandons in ten answers: paid back over the next hour's answers at that pace (360),
    # so almost nothing is left to spend.
    assert gov.budget(100.0, 10).allowed_rate == pytest.approx(
        (0.0285 * (10 + 360) - 10) / 360)
    assert gov.budget(2 * DAY_S, 10).allowed_rate == pytest.approx(gov.limit * 0.95)


def test_window_counts_match_a_brute_force_count() -> None:
    rng = random.Random(7)
    gov = AbandonGovernor(windows_s=(3600.0,), bin_s=60.0)
    events = []
    t = 0.0
    for _ in range(5000):
        t += rng.expovariate(1 / 20)
        ab = rng.random() < 0.05
        events.append((t, ab))
        gov.record(t, abandoned=ab)
    now = t
    state = gov.window(now, 3600.0)
    # Bins are counted whole, so the window may include up to one extra minute.
    lo = [(x, a) for x, a in events if x > now - 3600.0]
    hi = [(x, a) for x, a in events if x > now - 3600.0 - 60.0]
    assert len(lo) <= state.live <= len(hi)
    assert sum(a for _, a in lo) <= state.abandoned <= sum(a for _, a in hi)


def test_late_reports_are_counted_in_their_bin() -> None:
    gov = AbandonGovernor(windows_s=(DAY_S,))
    gov.record(600.0, abandoned=False)
    gov.record(60.0, abandoned=True)  # reported late
    assert gov.window(700.0, DAY_S).abandoned == 1
    assert gov.window(700.0, DAY_S).live == 2


def test_an_early_burst_in_a_window_not_yet_full_is_paid_back_not_a_stop() -> None:
    # A fresh campaign: 9 abandons among its first 105 answers (8.6 %) in half an hour. The
    # 24-hour window is measured over every answer it will hold, so within its first hour the
    # pacer may go on dialing ahead, below the target, while the burst is paid back.
    gov = AbandonGovernor(limit_pct=3.0, windows_s=(DAY_S,), reserve_sd=0.0, min_reserve=2.0)
    burst(gov, 0.0)
    assert gov.window(1800.0, DAY_S).abandoned == 9
    assert gov.budget(1800.0, 70).allowed_rate == 0.0  # 0.0285 x 210 < 9 + 2: not yet
    for i in range(90):  # another 27 minutes, every answer connected
        gov.record(1800.0 + i * 18.0, abandoned=False)
    later = gov.budget(3500.0, 70)
    # The next hour's answers at this pace (195 in 3,500 s) are to come: the burst and the
    # reserve are spread over them.
    coming = 195 / 3500 * 3600
    assert later.allowed_rate == pytest.approx((0.0285 * (195 + coming) - 11) / coming,
                                               rel=1e-6)
    assert 0.0 < later.allowed_rate < 0.0285


def test_past_its_first_hour_a_day_window_must_hold_the_limit_as_it_stands() -> None:
    # The calling day can end at any moment, and the 24-hour window then holds the day as it
    # stands. 77 minutes in, 9 abandons among 255 answers: if calling stopped after the
    # horizon's 70 answers, 3 % of 325 leaves 0.75 abandons to spend, fewer than paying the
    # burst back over the answers still to come would allow.
    gov = AbandonGovernor(limit_pct=3.0, windows_s=(DAY_S,), reserve_sd=0.0, min_reserve=2.0)
    burst(gov, 0.0)
    for i in range(150):
        gov.record(1800.0 + i * 18.0, abandoned=False)
    assert gov.budget(4600.0, 70).allowed_rate == pytest.approx((0.03 * 325 - 9) / 70)
    # A 30-day window in the same state is measured over the campaign's days: paid back.
    month = AbandonGovernor(limit_pct=3.0, windows_s=(30 * DAY_S,), reserve_sd=0.0,
                            min_reserve=2.0)
    burst(month, 0.0)
    for i in range(150):
        month.record(1800.0 + i * 18.0, abandoned=False)
    assert month.budget(4600.0, 70).allowed_rate == pytest.approx((0.0285 * 510 - 11) / 255)
    # Two more abandons and the day as it stands is over the limit: nothing is dialed ahead.
    gov.record(4601.0, abandoned=True)
    gov.record(4602.0, abandoned=True)
    assert gov.budget(4610.0, 70).allowed_rate == 0.0


def test_a_late_burst_cannot_carry_the_day_over_the_limit() -> None:
    # Seven hours at 2.9 % and then a burst: "as many again" answers to come would let the
    # pacer spend on, but if the day's calling ends the day's window is over 3 %.
    gov = AbandonGovernor(limit_pct=3.0, windows_s=(30 * DAY_S, DAY_S))
    for i in range(1800):
        gov.record(i * 14.0, abandoned=i % 100 in (7, 41, 74) and i < 1700)
    for i in range(8):
        gov.record(25200.0 + i, abandoned=True)
    state = gov.window(25210.0, DAY_S)
    assert state.abandoned / state.live > 0.03
    assert gov.budget(25210.0, 70).allowed_rate == 0.0


def test_the_same_burst_in_a_full_window_stops_dialing_ahead() -> None:
    gov = AbandonGovernor(limit_pct=3.0, windows_s=(DAY_S,), reserve_sd=0.0, min_reserve=2.0)
    gov.record(0.0, abandoned=False)  # a day ago: the window is full
    start = 2 * DAY_S
    burst(gov, start)
    for i in range(150):
        gov.record(start + 1800.0 + i * 18.0, abandoned=False)
    # 0.0285 x (255 + the horizon's 70) < 9 + 2: a full window has no answers to come
    # beyond the horizon's, and nothing is left.
    assert gov.budget(start + 4600.0, 70).allowed_rate == 0.0


def burst(gov: AbandonGovernor, start: float) -> None:
    """105 answers over half an hour, 9 of them abandoned."""
    for i in range(105):
        gov.record(start + i * 17.0, abandoned=i % 11 == 5 and i < 100)


def test_a_fresh_campaign_may_dial_ahead_in_its_first_minutes() -> None:
    # Ten minutes in: 45 answers, none abandoned. The 24-hour window will hold far more
    # answers than these; counted as "as many again", 0.0285 x 90 = 2.6 abandons less the
    # reserve of 2 left almost nothing, and the pacer dialled 1:1 while agents sat idle.
    # The next hour's answers at this pace (270) carry the reserve instead.
    gov = AbandonGovernor(limit_pct=3.0, windows_s=(30 * DAY_S, DAY_S))
    for i in range(45):
        gov.record(i * 600.0 / 45, abandoned=False)
    budget = gov.budget(600.0, 60)
    assert budget.allowed_rate == pytest.approx((0.0285 * (45 + 270) - 2.0) / 270, rel=1e-6)
    assert budget.allowed_rate > 0.02
    # The same ten minutes at the end of a full 24-hour window have only the horizon's
    # answers to come: no payback assumed.
    full = AbandonGovernor(limit_pct=3.0, windows_s=(DAY_S,))
    full.record(0.0, abandoned=False)
    start = 2 * DAY_S
    for i in range(45):
        full.record(start + i * 600.0 / 45, abandoned=False)
    assert full.budget(start + 600.0, 60).allowed_rate < budget.allowed_rate
