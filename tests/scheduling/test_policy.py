"""When conference reminders and the RSVP nudge are due, and until when they still make sense;
how far ahead a typed date may be."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from scheduling.calendar import WorkingCalendar
from scheduling.policy import (
    add_months,
    conference_reminders,
    latest_due,
    latest_review,
    review_by,
    rsvp_nudge,
    working_due,
)

PRAGUE = ZoneInfo("Europe/Prague")
CALENDAR = WorkingCalendar(zone=PRAGUE)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=PRAGUE)  # type: ignore[misc, arg-type]


def test_reminders_two_days_and_two_hours_before_each_worth_sending_until_the_next() -> None:
    starts = at(2026, 12, 3, 9, 0)
    moments = conference_reminders(starts, at(2026, 11, 23, 8, 0))
    assert [(m.name, m.due, m.expires) for m in moments] == [
        ("2d", at(2026, 12, 1, 9, 0), at(2026, 12, 3, 7, 0)),
        ("2h", at(2026, 12, 3, 7, 0), starts),
    ]


def test_a_reminder_whose_moment_has_passed_when_planned_is_left_out() -> None:
    starts = at(2026, 12, 3, 9, 0)
    moments = conference_reminders(starts, at(2026, 12, 2, 10, 0))  # accepted the day before
    assert [m.name for m in moments] == ["2h"]
    assert conference_reminders(starts, at(2026, 12, 3, 8, 0)) == []


def test_reminders_across_the_autumn_clock_change_keep_wall_time_distance_in_utc() -> None:
    starts = at(2026, 10, 26, 9, 0)  # Monday after the clocks went back on Sunday
    (two_days, _two_hours) = conference_reminders(starts, at(2026, 10, 1, 8, 0))
    assert (starts - two_days.due).total_seconds() == 48 * 3600
    assert two_days.due.astimezone(PRAGUE).hour == 10  # 48 real hours: 10:00 summer time


def test_the_rsvp_nudge_comes_a_working_day_later_skipping_weekends_and_holidays() -> None:
    nudge = rsvp_nudge(at(2026, 11, 20, 15, 0), at(2026, 12, 10, 9, 0), CALENDAR)  # Friday
    assert nudge is not None and nudge.due == at(2026, 11, 23, 15, 0)  # Monday
    nudge = rsvp_nudge(at(2026, 12, 23, 10, 0), at(2027, 1, 10, 9, 0), CALENDAR)
    assert nudge is not None and nudge.due == at(2026, 12, 28, 10, 0)  # 24-26 Dec, Sunday
    assert nudge.expires == at(2027, 1, 10, 9, 0)


def test_no_rsvp_nudge_when_the_conference_comes_first() -> None:
    assert rsvp_nudge(at(2026, 12, 2, 10, 0), at(2026, 12, 3, 9, 0), CALENDAR) is None


def test_a_quick_due_date_moves_off_weekends_and_holidays() -> None:
    calendar = WorkingCalendar()
    assert working_due(date(2026, 12, 3), calendar) == date(2026, 12, 3)  # a Thursday
    assert working_due(date(2026, 12, 5), calendar) == date(2026, 12, 7)  # Saturday → Monday
    # Christmas Eve, Christmas Day, St Stephen's Day, then a Sunday.
    assert working_due(date(2026, 12, 24), calendar) == date(2026, 12, 28)


def test_a_task_may_be_due_two_years_ahead_and_a_review_six_months_ahead() -> None:
    today = date(2026, 11, 23)
    assert latest_due(today) == date(2028, 11, 23)
    assert latest_review(today) == date(2027, 5, 23)
    # The end of a longer month: the end of the shorter one, also in a leap year.
    assert latest_review(date(2026, 8, 31)) == date(2027, 2, 28)
    assert latest_due(date(2026, 2, 28)) == date(2028, 2, 28)
    assert add_months(date(2027, 8, 31), 6) == date(2028, 2, 29)


def test_the_review_is_due_three_months_after_the_conference() -> None:
    assert review_by(date(2026, 11, 30)) == date(2027, 2, 28)
    assert review_by(date(2026, 12, 2)) == date(2027, 3, 2)
