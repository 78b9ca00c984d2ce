"""The working calendar: which days and hours the district's offices work.

Weekdays, minus Czech public holidays (the `holidays` package), in the district's time zone, so
that "one working day later" is right across weekends, holidays and daylight-saving changes.
Working hours are wall-clock times; `day_bounds` turns them into UTC seconds for one local day.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

_EPOCH = date(1970, 1, 1).toordinal()


@functools.cache
def _czech_holidays() -> holidays.HolidayBase:
    # One table for every calendar: filling in a year's holidays takes milliseconds, and the
    # services build a calendar per request. Lookups only read it, except that the first one in
    # a new year adds that year's holidays.
    return holidays.country_holidays("CZ")


@dataclass(frozen=True)
class WorkingHours:
    """Office hours as local wall-clock times, start inclusive, end exclusive."""

    starts: time = time(8, 0)
    ends: time = time(16, 0)

    def intersect(self, other: WorkingHours) -> WorkingHours | None:
        """The hours both keep, or None when they do not overlap."""
        starts = max(self.starts, other.starts)
        ends = min(self.ends, other.ends)
        return WorkingHours(starts, ends) if starts < ends else None


@dataclass(frozen=True)
class WorkingCalendar:
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Prague"))
    day_starts: time = time(8, 0)
    day_ends: time = time(16, 0)
    _holidays: holidays.HolidayBase = field(
        default_factory=_czech_holidays, compare=False, repr=False
    )

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._holidays

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def add_working_days(self, moment: datetime, days: int) -> datetime:
        """The same wall-clock time `days` working days later (days >= 0)."""
        local = self.local(moment)
        day = self.add_working_days_to_date(local.date(), days)
        wall = datetime.combine(day, local.time().replace(tzinfo=None), tzinfo=self.zone)
        return wall.astimezone(moment.tzinfo)

    def is_working_time(self, moment: datetime) -> bool:
        local = self.local(moment)
        return self.is_working_day(local.date()) and self.day_starts <= local.time() < self.day_ends

    def next_working_moment(self, moment: datetime) -> datetime:
        """The moment itself in working hours, else the start of the next working hours."""
        if self.is_working_time(moment):
            return moment
        local = self.local(moment)
        day = local.date()
        if not (self.is_working_day(day) and local.time() < self.day_starts):
            day = self.next_working_day(day + timedelta(days=1))
        start = datetime.combine(day, self.day_starts, tzinfo=self.zone)
        return start.astimezone(moment.tzinfo)

    @property
    def hours(self) -> WorkingHours:
        return WorkingHours(self.day_starts, self.day_ends)

    def add_working_days_to_date(self, day: date, days: int) -> date:
        """The date `days` working days after `day` (days >= 0; 0 gives `day` itself)."""
        remaining = days
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def next_working_day(self, day: date) -> date:
        """`day` itself if it is a working day, else the first working day after it."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def working_days(self, first: date, last: date) -> list[date]:
        """The working days from `first` to `last`, both included."""
        days: list[date] = []
        day = first
        while day <= last:
            if self.is_working_day(day):
                days.append(day)
            day += timedelta(days=1)
        return days

    def planning_window(
        self, today: date, starts_after: int = 2, length: int = 15
    ) -> tuple[date, date]:
        """The default poll window (first, last), both included: it opens `starts_after`
        working days after `today` (Monday -> Wednesday) and is `length` working days long."""
        if length < 1:
            raise ValueError("a planning window is at least one working day long")
        # Counting from a weekend or holiday (starts_after == 0) must still open on a working day.
        first = self.next_working_day(self.add_working_days_to_date(today, starts_after))
        return first, self.add_working_days_to_date(first, length - 1)

    def day_bounds(self, day: date, hours: WorkingHours) -> tuple[int, int]:
        """Start and end of `hours` on the local `day`, as UTC unix seconds."""
        return self.timestamp(day, hours.starts), self.timestamp(day, hours.ends)

    def timestamp(self, day: date, wall: time) -> int:
        """The local wall-clock time `wall` on `day` as UTC unix seconds."""
        # The zone's offset at that wall-clock time (fold=0, as an aware datetime would have);
        # the arithmetic is the same as datetime.timestamp(), at half the cost, which counts
        # when the slot finder asks for three moments on each of 60 days.
        offset = self.zone.utcoffset(datetime.combine(day, wall)) or timedelta(0)
        seconds = wall.hour * 3600 + wall.minute * 60 + wall.second
        return (day.toordinal() - _EPOCH) * 86400 + seconds - offset.days * 86400 - offset.seconds
