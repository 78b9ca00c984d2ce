"""The working calendar and the referral reminder rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduling.calendar import WorkingCalendar
from scheduling.policy import draft_expired, draft_reminder_due, triage_nudge_due

PRAGUE = ZoneInfo("Europe/Prague")
CALENDAR = WorkingCalendar()


def prague(*args: int) -> datetime:
    return datetime(*args, tzinfo=PRAGUE)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 4, 3), False),  # Good Friday
        (date(2026, 4, 6), False),  # Easter Monday
        (date(2026, 4, 7), True),
        (date(2026, 10, 28), False),  # Independent Czechoslovak State Day (a Wednesday)
        (date(2026, 12, 24), False),
        (date(2026, 12, 25), False),
        (date(2026, 12, 26), False),
        (date(2026, 12, 28), True),
        (date(2026, 11, 21), False),  # Saturday
        (date(2026, 11, 23), True),
    ],
)
def test_working_days_skip_weekends_and_czech_holidays(day: date, working: bool) -> None:
    assert CALENDAR.is_working_day(day) is working


def test_a_working_day_later_skips_the_weekend_and_keeps_the_wall_clock_across_dst() -> None:
    # Friday 23 October 2026 10:00 CEST; the clocks go back on Sunday 25 October;
    # Monday 26th is a working day, so one working day later is Monday 10:00 CET.
    later = CALENDAR.add_working_days(prague(2026, 10, 23, 10, 0), 1)
    assert later == prague(2026, 10, 26, 10, 0)
    assert later.utcoffset() == timedelta(hours=1)
    # From Tuesday 27 October, the holiday on Wednesday the 28th is skipped.
    assert CALENDAR.add_working_days(prague(2026, 10, 27, 9, 0), 1) == prague(2026, 10, 29, 9, 0)


def test_working_time_is_eight_to_four_on_working_days() -> None:
    assert CALENDAR.is_working_time(prague(2026, 11, 23, 8, 0))
    assert not CALENDAR.is_working_time(prague(2026, 11, 23, 16, 0))
    assert not CALENDAR.is_working_time(prague(2026, 11, 23, 7, 59))
    assert not CALENDAR.is_working_time(prague(2026, 11, 22, 10, 0))  # Sunday


def test_a_referral_nudges_after_one_working_day_then_once_per_working_day() -> None:
    submitted = prague(2026, 11, 20, 15, 0)  # Friday afternoon
    assert not triage_nudge_due(submitted, None, prague(2026, 11, 23, 14, 59), CALENDAR)
    assert triage_nudge_due(submitted, None, prague(2026, 11, 23, 15, 0), CALENDAR)
    nudged = prague(2026, 11, 23, 15, 0)
    assert not triage_nudge_due(submitted, nudged, prague(2026, 11, 23, 15, 30), CALENDAR)
    assert not triage_nudge_due(submitted, nudged, prague(2026, 11, 24, 7, 0), CALENDAR)
    assert triage_nudge_due(submitted, nudged, prague(2026, 11, 24, 8, 0), CALENDAR)


def test_a_referral_sent_after_hours_is_nudged_in_working_hours() -> None:
    submitted = prague(2026, 11, 23, 18, 0)  # Monday evening
    assert not triage_nudge_due(submitted, None, prague(2026, 11, 24, 18, 30), CALENDAR)
    assert triage_nudge_due(submitted, None, prague(2026, 11, 25, 8, 0), CALENDAR)


def test_a_draft_is_reminded_once_after_a_day_in_the_daytime_and_kept_two_weeks() -> None:
    touched = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    day_later = touched + timedelta(days=1)
    assert not draft_reminder_due(touched, None, day_later - timedelta(minutes=1), CALENDAR)
    assert draft_reminder_due(touched, None, day_later, CALENDAR)
    assert not draft_reminder_due(touched, day_later, day_later + timedelta(hours=1), CALENDAR)
    night = prague(2026, 11, 25, 3, 0)
    assert not draft_reminder_due(touched, None, night, CALENDAR)
    assert not draft_expired(touched, touched + timedelta(days=13, hours=23))
    assert draft_expired(touched, touched + timedelta(days=14))


def test_a_referral_sent_on_saturday_has_waited_a_working_day_on_tuesday_morning() -> None:
    submitted = prague(2026, 11, 28, 10, 0)  # Saturday
    assert CALENDAR.next_working_moment(submitted) == prague(2026, 11, 30, 8, 0)
    assert not triage_nudge_due(submitted, None, prague(2026, 11, 30, 15, 0), CALENDAR)
    assert triage_nudge_due(submitted, None, prague(2026, 12, 1, 8, 0), CALENDAR)
    early = prague(2026, 11, 30, 6, 30)  # Monday before work
    assert CALENDAR.next_working_moment(early) == prague(2026, 11, 30, 8, 0)
