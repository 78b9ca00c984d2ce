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
    once per working day, in working hours. The day counts from the first working hour after it
    was sent: one sent on Saturday has waited a working day on Tuesday morning."""
    if not waited_a_working_day(submitted_at, now, calendar):
        return False
    if not calendar.is_working_time(now):
        return False
    return nudged_at is None or calendar.local(nudged_at).date() < calendar.local(now).date()


def waited_a_working_day(submitted_at: datetime, now: datetime, calendar: WorkingCalendar) -> bool:
    start = calendar.next_working_moment(submitted_at)
    return now >= calendar.add_working_days(start, TRIAGE_WAIT_WORKING_DAYS)


FOLLOW_UP_AFTER = timedelta(minutes=1)


def follow_up_due(submitted_at: datetime, now: datetime) -> bool:
    """A sent referral whose alert or message deletion has not been confirmed a minute later
    (the process died, or Telegram kept failing) is finished by the sweep."""
    return now - submitted_at >= FOLLOW_UP_AFTER
