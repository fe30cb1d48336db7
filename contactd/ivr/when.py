"""A callback time keyed by the caller, read as the next moment it names in the site's zone.

Four keys are a time of day, HHMM ("1530": today at 15:30, or tomorrow if that has passed);
eight are a date and a time, MMDDHHMM ("12241000": 24 December at 10:00, this year or next).
Anything else, or a time that does not exist, is None: the flow asks again.

A spoken time ("내일 오후 세 시", "tomorrow at three thirty pm") is read by the language's
parser in `SPOKEN`, from words its grammar allows, and said back for confirmation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


def callback_time(digits: str, now: datetime, zone: str) -> datetime | None:
    """The UTC-aware moment `digits` names after `now` (aware), or None."""
    if not digits.isdigit() or len(digits) not in (4, 8):
        return None
    local_now = now.astimezone(ZoneInfo(zone))
    hour, minute = int(digits[-4:-2]), int(digits[-2:])
    try:
        if len(digits) == 4:
            at = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if at <= local_now:
                at = (at + timedelta(days=1)).replace(hour=hour, minute=minute)
        else:
            month, day = int(digits[:2]), int(digits[2:4])
            at = local_now.replace(
                month=month, day=day, hour=hour, minute=minute, second=0, microsecond=0
            )
            if at <= local_now:
                at = at.replace(year=at.year + 1)
    except ValueError:  # 2561, 1332…, 29 February in a common year
        return None
    # Rebuild in the zone so a date across a DST change gets that date's offset.
    local = datetime(at.year, at.month, at.day, at.hour, at.minute, tzinfo=ZoneInfo(zone))
    return local.astimezone(now.tzinfo)


# Spoken callback times. A recognizer hears the language's time words only (a grammar), the
# parser reads them in a fixed order, and the IVR says the moment back for a yes or no.


@dataclass(frozen=True, slots=True)
class SpokenTime:
    """What a caller said: a day offset (None: the next such time), AM/PM (None: unsaid)."""

    hour: int  # 1–12 as said
    minute: int = 0
    day: int | None = None
    pm: bool | None = None


def resolve(spoken: SpokenTime, now: datetime, zone: str) -> datetime | None:
    """The UTC-aware moment `spoken` names after `now`, or None (a moment already past).

    Without AM/PM, 7–11 are morning and 12–6 afternoon (office hours: "three" is 15:00).
    """
    local_now = now.astimezone(ZoneInfo(zone))
    hour = spoken.hour % 12
    if spoken.pm or (spoken.pm is None and not 7 <= spoken.hour <= 11):
        hour += 12
    day = local_now.date() + timedelta(days=spoken.day or 0)
    at = datetime(day.year, day.month, day.day, hour, spoken.minute, tzinfo=ZoneInfo(zone))
    if at <= local_now:
        if spoken.day is not None:
            return None  # "today at eight" said at noon: ask again
        day += timedelta(days=1)
        at = datetime(day.year, day.month, day.day, hour, spoken.minute, tzinfo=ZoneInfo(zone))
    return at.astimezone(now.tzinfo)


class _Words:
    """A sequence of recognized words read left to right."""

    def __init__(self, text: str) -> None:
        self.words = text.split()
        self.at = 0

    def take(self, table: dict[str, int]) -> int | None:
        if self.at < len(self.words) and self.words[self.at] in table:
            self.at += 1
            return table[self.words[self.at - 1]]
        return None

    def skip(self, *words: str) -> None:
        while self.at < len(self.words) and self.words[self.at] in words:
            self.at += 1

    @property
    def done(self) -> bool:
        return self.at == len(self.words)


_KO_DAYS = {"오늘": 0, "내일": 1, "모레": 2}
_KO_HALF = {"오전": 0, "아침": 0, "오후": 1, "저녁": 1, "밤": 1}
_KO_HOURS = {
    "한": 1, "두": 2, "세": 3, "네": 4, "다섯": 5, "여섯": 6,
    "일곱": 7, "여덟": 8, "아홉": 9, "열": 10, "열한": 11, "열두": 12,
}  # fmt: skip
_KO_MINUTES = {"반": 30, "십": 10, "이십": 20, "삼십": 30, "사십": 40, "오십": 50}


def _parse_ko(text: str) -> SpokenTime | None:
    # [오늘|내일|모레] [오전|오후|아침|저녁|밤] HOUR [시] [반 | TENS [분]]
    # e.g. 내일 오후 세 시 반. The recognizer may split 열한 into 열 한.
    words = _Words(text)
    day = words.take(_KO_DAYS)
    half = words.take(_KO_HALF)
    hour = words.take(_KO_HOURS)
    if hour is None:
        return None
    if hour == 10 and (extra := words.take({"한": 1, "두": 2})) is not None:
        hour += extra
    words.skip("시")
    minute = words.take(_KO_MINUTES) or 0
    words.skip("분")
    if not words.done:
        return None
    return SpokenTime(hour, minute, day, None if half is None else half == 1)


_EN_DAYS = {"today": 0, "tomorrow": 1}
_EN_HOURS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_EN_MINUTES = {"fifteen": 15, "thirty": 30, "forty": 40, "forty-five": 45}
_EN_HALF = {"am": 0, "morning": 0, "pm": 1, "afternoon": 1, "evening": 1}
_EN_WORDS = (
    *_EN_DAYS, "at", "half", "past", *_EN_HOURS, "o'clock", "fifteen", "thirty", "forty",
    "five", "in", "the", *_EN_HALF,
)  # fmt: skip


def _parse_en(text: str) -> SpokenTime | None:
    # [today|tomorrow] [at] [half past] HOUR [o'clock | fifteen | thirty | forty five]
    # [am|pm | in the morning|afternoon|evening], e.g. "tomorrow at three thirty pm".
    words = _Words(text.lower().replace("o'clock", "oclock"))
    day = words.take(_EN_DAYS)
    words.skip("at")
    half_past = words.take({"half": 30})
    if half_past is not None:
        words.skip("past")
    hour = words.take(_EN_HOURS)
    if hour is None:
        return None
    words.skip("oclock")
    minute = half_past or words.take(_EN_MINUTES) or 0
    if minute == 40 and words.take({"five": 5}):
        minute = 45
    words.skip("in", "the")
    half = words.take(_EN_HALF)
    if not words.done:
        return None
    return SpokenTime(hour, minute, day, None if half is None else half == 1)


_KO_NATIVE = {v: k for k, v in _KO_HOURS.items()}
_EN_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _say_ko(at: datetime, today: date) -> str:
    offset = (at.date() - today).days
    day = {0: "오늘", 1: "내일", 2: "모레"}.get(offset, f"{at.month}월 {at.day}일")
    half = "오전" if at.hour < 12 else "오후"
    minute = "반" if at.minute == 30 else (f"{at.minute}분" if at.minute else "")
    return " ".join(x for x in (day, half, _KO_NATIVE[at.hour % 12 or 12], "시", minute) if x)


def _say_en(at: datetime, today: date) -> str:
    offset = (at.date() - today).days
    day = {0: "today", 1: "tomorrow"}.get(offset, f"on {at.day} {_EN_MONTHS[at.month - 1]}")
    clock = f"{at.hour % 12 or 12}" + (f":{at.minute:02d}" if at.minute else "")
    return f"{day} at {clock} {'AM' if at.hour < 12 else 'PM'}"


@dataclass(frozen=True, slots=True)
class SpokenTimes:
    """One language's spoken times: the grammar, the parser and what the IVR says."""

    words: tuple[str, ...]
    parse: Callable[[str], SpokenTime | None]
    say: Callable[[datetime, date], str]
    confirm: str  # {time} is the moment said back
    keys: str  # the keys-only re-prompt after speech did not work

    def read(self, text: str, now: datetime, zone: str) -> datetime | None:
        spoken = self.parse(text)
        return None if spoken is None else resolve(spoken, now, zone)

    def said(self, at: datetime, now: datetime, zone: str) -> str:
        local = at.astimezone(ZoneInfo(zone))
        return self.say(local, now.astimezone(ZoneInfo(zone)).date())


SPOKEN: dict[str, SpokenTimes] = {
    "ko": SpokenTimes(
        words=(*_KO_DAYS, *_KO_HALF, *_KO_HOURS, "시", *_KO_MINUTES, "분"),
        parse=_parse_ko,
        say=_say_ko,
        confirm="{time}에 전화 드릴까요? 맞으면 예 또는 1번, 아니면 2번을 누르세요.",
        keys="시간을 네 자리 숫자로 누르고 우물 정자를 누르세요. 오후 세 시는 1 5 0 0 입니다.",
    ),
    "en": SpokenTimes(
        words=_EN_WORDS,
        parse=_parse_en,
        say=_say_en,
        confirm="We will call you {time}. Is that right? Say yes or press 1; otherwise press 2.",
        keys="Please key the time as four digits, then hash. For 3 PM, key 1 5 0 0.",
    ),
}
