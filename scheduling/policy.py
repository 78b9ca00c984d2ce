"""When Round Table reminds and nudges people: pure rules over moments, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

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
    """A sent referral whose message deletion has not been confirmed a minute later (the process
    died, or Telegram kept failing) is finished by the sweep."""
    return now - submitted_at >= FOLLOW_UP_AFTER


# Conferences: reminders to those coming, and a nudge to those who have not answered.

REMINDERS_BEFORE = (timedelta(days=2), timedelta(hours=2))
RSVP_NUDGE_WORKING_DAYS = 1


@dataclass(frozen=True)
class Moment:
    """When a notification is due, and until when it still makes sense if the bot was down."""

    name: str
    due: datetime
    expires: datetime


def conference_reminders(starts_at: datetime, now: datetime) -> list[Moment]:
    """2 days and 2 hours before the start. A reminder missed while the bot was down is still
    worth sending until the next one takes over (the 2-day one until 2 hours before), and the
    last until the conference begins. One whose moment has passed when it is planned (someone
    accepting the day before) is left out: they have just seen the date."""
    moments: list[Moment] = []
    starts_at = starts_at.astimezone(UTC)  # exact durations, also across a clock change
    for position, before in enumerate(REMINDERS_BEFORE):
        due = starts_at - before
        later = REMINDERS_BEFORE[position + 1 :]
        expires = starts_at - later[0] if later else starts_at
        if due > now:
            moments.append(Moment(_name(before), due, expires))
    return moments


def _name(before: timedelta) -> str:
    if before % timedelta(days=1) == timedelta(0):
        return f"{before.days}d"
    return f"{int(before.total_seconds() // 3600)}h"


def rsvp_nudge(
    invited_at: datetime, starts_at: datetime, calendar: WorkingCalendar
) -> Moment | None:
    """One nudge a working day after the invitation if it is still unanswered, worth sending
    until the conference begins; none when that is already too close to the start."""
    start = calendar.next_working_moment(invited_at)
    due = calendar.add_working_days(start, RSVP_NUDGE_WORKING_DAYS)
    if due >= starts_at:
        return None
    return Moment("rsvp", due, starts_at)


def triage_nudge_expires(due: datetime, calendar: WorkingCalendar) -> datetime:
    """A nudge about waiting referrals is worth sending late until the next one is due."""
    return calendar.add_working_days(due, 1)


# Tasks of the agreed plan: nudges to the owner, an alert to the coordinator, the Monday digest.

TASK_NUDGE_TIME = time(9, 0)  # local: people read it at the start of their day
TASK_NUDGE_DAYS = (-3, 0, 1)  # 3 days before due, on the due day, 1 day overdue, ...
TASK_WEEKLY_FROM = 8  # ... then weekly: 8, 15, 22, ... days overdue
TASK_WEEKLY_UNTIL = 92  # about three months overdue: by then the review conference has met
TASK_ALERT_DAYS = 7  # the coordinator is alerted at 7 days overdue
REVIEW_WITHIN_MONTHS = 3
DIGEST_WEEKDAY = 0  # Monday
DIGEST_TIME = time(8, 0)


def _at(day: date, moment: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=zone).astimezone(UTC)


def working_due(day: date, calendar: WorkingCalendar) -> date:
    """A due date picked as "in 1 week" or "+2 weeks" moves off a weekend or public holiday to
    the next working day: nobody is nudged on a Saturday about a task due on Christmas."""
    return calendar.next_working_day(day)


def task_nudges(due_on: date, zone: ZoneInfo, now: datetime) -> list[Moment]:
    """The owner's nudges at 09:00 local: 3 days before, on the day, a day overdue, then every
    week. Each missed one is still worth sending until the next takes over; those already past
    when the task is planned are left out (the owner has just been told)."""
    offsets = [*TASK_NUDGE_DAYS, *range(TASK_WEEKLY_FROM, TASK_WEEKLY_UNTIL + 1, 7)]
    moments: list[Moment] = []
    for position, offset in enumerate(offsets):
        due = _at(due_on + timedelta(days=offset), TASK_NUDGE_TIME, zone)
        following = offsets[position + 1 : position + 2]
        expires = (
            _at(due_on + timedelta(days=following[0]), TASK_NUDGE_TIME, zone)
            if following
            else due + timedelta(days=7)
        )
        if due > now:
            moments.append(Moment(_offset_name(offset), due, expires))
    return moments


def _offset_name(offset: int) -> str:
    if offset < 0:
        return f"before-{-offset}d"
    return "due" if offset == 0 else f"over-{offset}d"


def task_alert(due_on: date, zone: ZoneInfo) -> Moment:
    """The coordinator's alert at 7 days overdue, worth sending late as long as it is open."""
    due = _at(due_on + timedelta(days=TASK_ALERT_DAYS), TASK_NUDGE_TIME, zone)
    return Moment("alert", due, due + timedelta(days=30))


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day if it is shorter."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for number in range(day.day, 0, -1):  # 30 November + 3 months: the end of February
        try:
            return date(year, month, number)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def review_by(held_on: date) -> date:
    """The review conference meets at the latest three months after the conference."""
    return add_months(held_on, REVIEW_WITHIN_MONTHS)


# How far ahead a typed date may be. "31.12.9999" is the usual "no end" of administrative
# systems, and "2207" a typo for 2027: neither is a plan anyone will keep, and the arithmetic of
# nudges and reminders overflows near the year 9999. A plan's tasks are looked at again at the
# review, within three months; two years leaves room for long ones (a school year and the next,
# a course of therapy) and still catches the typos.
TASK_DUE_WITHIN_MONTHS = 24
# The method proposes the review within three months; six leave room for summer holidays, a
# court hearing or a stay to wait for, and still refuse a date in the wrong year.
REVIEW_AHEAD_MONTHS = 6


def latest_due(today: date) -> date:
    """The latest due date a task of the plan may be given."""
    return add_months(today, TASK_DUE_WITHIN_MONTHS)


def latest_review(today: date) -> date:
    """The latest day the review conference may be fixed for."""
    return add_months(today, REVIEW_AHEAD_MONTHS)


def weekly_digest(now: datetime, zone: ZoneInfo) -> Moment:
    """The coordinators' digest: the next Monday 08:00 local after now. Planned a week ahead,
    so one missed while the bot was down is still sent late, until the end of that Monday; one
    planned for the first time on a Monday afternoon waits for the next Monday."""
    local = now.astimezone(zone)
    day = local.date() + timedelta(days=(DIGEST_WEEKDAY - local.weekday()) % 7)
    due = _at(day, DIGEST_TIME, zone)
    if due <= now:
        day += timedelta(days=7)
        due = _at(day, DIGEST_TIME, zone)
    return Moment(day.isoformat(), due, _at(day + timedelta(days=1), time(0), zone))
