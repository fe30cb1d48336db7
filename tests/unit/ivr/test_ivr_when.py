"""Keyed callback times: HHMM is the next such time, MMDDHHMM the next such date, in the zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contactd.ivr.when import callback_time

NOW = datetime(2026, 3, 28, 14, 0, tzinfo=UTC)  # 15:00 in Berlin, the day before DST starts


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("1530", datetime(2026, 3, 28, 14, 30, tzinfo=UTC)),  # later today, Berlin time
        ("0900", datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),  # passed: tomorrow, now CEST
        ("03291000", datetime(2026, 3, 29, 8, 0, tzinfo=UTC)),
        ("01021000", datetime(2027, 1, 2, 9, 0, tzinfo=UTC)),  # passed this year: next year
    ],
)
def test_keyed_times_are_the_next_moment_they_name(digits: str, expected: datetime) -> None:
    assert callback_time(digits, NOW, "Europe/Berlin") == expected


@pytest.mark.parametrize("digits", ["", "930", "2561", "13321000", "02301000", "12ab", "153000"])
def test_impossible_or_malformed_times_are_none(digits: str) -> None:
    assert callback_time(digits, NOW, "Europe/Berlin") is None
