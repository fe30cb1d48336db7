"""The compliance guard: never outside the callee's window (every zone, across DST), never on
DNC, never above the caps; and every reason is reported, not only the first."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contactd.dialer.explain import normalise_number
from contactd.dialer.policy import (
    CallingWindow,
    DialRequest,
    RefusalCode,
    callee_zones,
    days_text,
    parse_days,
    rate_allowance,
    rate_window_s,
    refusals,
)
from contactd.errors import ValidationError
from contactd.phones import parse_phone

WINDOW = CallingWindow(time(8, 0), time(21, 0))
# Single-zone, multi-zone (toll-free +1 800 spans the NANP; +7 916 spans Russia) and DST-heavy
# numbers, plus one that phonenumbers cannot place.
NUMBERS = [
    "+12125551234",  # New York
    "+14155550100",  # Los Angeles
    "+18005551234",  # toll-free: 42 zones from Guam to St Johns
    "+442071234567",  # London
    "+61291234567",  # Sydney (southern-hemisphere DST)
    "+79161234567",  # Russian mobile: Kaliningrad-ish to Kamchatka
    "+4930123456",  # Berlin
    "+5511987654321",  # Brazil
    "+9779812345678",  # Nepal (UTC+5:45)
]
# Instants concentrated around 2026 DST changes in both hemispheres, and anywhere in 2026.
DST_EDGES = [
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # US spring forward
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # US fall back
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # EU spring forward
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # EU fall back
    datetime(2026, 4, 4, 16, 0, tzinfo=UTC),  # Sydney fall back
    datetime(2026, 10, 3, 16, 0, tzinfo=UTC),  # Sydney spring forward
]
instants = st.one_of(
    st.builds(lambda edge, off: edge + timedelta(seconds=off),
              st.sampled_from(DST_EDGES), st.integers(-36 * 3600, 36 * 3600)),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31),
                 timezones=st.just(UTC)),
)
times_of_day = st.times().map(lambda t: t.replace(microsecond=0))
windows = st.tuples(times_of_day, times_of_day).map(lambda ab: CallingWindow(*sorted(ab)))
zones = st.sampled_from([None, "America/Chicago", "Europe/Paris", "Asia/Kolkata",
                         "Australia/Lord_Howe", "Pacific/Chatham"])


def _local(at: datetime, zone: str) -> time:
    # Independent route to the wall clock: from the POSIX timestamp, not via astimezone().
    return datetime.fromtimestamp(at.timestamp(), ZoneInfo(zone)).time()


@settings(max_examples=400, deadline=None)
@given(number=st.sampled_from(NUMBERS), at=instants, campaign=windows,
       contact=st.one_of(st.none(), windows), contact_zone=zones)
def test_never_dialed_outside_the_window_in_any_zone(
    number: str, at: datetime, campaign: CallingWindow, contact: CallingWindow | None,
    contact_zone: str | None,
) -> None:
    req = DialRequest(e164=number, at=at, window=campaign, contact_window=contact,
                      contact_zone=contact_zone)
    reasons = refusals(req)
    zones_checked = callee_zones(number, contact_zone)
    assert zones_checked, "every sample number has a zone"
    if contact_zone:
        assert zones_checked == (contact_zone,)  # the contact's own zone wins
    in_all = all(
        campaign.start <= _local(at, z) < campaign.end
        and (contact is None or contact.start <= _local(at, z) < contact.end)
        for z in zones_checked
    )
    window_refused = any(r.code is RefusalCode.OUTSIDE_WINDOW for r in reasons)
    assert window_refused == (not in_all)
    if not reasons:
        assert in_all


@settings(max_examples=200, deadline=None)
@given(at=instants, dnc_global=st.booleans(), dnc_campaign=st.booleans(),
       opted_out=st.booleans(), attempts=st.integers(0, 6), max_attempts=st.integers(1, 5),
       active=st.integers(0, 20), cap=st.integers(1, 20))
def test_dnc_opt_out_attempts_and_concurrency_always_refuse(
    at: datetime, dnc_global: bool, dnc_campaign: bool, opted_out: bool, attempts: int,
    max_attempts: int, active: int, cap: int,
) -> None:
    req = DialRequest(e164="+442071234567", at=at, window=CallingWindow(time(0), time(23, 59)),
                      dnc_global=dnc_global, dnc_campaign=dnc_campaign, opted_out=opted_out,
                      attempts=attempts, max_attempts=max_attempts, active_calls=active,
                      max_concurrent=cap)
    codes = {r.code for r in refusals(req)}
    assert (RefusalCode.DNC_GLOBAL in codes) == dnc_global
    assert (RefusalCode.DNC_CAMPAIGN in codes) == dnc_campaign
    assert (RefusalCode.OPTED_OUT in codes) == opted_out
    assert (RefusalCode.ATTEMPTS_EXHAUSTED in codes) == (attempts >= max_attempts)
    assert (RefusalCode.CONCURRENCY_CAP in codes) == (active >= cap)


@settings(max_examples=150, deadline=None)
@given(cps=st.sampled_from([0.2, 0.5, 1.0, 2.0, 3.5, 10.0]),
       gaps=st.lists(st.floats(0.0, 1.5), min_size=1, max_size=120))
def test_a_dialer_obeying_the_guard_never_exceeds_the_rate_cap(
    cps: float, gaps: list[float]
) -> None:
    at = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    dialed: list[datetime] = []
    for gap in gaps:
        at += timedelta(seconds=gap)
        req = DialRequest(e164="+442071234567", at=at,
                          window=CallingWindow(time(0), time(23, 59)),
                          recent_dials=tuple(dialed), max_calls_per_second=cps)
        if not refusals(req):
            dialed.append(at)
    span = timedelta(seconds=rate_window_s(cps))
    allowance = rate_allowance(cps)
    for i, start in enumerate(dialed):
        assert sum(1 for t in dialed[i:] if t < start + span) <= allowance


def test_every_reason_is_reported_with_the_callee_local_time() -> None:
    at = datetime(2026, 7, 1, 3, 30, tzinfo=UTC)  # 23:30 the day before in New York
    req = DialRequest(
        e164="+12125551234", at=at, window=WINDOW, dnc_global=True, dnc_campaign=True,
        opted_out=True, attempts=3, max_attempts=3,
        next_attempt_at=at + timedelta(hours=2), active_calls=5, max_concurrent=5,
        recent_dials=(at - timedelta(seconds=0.5),), max_calls_per_second=1,
        ring_timeout_s=10,
    )
    reasons = refusals(req)
    assert [r.code for r in reasons] == [
        RefusalCode.OUTSIDE_WINDOW, RefusalCode.DNC_GLOBAL, RefusalCode.DNC_CAMPAIGN,
        RefusalCode.OPTED_OUT, RefusalCode.ATTEMPTS_EXHAUSTED, RefusalCode.RETRY_NOT_DUE,
        RefusalCode.CONCURRENCY_CAP, RefusalCode.RATE_CAP, RefusalCode.RING_TOO_SHORT,
    ]
    assert "23:30 Tue in America/New_York" in reasons[0].message
    assert "08:00-21:00" in reasons[0].message


def test_multi_zone_number_must_be_inside_every_zone() -> None:
    # 13:00 UTC on a June day: 09:00 in New York but 03:00 in Honolulu, so a toll-free number
    # (which may ring anywhere in the NANP) is refused while a Manhattan number is fine.
    at = datetime(2026, 6, 10, 13, 0, tzinfo=UTC)
    toll_free = refusals(DialRequest(e164="+18005551234", at=at, window=WINDOW))
    manhattan = refusals(DialRequest(e164="+12125551234", at=at, window=WINDOW))
    assert [r.code for r in toll_free] == [RefusalCode.OUTSIDE_WINDOW]
    assert "Pacific/Honolulu" in toll_free[0].message or "more zones" in toll_free[0].message
    assert manhattan == []


def test_stricter_of_contact_and_campaign_window_and_the_contact_zone_wins() -> None:
    at = datetime(2026, 6, 10, 17, 30, tzinfo=UTC)  # 19:30 in Paris, 13:30 in New York
    contact_window = CallingWindow(time(9, 0), time(19, 0))
    assert refusals(DialRequest(e164="+12125551234", at=at, window=WINDOW,
                                contact_window=contact_window)) == []
    moved = refusals(DialRequest(e164="+12125551234", at=at, window=WINDOW,
                                 contact_window=contact_window, contact_zone="Europe/Paris"))
    assert [r.code for r in moved] == [RefusalCode.OUTSIDE_WINDOW]
    assert "Europe/Paris" in moved[0].message


def test_unplaceable_and_invalid_numbers_are_refused() -> None:
    at = datetime(2026, 6, 10, 17, 30, tzinfo=UTC)
    # A valid number in no country (international freephone): no zone to check the window in.
    unknown = refusals(DialRequest(e164="+80012345678", at=at, window=WINDOW))
    assert [r.code for r in unknown] == [RefusalCode.ZONE_UNKNOWN]
    fallback = refusals(DialRequest(e164="+80012345678", at=at, window=WINDOW,
                                    fallback_zone="America/New_York"))
    assert fallback == []
    garbage = refusals(DialRequest(e164="+1", at=at, window=WINDOW))
    assert [r.code for r in garbage] == [RefusalCode.INVALID_NUMBER]


# (number, valid): possible-but-unassigned numbers (the 555 area code, a short UK number) are
# invalid for the CRM, `dialer explain` and the dial loop alike.
VALIDITY = [
    ("+442079460123", True), ("+4930123456", True), ("+80012345678", True),
    ("+12125551234", True), ("+15555550100", False), ("+44207946", False), ("+1", False),
    ("+999123456789", False),
]


@pytest.mark.parametrize(("number", "valid"), VALIDITY)
def test_explain_and_the_dial_loop_agree_with_the_one_parser(number: str, valid: bool) -> None:
    """contactd.phones decides; `dialer explain` reads numbers with it and the policy refuses
    exactly the numbers it rejects."""
    try:
        parse_phone(number)
        parsed = True
    except ValidationError:
        parsed = False
    try:
        normalise_number(number, "GB")
        explained = True
    except ValidationError:
        explained = False
    at = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
    codes = [r.code for r in refusals(DialRequest(e164=number, at=at, window=WINDOW,
                                                  fallback_zone="Europe/London"))]
    assert (parsed, explained, RefusalCode.INVALID_NUMBER not in codes) == (valid,) * 3


def test_calling_days_are_read_from_words_and_bad_words_are_named() -> None:
    assert days_text(parse_days("mon-fri, sat")) == "mon,tue,wed,thu,fri,sat"
    assert parse_days("SUN") == frozenset({6})
    for bad, named in (("funday", "'funday'"), ("fri-mon", "'fri-mon'"), ("", "no calling")):
        with pytest.raises(ValueError, match=named):
            parse_days(bad)


def test_a_number_is_not_dialled_on_a_day_the_campaign_does_not_call_in_its_own_zone() -> None:
    weekdays = CallingWindow(time(8, 0), time(21, 0), parse_days("mon-fri"))
    # Friday 23:30 UTC is already Saturday 00:30 in Berlin but still Friday in New York.
    friday_night = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    berlin = refusals(DialRequest(e164="+4930123456", at=friday_night, window=weekdays))
    assert [r.code for r in berlin] == [RefusalCode.OUTSIDE_WINDOW]
    assert "not a calling day (mon,tue,wed,thu,fri)" in berlin[0].message
    assert "Sat 00:30 in Europe/Berlin" in berlin[0].message
    new_york = refusals(DialRequest(e164="+12125551234", at=friday_night, window=weekdays))
    assert new_york == []  # 18:30 on a Friday there
    # A window without days is every day; narrowing keeps the days both allow.
    saturday_noon = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
    assert refusals(DialRequest(e164="+4930123456", at=saturday_noon, window=WINDOW)) == []
    both = weekdays.narrowed(CallingWindow(time(9, 0), time(17, 0), parse_days("fri-sun")))
    assert (both.start, both.end, both.days) == (time(9, 0), time(17, 0), frozenset({4}))
    assert WINDOW.narrowed(weekdays).days == weekdays.days
