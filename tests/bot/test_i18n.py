"""Messages, plurals and dates in each language and in the district's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.i18n import Translator, pick_locale

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
    ("client", "expected"),
    [("cs", "cs"), ("sk", "cs"), ("en-GB", "en"), ("uk", "uk"), ("de", "cs"), (None, "cs")],
)
def test_the_client_language_picks_the_closest_catalog(client: str | None, expected: str) -> None:
    assert pick_locale(client, "cs") == expected
