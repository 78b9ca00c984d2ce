"""The working calendar and the referral reminder rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduling.calendar import WorkingCalendar, WorkingHours
from scheduling.policy import draft_expired, draft_reminder_due, triage_nudge_due

PRAGUE = ZoneInfo("Europe/Prague")
CALENDAR = WorkingCalendar()


def prague(*args: int) -> datetime:
    return datetime(*args, tzinfo=PRAGUE)  # type: ignore[misc, arg-type]


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


def test_working_hours_intersect_to_the_hours_both_keep() -> None:
    office = WorkingHours(time(8, 0), time(16, 0))
    school = WorkingHours(time(7, 30), time(14, 30))
    assert office.intersect(school) == WorkingHours(time(8, 0), time(14, 30))
    assert school.intersect(office) == WorkingHours(time(8, 0), time(14, 30))
    assert office.intersect(office) == office
    assert office.intersect(WorkingHours(time(16, 0), time(18, 0))) is None  # only touching
    assert office.intersect(WorkingHours(time(6, 0), time(7, 0))) is None
    assert WorkingHours() == office == CALENDAR.hours


def test_working_days_lists_the_working_days_of_a_range_inclusive() -> None:
    assert CALENDAR.working_days(date(2026, 12, 21), date(2026, 12, 31)) == [
        date(2026, 12, 21),
        date(2026, 12, 22),
        date(2026, 12, 23),
        date(2026, 12, 28),
        date(2026, 12, 29),
        date(2026, 12, 30),
        date(2026, 12, 31),
    ]
    assert CALENDAR.working_days(date(2026, 12, 24), date(2026, 12, 27)) == []
    assert CALENDAR.working_days(date(2026, 12, 31), date(2026, 12, 21)) == []
    assert CALENDAR.add_working_days_to_date(date(2026, 12, 23), 0) == date(2026, 12, 23)
    assert CALENDAR.add_working_days_to_date(date(2026, 12, 23), 1) == date(2026, 12, 28)


@pytest.mark.parametrize(
    ("today", "first", "last"),
    [
        # Monday -> Wednesday; 15 working days end on the Tuesday three weeks later.
        (date(2026, 11, 23), date(2026, 11, 25), date(2026, 12, 15)),
        # Christmas: the 24th-26th are holidays and so is New Year's Day 2027.
        (date(2026, 12, 21), date(2026, 12, 23), date(2027, 1, 15)),
        (date(2026, 12, 22), date(2026, 12, 28), date(2027, 1, 18)),
        (date(2026, 12, 24), date(2026, 12, 29), date(2027, 1, 19)),  # from a holiday
        # Easter 2027: Good Friday 26 March, Easter Monday 29 March.
        (date(2027, 3, 24), date(2027, 3, 30), date(2027, 4, 19)),
        (date(2027, 3, 25), date(2027, 3, 31), date(2027, 4, 20)),
        (date(2026, 11, 28), date(2026, 12, 1), date(2026, 12, 21)),  # Saturday -> Tuesday
    ],
)
def test_the_planning_window_counts_working_days(today: date, first: date, last: date) -> None:
    assert CALENDAR.planning_window(today) == (first, last)
    window = CALENDAR.working_days(first, last)
    assert len(window) == 15
    assert window[0] == first and window[-1] == last


def test_a_planning_window_of_other_sizes() -> None:
    assert CALENDAR.planning_window(date(2027, 3, 25), 1, 1) == (date(2027, 3, 30),) * 2
    # starting "today" on a holiday still opens on a working day
    assert CALENDAR.planning_window(date(2027, 3, 26), 0, 2) == (
        date(2027, 3, 30),
        date(2027, 3, 31),
    )
    assert CALENDAR.planning_window(date(2027, 3, 23), 0, 1) == (date(2027, 3, 23),) * 2
    with pytest.raises(ValueError, match="at least one"):
        CALENDAR.planning_window(date(2027, 3, 23), 2, 0)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("day", "starts", "ends"),
    [
        (date(2026, 3, 27), utc(2026, 3, 27, 7, 0), utc(2026, 3, 27, 15, 0)),  # CET
        (date(2026, 3, 30), utc(2026, 3, 30, 6, 0), utc(2026, 3, 30, 14, 0)),  # CEST since 29th
        (date(2026, 10, 23), utc(2026, 10, 23, 6, 0), utc(2026, 10, 23, 14, 0)),  # CEST
        (date(2026, 10, 26), utc(2026, 10, 26, 7, 0), utc(2026, 10, 26, 15, 0)),  # CET since 25th
    ],
)
def test_day_bounds_are_utc_seconds_of_local_working_hours(
    day: date, starts: int, ends: int
) -> None:
    assert CALENDAR.day_bounds(day, WorkingHours()) == (starts, ends)


def test_day_bounds_on_the_days_the_clocks_change() -> None:
    night = WorkingHours(time(1, 0), time(4, 0))
    # 29 March 2026: 02:00 CET becomes 03:00 CEST, so 01:00-04:00 is two hours long.
    assert CALENDAR.day_bounds(date(2026, 3, 29), night) == (
        utc(2026, 3, 29, 0, 0),
        utc(2026, 3, 29, 2, 0),
    )
    # 25 October 2026: 03:00 CEST becomes 02:00 CET, so 01:00-04:00 is four hours long.
    assert CALENDAR.day_bounds(date(2026, 10, 25), night) == (
        utc(2026, 10, 24, 23, 0),
        utc(2026, 10, 25, 3, 0),
    )


def test_timestamp_agrees_with_datetime_on_every_day_of_a_year() -> None:
    zone = ZoneInfo("America/St_Johns")  # a half-hour offset and its own change dates
    for calendar in (CALENDAR, WorkingCalendar(zone=zone)):
        day = date(2026, 1, 1)
        while day.year == 2026:
            for wall in (time(0, 0), time(2, 30), time(8, 15), time(23, 59)):
                aware = datetime.combine(day, wall, tzinfo=calendar.zone)
                assert calendar.timestamp(day, wall) == int(aware.timestamp())
            day += timedelta(days=1)
