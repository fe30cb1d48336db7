"""The dialing law as pure functions: may this number be dialed at this instant, and what next.

No I/O here. Callers gather the facts (DNC hits, opt-outs, attempts, live call counts) into a
`DialRequest`; `refusals()` returns *every* reason not to dial, so `dialer explain`, the web
panel and the dial loop give the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contactd.config import DialerSettings
from contactd.enums import CallOutcome, Channel, LeadStatus
from contactd.errors import ValidationError
from contactd.phones import parse_phone

DIALER_DEFAULTS = DialerSettings()  # the defaults live in config.py only
MIN_RING_S = 15  # the law: ring at least 15 s (about 4 rings) before giving up


class RefusalCode(StrEnum):
    CAMPAIGN_NOT_RUNNING = "campaign_not_running"
    INVALID_NUMBER = "invalid_number"
    ZONE_UNKNOWN = "zone_unknown"
    OUTSIDE_WINDOW = "outside_window"
    DNC_GLOBAL = "dnc_global"
    DNC_CAMPAIGN = "dnc_campaign"
    OPTED_OUT = "opted_out"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    RETRY_NOT_DUE = "retry_not_due"
    CONCURRENCY_CAP = "concurrency_cap"
    RATE_CAP = "rate_cap"
    RING_TOO_SHORT = "ring_too_short"


@dataclass(frozen=True)
class Refusal:
    """One reason a number may not be dialed; `message` is the sentence people read."""

    code: RefusalCode
    message: str


WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order


def parse_days(text: str) -> frozenset[int]:
    """Calling days from words such as "mon-fri,sat" (weekday numbers, Monday 0); ValueError
    naming the part that is not a day or a range of days."""
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        first, _, last = (s.strip() for s in part.partition("-"))
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(
                f"{part!r} is not a day or a range of days (use {', '.join(WEEKDAYS)}, "
                "e.g. mon-fri,sat)"
            )
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if b < a:
            raise ValueError(f"{part!r}: a range runs from Monday towards Sunday, e.g. mon-fri")
        days.update(range(a, b + 1))
    if not days:
        raise ValueError("no calling day given")
    return frozenset(days)


def days_text(days: Iterable[int]) -> str:
    """The stored and shown form: "mon,tue,wed,thu,fri"."""
    return ",".join(WEEKDAYS[d] for d in sorted(days))


@dataclass(frozen=True)
class CallingWindow:
    """Local wall-clock hours [start, end) in which calls are allowed, on `days` (weekday
    numbers, Monday 0; None: every day)."""

    start: time
    end: time
    days: frozenset[int] | None = None

    def allows(self, local: time) -> bool:
        return self.start <= local.replace(tzinfo=None) < self.end

    def allows_day(self, weekday: int) -> bool:
        return self.days is None or weekday in self.days

    def narrowed(self, other: CallingWindow | None) -> CallingWindow:
        """The stricter of two windows: the later start, the earlier end, the common days."""
        if other is None:
            return self
        days = self.days if other.days is None else (
            other.days if self.days is None else self.days & other.days
        )
        return CallingWindow(max(self.start, other.start), min(self.end, other.end), days)

    def __str__(self) -> str:
        hours = f"{self.start:%H:%M}-{self.end:%H:%M}"
        return hours if self.days is None else f"{hours} {days_text(self.days)}"


@lru_cache(maxsize=4096)
def _zones_from_number(e164: str) -> tuple[str, ...] | None:
    """IANA zones of the number (contactd.phones, the one parser and validity rule); None
    when it is not a valid number."""
    try:
        return parse_phone(e164).time_zones
    except ValidationError:
        return None


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def callee_zones(
    e164: str, contact_zone: str | None = None, fallback_zone: str | None = None
) -> tuple[str, ...] | None:
    """Zones the window must hold in: the contact's own zone wins, else every zone of the number.

    Returns None for a number that cannot be parsed, () when no zone is known at all.
    """
    if contact_zone and _zone(contact_zone) is not None:
        return (contact_zone,)
    zones = _zones_from_number(e164)
    if zones is None:
        return None
    if not zones and fallback_zone and _zone(fallback_zone) is not None:
        return (fallback_zone,)
    return zones


def local_times(at: datetime, zones: Iterable[str]) -> list[tuple[str, datetime]]:
    out = []
    for name in zones:
        zone = _zone(name)
        if zone is not None:
            out.append((name, at.astimezone(zone)))
    return out


@dataclass(frozen=True)
class DialRequest:
    """Everything the guard needs to know about one number at one instant (`at` is aware)."""

    e164: str
    at: datetime
    window: CallingWindow
    contact_window: CallingWindow | None = None
    contact_zone: str | None = None
    fallback_zone: str | None = None
    campaign_running: bool = True
    dnc_global: bool = False
    dnc_campaign: bool = False
    opted_out: bool = False
    attempts: int = 0
    max_attempts: int = 3
    next_attempt_at: datetime | None = None
    active_calls: int = 0
    max_concurrent: int = 100
    # Times of the campaign's (or trunk's) recent dials, for the calls-per-second cap.
    recent_dials: Sequence[datetime] = field(default_factory=tuple)
    max_calls_per_second: float = 20.0
    ring_timeout_s: float = DIALER_DEFAULTS.ring_timeout_s


def rate_window_s(max_calls_per_second: float) -> float:
    """Window over which the rate cap is counted: 1 s, or longer for caps below 1/s."""
    return max(1.0, 1.0 / max_calls_per_second)


def rate_allowance(max_calls_per_second: float) -> int:
    return max(1, math.floor(max_calls_per_second * rate_window_s(max_calls_per_second) + 1e-9))


def _window_refusal(req: DialRequest) -> Refusal | None:
    zones = callee_zones(req.e164, req.contact_zone, req.fallback_zone)
    if zones is None:
        return Refusal(RefusalCode.INVALID_NUMBER, f"{req.e164} is not a valid phone number")
    if not zones:
        return Refusal(
            RefusalCode.ZONE_UNKNOWN,
            f"the time zone of {req.e164} is unknown, so its calling window cannot be checked",
        )
    window = req.window.narrowed(req.contact_window)
    if window.start >= window.end:
        return Refusal(
            RefusalCode.OUTSIDE_WINDOW,
            f"the campaign and contact windows do not overlap ({req.window} vs "
            f"{req.contact_window})",
        )
    if window.days is not None and not window.days:
        return Refusal(
            RefusalCode.OUTSIDE_WINDOW,
            f"the campaign and contact calling days have no day in common ({req.window} vs "
            f"{req.contact_window})",
        )
    times = local_times(req.at, zones)
    off_day = [(n, lt) for n, lt in times if not window.allows_day(lt.weekday())]
    if off_day:
        return Refusal(
            RefusalCode.OUTSIDE_WINDOW,
            f"not a calling day ({days_text(window.days or ())}): callee local time is "
            + _shown(off_day, "%a %H:%M"),
        )
    outside = [(n, lt) for n, lt in times if not window.allows(lt.time())]
    if not outside:
        return None
    return Refusal(
        RefusalCode.OUTSIDE_WINDOW,
        f"outside the calling window {window}: callee local time is "
        + _shown(outside, "%H:%M %a"),
    )


def _shown(local: list[tuple[str, datetime]], fmt: str) -> str:
    """Up to four (zone, local time) pairs in words, and how many more zones there are."""
    shown = ", ".join(f"{lt:{fmt}} in {n}" for n, lt in local[:4])
    return shown + (f" and {len(local) - 4} more zones" if len(local) > 4 else "")


def refusals(req: DialRequest) -> list[Refusal]:
    """Every reason `req.e164` may not be dialed at `req.at`; an empty list means dial."""
    if req.at.tzinfo is None:
        raise ValueError("DialRequest.at must be timezone-aware")
    out: list[Refusal] = []
    if not req.campaign_running:
        out.append(Refusal(RefusalCode.CAMPAIGN_NOT_RUNNING, "the campaign is not running"))
    window = _window_refusal(req)
    if window is not None:
        out.append(window)
    if req.dnc_global:
        out.append(Refusal(RefusalCode.DNC_GLOBAL, "the number is on the global do-not-call list"))
    if req.dnc_campaign:
        out.append(
            Refusal(RefusalCode.DNC_CAMPAIGN, "the number is on this campaign's do-not-call list")
        )
    if req.opted_out:
        out.append(Refusal(RefusalCode.OPTED_OUT, "the contact has opted out of calls"))
    if req.attempts >= req.max_attempts:
        out.append(
            Refusal(
                RefusalCode.ATTEMPTS_EXHAUSTED,
                f"{req.attempts} of {req.max_attempts} attempts already made",
            )
        )
    if req.next_attempt_at is not None and req.next_attempt_at > req.at:
        wait = req.next_attempt_at - req.at
        out.append(
            Refusal(
                RefusalCode.RETRY_NOT_DUE,
                f"next attempt not before {req.next_attempt_at.isoformat(timespec='seconds')} "
                f"(in {_human(wait)})",
            )
        )
    if req.active_calls >= req.max_concurrent:
        out.append(
            Refusal(
                RefusalCode.CONCURRENCY_CAP,
                f"{req.active_calls} calls in progress, cap is {req.max_concurrent}",
            )
        )
    span = rate_window_s(req.max_calls_per_second)
    recent = sum(1 for t in req.recent_dials if req.at - timedelta(seconds=span) < t <= req.at)
    if recent >= rate_allowance(req.max_calls_per_second):
        out.append(
            Refusal(
                RefusalCode.RATE_CAP,
                f"{recent} calls started in the last {span:g} s, cap is "
                f"{req.max_calls_per_second:g} per second",
            )
        )
    if req.ring_timeout_s < MIN_RING_S:
        out.append(
            Refusal(
                RefusalCode.RING_TOO_SHORT,
                f"ring timeout {req.ring_timeout_s:g} s is below the legal {MIN_RING_S} s",
            )
        )
    return out


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# --- what happens after a call ------------------------------------------------------------


class MachineAction(StrEnum):
    LEAVE_MESSAGE = "leave_message"  # play the campaign message to the machine; lead done
    FALLBACK = "fallback"  # send SMS/email instead
    RETRY = "retry"  # try again later for a person


@dataclass(frozen=True)
class RetryRules:
    """Seconds to wait before the next attempt, per outcome; None in a field means final."""

    busy_s: int = 600
    no_answer_s: int = 3600
    machine_s: int = 7200
    failed_s: int = 1800
    # Ofcom: after an abandoned call, no repeat call within 72 h without a guaranteed agent.
    abandoned_s: int = 72 * 3600
    max_attempts: int = 3
    machine_action: MachineAction = MachineAction.RETRY

    @classmethod
    def from_mapping(cls, data: dict[str, object], base: RetryRules) -> RetryRules:
        """Overlay a campaign's stored `retry_rules` JSON on the defaults."""
        values = {
            "busy_s": base.busy_s,
            "no_answer_s": base.no_answer_s,
            "machine_s": base.machine_s,
            "failed_s": base.failed_s,
            "abandoned_s": base.abandoned_s,
            "max_attempts": base.max_attempts,
        }
        aliases = {"busy": "busy_s", "no_answer": "no_answer_s", "machine": "machine_s",
                   "failed": "failed_s", "abandoned": "abandoned_s"}
        for key, value in data.items():
            name = aliases.get(key, key)
            if name in values and isinstance(value, int | float):
                values[name] = int(value)
        action = data.get("machine_action", base.machine_action)
        return cls(machine_action=MachineAction(str(action)), **values)


