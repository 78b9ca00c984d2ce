"""The working calendar: which days and hours the district's offices work.

Weekdays, minus Czech public holidays (the `holidays` package), in the district's time zone, so
that "one working day later" is right across weekends, holidays and daylight-saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays


@dataclass(frozen=True)
class WorkingCalendar:
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Prague"))
    day_starts: time = time(8, 0)
    day_ends: time = time(16, 0)
    _holidays: holidays.HolidayBase = field(
        default_factory=lambda: holidays.country_holidays("CZ"), compare=False, repr=False
    )

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._holidays

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def add_working_days(self, moment: datetime, days: int) -> datetime:
        """The same wall-clock time `days` working days later (days >= 0)."""
        local = self.local(moment)
        day = local.date()
        remaining = days
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
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
            day += timedelta(days=1)
            while not self.is_working_day(day):
                day += timedelta(days=1)
        start = datetime.combine(day, self.day_starts, tzinfo=self.zone)
        return start.astimezone(moment.tzinfo)
