"""Dates, numbers and money on the pages are formatted by Babel for the page's language."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from contactd.web.templates import (
    format_day,
    format_money,
    format_number,
    format_share,
    format_when,
)

WHEN = datetime(2026, 3, 5, 14, 30, tzinfo=UTC)


def test_money_follows_the_locale() -> None:
    price = Decimal("1234.5")
    assert format_money(price, "EUR", "en") == "€1,234.50"
    assert format_money(price, "EUR", "de") == "1.234,50\xa0€"
    assert format_money(price, "RUB", "ru") == "1\xa0234,50\xa0₽"
    assert format_money(price, "MWK", "ny") == "MWK\xa01,234.50"
    assert format_money(None, "EUR", "en") == "—"


def test_numbers_shares_and_dates_follow_the_locale() -> None:
    assert format_number(1234567, "de") == "1.234.567"
    assert format_number(1234567, "ru") == "1\xa0234\xa0567"
    assert format_share(0.031, "en") == "3.1%"
    assert format_share(0.031, "ru") == "3,1\xa0%"
    assert format_day(date(2026, 3, 5), "de") == "05.03.2026"
    assert "марта" in format_day(date(2026, 3, 5), "ru").replace("мар.", "марта")
    assert format_when(WHEN, "en").startswith("Mar 5, 2026")
    assert format_when(None, "en") == "—"