@dataclass(frozen=True)
class LeadDecision:
    """What a lead becomes after an outcome."""

    status: LeadStatus
    next_attempt_at: datetime | None = None
    fallback: Channel | None = None
    leave_message: bool = False


_RETRY_DELAY = {
    CallOutcome.BUSY: "busy_s",
    CallOutcome.NO_ANSWER: "no_answer_s",
    CallOutcome.REJECTED: "no_answer_s",
    CallOutcome.MACHINE: "machine_s",
    CallOutcome.CONGESTION: "failed_s",
    CallOutcome.FAILED: "failed_s",
    # The fate of a lost call is unknown (it may have been answered): wait as if no answer.
    CallOutcome.LOST: "no_answer_s",
    CallOutcome.ABANDONED: "abandoned_s",
}


def after_outcome(
    outcome: CallOutcome,
    attempts: int,
    rules: RetryRules,
    now: datetime,
    fallback_channel: Channel | None = None,
) -> LeadDecision:
    """The lead's next state after an attempt; `attempts` counts the one just finished."""
    if outcome is CallOutcome.HUMAN:
        return LeadDecision(LeadStatus.DONE)
    usable_fallback = fallback_channel if fallback_channel not in (None, Channel.CALL,
                                                                   Channel.NONE) else None
    if outcome is CallOutcome.MACHINE and rules.machine_action is MachineAction.LEAVE_MESSAGE:
        return LeadDecision(LeadStatus.DONE, leave_message=True)
    if (
        outcome is CallOutcome.MACHINE
        and rules.machine_action is MachineAction.FALLBACK
        and usable_fallback is not None
    ):
        return LeadDecision(LeadStatus.FALLBACK, fallback=usable_fallback)
    if outcome is CallOutcome.UNALLOCATED or attempts >= rules.max_attempts:
        # The call is not suitable (no such number, or never reached): message instead.
        if usable_fallback is not None:
            return LeadDecision(LeadStatus.FALLBACK, fallback=usable_fallback)
        return LeadDecision(LeadStatus.EXHAUSTED)
    delay = getattr(rules, _RETRY_DELAY.get(outcome, "failed_s"))
    return LeadDecision(LeadStatus.RETRY, next_attempt_at=now + timedelta(seconds=delay))


def schedule_callback(at: datetime, now: datetime) -> LeadDecision:
    """An agent-scheduled callback: the lead becomes due exactly then, ahead of fresh leads."""
    if at.tzinfo is None:
        raise ValueError("callback time must be timezone-aware")
    return LeadDecision(LeadStatus.CALLBACK, next_attempt_at=max(at, now))


# Lead selection order: callbacks due first, then fresh leads, then recycled ones.
SELECTION_ORDER: tuple[LeadStatus, ...] = (LeadStatus.CALLBACK, LeadStatus.NEW, LeadStatus.RETRY)
