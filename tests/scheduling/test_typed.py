"""Dates and times as people type them (scheduling.typed)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from scheduling.typed import parse_day, parse_moment

PRAGUE = ZoneInfo("Europe/Prague")
TODAY = date(2026, 12, 7)


@pytest.mark.parametrize(
    ("typed", "day"),
    [
        ("3.2.2027", date(2027, 2, 3)),
        (" 3. 2. 2027 ", date(2027, 2, 3)),
        ("2027-02-03", date(2027, 2, 3)),
        ("24.12.", date(2026, 12, 24)),  # this year's, still to come
        ("3.2.", date(2027, 2, 3)),  # next year's: this year's has passed
        ("7.12.", TODAY),
        ("29.2.2027", None),  # no such day
        ("31.4.", None),
        ("tomorrow", None),
        ("", None),
    ],
)
def test_a_typed_day(typed: str, day: date | None) -> None:
    assert parse_day(typed, TODAY) == day


def test_a_typed_moment_is_in_the_districts_zone_and_bounded() -> None:
    assert parse_moment("15.2.2027 10:00", TODAY, PRAGUE) == datetime(
        2027, 2, 15, 10, 0, tzinfo=PRAGUE
    )
    assert parse_moment("15.2.2027 9.30", TODAY, PRAGUE) == datetime(
        2027, 2, 15, 9, 30, tzinfo=PRAGUE
    )
    assert parse_moment("15.2.2027 24:00", TODAY, PRAGUE) is None
    assert parse_moment("15.2.2027", TODAY, PRAGUE) is None
