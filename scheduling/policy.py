"""When Round Table reminds and nudges people: pure rules over moments, no I/O."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from scheduling.calendar import WorkingCalendar

DRAFT_REMINDER_AFTER = timedelta(days=1)
DRAFT_KEPT_FOR = timedelta(days=14)
TRIAGE_WAIT_WORKING_DAYS = 1
# Reminders about one's own draft are sent in the daytime only, not at 3 a.m.
DAYTIME = (time(7, 30), time(20, 0))


def draft_expired(updated_at: datetime, now: datetime) -> bool:
    """A draft untouched for 14 days is deleted."""
    return now - updated_at >= DRAFT_KEPT_FOR


def draft_reminder_due(
    updated_at: datetime, reminded_at: datetime | None, now: datetime, calendar: WorkingCalendar
) -> bool:
    """Once, a day after the draft was last touched, in the referrer's daytime."""
    if reminded_at is not None or draft_expired(updated_at, now):
        return False
    if now - updated_at < DRAFT_REMINDER_AFTER:
        return False
    local = calendar.local(now).time()
    return DAYTIME[0] <= local < DAYTIME[1]


def triage_nudge_due(
    submitted_at: datetime,
    nudged_at: datetime | None,
    now: datetime,
    calendar: WorkingCalendar,
) -> bool:
    """A referral waiting more than one working day for a decision nudges the coordinators
    once per working day, in working hours."""
    if now < calendar.add_working_days(submitted_at, TRIAGE_WAIT_WORKING_DAYS):
        return False
    if not calendar.is_working_time(now):
        return False
    return nudged_at is None or calendar.local(nudged_at).date() < calendar.local(now).date()
