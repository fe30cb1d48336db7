"""AbandonGovernor.amend: a live answer counted connected turns abandoned - one more abandon,
no extra live answer, in the window the answer belongs to - exactly as if it had been recorded
abandoned in the first place (what a governor rebuilt from the amended rows counts)."""

from __future__ import annotations

import random

from contactd.dialer.governor import DAY_S, AbandonGovernor, WindowState

WINDOWS = (30 * DAY_S, DAY_S)


def counts(g: AbandonGovernor, now: float) -> list[tuple[int, int]]:
    return [(w.live, w.abandoned) for w in (g.window(now, s) for s in WINDOWS)]


def test_amend_moves_one_connected_answer_to_abandoned() -> None:
    g = AbandonGovernor(windows_s=WINDOWS)
    for i in range(10):
        g.record(1000.0 + i * 7, abandoned=False)
    g.record(1100.0, abandoned=True)
    assert counts(g, 1200.0) == [(11, 1), (11, 1)]
    assert g.amend(1007.0)
    assert counts(g, 1200.0) == [(11, 2), (11, 2)]
    assert (g.live_total, g.abandoned_total) == (11, 2)
    before = g.budget(1200.0, 50.0)
    fresh = AbandonGovernor(windows_s=WINDOWS)
    for i in range(10):
        fresh.record(1000.0 + i * 7, abandoned=i == 1)
    fresh.record(1100.0, abandoned=True)
    assert fresh.budget(1200.0, 50.0) == before


def test_nothing_to_amend_changes_nothing() -> None:
    g = AbandonGovernor(windows_s=WINDOWS)
    assert not g.amend(500.0)  # nothing recorded at all
    g.record(1000.0, abandoned=True)
    assert not g.amend(1000.0)  # its only answer is already abandoned
    assert not g.amend(5000.0)  # a bin after every recorded answer
    assert counts(g, 6000.0) == [(1, 1), (1, 1)]
    assert g.abandoned_total == 1


def test_amending_an_older_bin_keeps_later_windows_right() -> None:
    g = AbandonGovernor(windows_s=WINDOWS)
    g.record(0.0, abandoned=False)
    g.record(DAY_S / 2, abandoned=False)
    g.record(DAY_S + 600.0, abandoned=False)
    assert g.amend(DAY_S / 2)
    # The 24 h window ending at 1.5 days holds the amended answer and the last one.
    assert g.window(1.5 * DAY_S, DAY_S) == WindowState(DAY_S, 2, 1)
    # The 24 h window ending at 2 days no longer holds it; the 30-day one does.
    assert g.window(2 * DAY_S, DAY_S) == WindowState(DAY_S, 1, 0)
    assert g.window(2 * DAY_S, 30 * DAY_S) == WindowState(30 * DAY_S, 3, 1)


def test_random_amends_match_recording_the_final_state() -> None:
    rng = random.Random(7)
    live = AbandonGovernor(windows_s=WINDOWS)
    stamps = sorted(rng.uniform(0, 40 * DAY_S) for _ in range(3000))
    abandoned: list[bool] = []
    for n, at in enumerate(stamps):
        abandoned.append(rng.random() < 0.02)
        live.record(at, abandoned=abandoned[-1])
        if rng.random() < 0.03:
            # A later abandon of one of the last answers (hours back: other bins too).
            pick = rng.randrange(max(0, n - 50), n + 1)
            if not abandoned[pick]:
                assert live.amend(stamps[pick])
                abandoned[pick] = True
    assert sum(abandoned) > 100
    rebuilt = AbandonGovernor(windows_s=WINDOWS)
    for at, was_abandoned in zip(stamps, abandoned, strict=True):
        rebuilt.record(at, abandoned=was_abandoned)
    for now in (DAY_S, 10 * DAY_S, 31.5 * DAY_S, 40 * DAY_S):
        assert counts(live, now) == counts(rebuilt, now)
    assert (live.live_total, live.abandoned_total) == (rebuilt.live_total,
                                                       rebuilt.abandoned_total)
