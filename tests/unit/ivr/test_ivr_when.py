"""Keyed callback times: HHMM is the next such time, MMDDHHMM the next such date, in the zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from contactd.ivr.when import SPOKEN, callback_time

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


# Spoken times. NOW is Saturday 15:00 in Seoul.
SEOUL_NOW = datetime(2026, 3, 28, 6, 0, tzinfo=UTC)


def seoul(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo("Asia/Seoul")).astimezone(UTC)


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("ko", "오후 여덟", seoul(28, 20)),  # the recognizer often drops 시
        ("ko", "오후 여덟 시", seoul(28, 20)),
        ("ko", "내일 오전 열 시 반", seoul(29, 10, 30)),
        ("ko", "내일 열 한 시", seoul(29, 11)),  # 열한 split in two
        ("ko", "세 시", seoul(29, 15)),  # 15:00 has just passed: tomorrow, afternoon by default
        ("ko", "모레 아침 일곱 시 삼십 분", seoul(30, 7, 30)),
        ("en", "tomorrow at three thirty pm", seoul(29, 15, 30)),
        ("en", "half past eight in the evening", seoul(28, 20, 30)),
        ("en", "ten o'clock", seoul(29, 10)),
    ],
)
def test_spoken_times_are_the_moment_they_name(
    language: str, text: str, expected: datetime
) -> None:
    assert SPOKEN[language].read(text, SEOUL_NOW, "Asia/Seoul") == expected


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("ko", "여덟 네"),  # two hours: misheard, ask again
        ("ko", "오후"),
        ("ko", "오늘 오전 아홉 시"),  # already past today
        ("ko", "상담원"),
        ("en", "tomorrow"),
        ("en", "three pm please"),
    ],
)
def test_what_is_not_a_time_is_none(language: str, text: str) -> None:
    assert SPOKEN[language].read(text, SEOUL_NOW, "Asia/Seoul") is None


def test_the_time_is_said_back_in_the_callers_words() -> None:
    ko, en = SPOKEN["ko"], SPOKEN["en"]
    assert ko.said(seoul(29, 20, 30), SEOUL_NOW, "Asia/Seoul") == "내일 오후 여덟 시 반"
    assert ko.said(seoul(31, 9, 15), SEOUL_NOW, "Asia/Seoul") == "3월 31일 오전 아홉 시 15분"
    assert en.said(seoul(28, 16), SEOUL_NOW, "Asia/Seoul") == "today at 4 PM"
    # Every word of a time the parser reads is one the grammar lets the recognizer hear.
    for times, text in ((ko, "모레 저녁 열두 시 사십 분"), (en, "today at half past eight pm")):
        assert times.parse(text) is not None
        assert set(text.split()) <= set(times.words)
