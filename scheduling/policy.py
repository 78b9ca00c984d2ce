"""When Round Table reminds and nudges people: pure rules over moments, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

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
