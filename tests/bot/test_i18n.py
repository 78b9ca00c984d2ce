"""Messages, plurals and dates in each language and in the district's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.core.clock import FakeClock
from bot.core.i18n import Translator, pick_locale

PRAGUE = ZoneInfo("Europe/Prague")
SINGULAR = "Too many attempts with wrong codes. Please try again in {n} minute."
PLURAL = "Too many attempts with wrong codes. Please try again in {n} minutes."


@pytest.mark.parametrize(
    ("locale", "count", "ending"),
    [
        ("cs", 1, "{n} minutu."),
        ("cs", 3, "{n} minuty."),
        ("cs", 5, "{n} minut."),
        ("uk", 1, "{n} хвилину."),
        ("uk", 3, "{n} хвилини."),
        ("uk", 11, "{n} хвилин."),
        ("en", 1, "{n} minute."),
        ("en", 2, "{n} minutes."),
    ],
)
def test_plurals_follow_each_languages_rules(locale: str, count: int, ending: str) -> None:
    assert Translator(locale, PRAGUE).ngettext(SINGULAR, PLURAL, count).endswith(ending)


def test_times_are_shown_in_the_districts_zone_across_daylight_saving() -> None:
    winter = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    czech = Translator("cs", PRAGUE)
    assert czech.datetime(winter) == "1. 12. 2026 9:00"
    assert czech.datetime(summer) == "1. 7. 2026 9:00"
    assert Translator("en", PRAGUE).datetime(winter) == "Dec 1, 2026, 9:00\u202fAM"
    assert Translator("uk", PRAGUE).time(summer) == "09:00"


@pytest.mark.parametrize(
    ("locale", "this_year", "next_year", "slot"),
    [
        ("en", "Tue, Dec 1", "Mon, Mar 15, 2027", "Tue, Jan 5, 2027 10:00\u202fAM"),
        ("cs", "út 1. 12.", "po 15. 3. 2027", "út 5. 1. 2027 10:00"),
        ("uk", "вт, 1 груд.", "пн, 15 бер. 2027\u202fр.", "вт, 5 січ. 2027\u202fр. 10:00"),
    ],
)
def test_a_short_day_has_its_year_unless_it_is_this_years(
    locale: str, this_year: str, next_year: str, slot: str
) -> None:
    """The year is the clock's, not the machine's: a typo like 2207 does not hide behind "Mar
    15"."""
    tr = Translator(locale, PRAGUE, FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)))
    assert tr.day(date(2026, 12, 1)) == this_year
    assert tr.day(date(2027, 3, 15)) == next_year
    assert tr.slot(datetime(2027, 1, 5, 9, 0, tzinfo=UTC)) == slot
    assert "2025" in tr.day(date(2025, 12, 1))
    # New Year's Eve in UTC is already the new year in Prague.
    new_year = Translator(locale, PRAGUE, FakeClock(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)))
    assert "2027" not in new_year.day(date(2027, 3, 15))
    # Without a clock the year is unknown, so every day has one.
    assert Translator(locale, PRAGUE).day(date(2026, 12, 1)) != this_year


def test_a_date_alone_has_its_year() -> None:
    assert Translator("en", PRAGUE).date(date(2028, 11, 23)) == "Nov 23, 2028"
    assert Translator("cs", PRAGUE).date(date(2028, 11, 23)) == "23. 11. 2028"


@pytest.mark.parametrize(
    ("client", "expected"),
    [("cs", "cs"), ("sk", "cs"), ("en-GB", "en"), ("uk", "uk"), ("de", "cs"), (None, "cs")],
)
def test_the_client_language_picks_the_closest_catalog(client: str | None, expected: str) -> None:
    assert pick_locale(client, "cs") == expected
