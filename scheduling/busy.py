"""Busy times from a calendar file (.ics): start and end of each busy period, nothing else."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import recurring_ical_events  # type: ignore[import-untyped]
from icalendar import Calendar, Component, Event

if TYPE_CHECKING:  # numpy, which slots needs, is not needed here (see bot/core/calendar_reader.py)
    from scheduling.slots import Interval

MAX_BYTES = 2_000_000
MAX_INTERVALS = 5_000
# Recurrence rules are expanded by dateutil from their first occurrence on, eagerly, at a few
# microseconds a step: a one-line FREQ=SECONDLY rule in an uploaded file would otherwise stall
# the bot for minutes. Rules whose expansion would take more steps than this in total (about a
# second of work) make the file "too_many" before anything is expanded.
MAX_RULE_STEPS = 400_000
_FREQUENCY_SECONDS = {
    "SECONDLY": 1,
    "MINUTELY": 60,
    "HOURLY": 3600,
    "DAILY": 86400,
    "WEEKLY": 7 * 86400,
    "MONTHLY": 28 * 86400,  # the shortest month: an upper bound on the steps
    "YEARLY": 365 * 86400,
}
_EXPANDING_PARTS = (
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
)
# Edges are expanded a day wider and clipped here, so that all-day and floating events, which the
# library places by its own reading of the zone, are never lost at the ends of the span.
_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class BusyRead:
    """What a calendar file says: its busy `intervals`, and how many of its events (a recurring
    event with its moved instances counts once) could not be read and were left out."""

    intervals: list[Interval]
    skipped: int = 0


class BusyImportError(Exception):
    """A file that cannot be used; `reason` is "too_big", "not_calendar" or "too_many"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def busy_intervals(data: bytes, *, start: datetime, end: datetime, zone: ZoneInfo) -> BusyRead:
    """The busy periods of an iCalendar file between `start` and `end` (aware datetimes), as
    sorted, merged UTC unix-second intervals clipped to [start, end), and the number of events
    skipped as unreadable (no start, two starts, dates past the year 9999, ...): one broken
    event does not cost the rest of the file.

    Events count unless transparent (TRANSP:TRANSPARENT, or Outlook's busy status FREE) or
    cancelled; recurring events are expanded (RRULE, RDATE, EXDATE, moved instances); all-day
    events are busy for the whole local day(s) in `zone`, and floating times are read in
    `zone`. VFREEBUSY periods of a BUSY* type count too. Only the times are kept: titles,
    descriptions and attendees are never looked at.
    """
    if len(data) > MAX_BYTES:
        raise BusyImportError("too_big")
    try:
        return _busy(data, start, end, zone)
    except BusyImportError:
        raise
    except Exception as error:
        # icalendar and the recurrence library raise all kinds of errors on broken input
        # (ValueError, AttributeError, RecursionError, their own); for us it is all one answer.
        raise BusyImportError("not_calendar") from error


def _busy(data: bytes, start: datetime, end: datetime, zone: ZoneInfo) -> BusyRead:
    calendar = _parse(data)
    lower, upper = int(start.timestamp()), int(end.timestamp())
    if lower >= upper:
        return BusyRead([])
    _check_rules(calendar, upper, zone)
    periods, skipped = _event_periods(calendar, start - _MARGIN, end + _MARGIN, zone)
    for freebusy in calendar.walk("VFREEBUSY"):
        periods.extend(_busy_periods(freebusy.get("FREEBUSY"), zone))
    found: list[Interval] = []
    for begins, ends in periods:
        first, last = max(begins, lower), min(ends, upper)
        if first < last:
            found.append((first, last))
    return BusyRead(_merged(found), skipped)


def _parse(data: bytes) -> Calendar:
    # Outlook starts its exports with a byte-order mark.
    calendar = Calendar.from_ical(data.decode("utf-8-sig"))
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise BusyImportError("not_calendar")
    return calendar


def _check_rules(calendar: Calendar, upper: int, zone: ZoneInfo) -> None:
    """Refuse files whose recurrence rules would take too long to expand."""
    steps = sum(_event_steps(event, upper, zone) for event in calendar.walk("VEVENT"))
    if steps > MAX_RULE_STEPS:
        raise BusyImportError("too_many")


def _event_steps(event: Component, upper: int, zone: ZoneInfo) -> int:
    rules = event.get("RRULE")
    if rules is None:
        return 0
    try:
        first, last = _span(event, zone)
        return sum(
            _rule_steps(rule, upper + (last - first) - first)
            for rule in (rules if isinstance(rules, list) else [rules])
        )
    except Exception:  # a broken event or an unreadable rule: skipped as a series, it costs nothing
        return 0


def _rule_steps(rule: Any, span: int) -> int:
    """An upper bound on the occurrences dateutil generates for `rule` over `span` seconds."""
    frequency = _FREQUENCY_SECONDS.get(str(_part(rule, "FREQ", "")).upper())
    if frequency is None or span < 0:
        return 0
    interval = max(int(_part(rule, "INTERVAL", 1)), 1)
    count = int(_part(rule, "COUNT", 0))
    per_period = math.prod(len(rule.get(part, [])) or 1 for part in _EXPANDING_PARTS)
    steps = (span // (frequency * interval) + 1) * per_period
    return min(steps, count) if count > 0 else steps


def _part(rule: Any, name: str, default: object) -> Any:
    values = rule.get(name)
    return values[0] if values else default


def _event_periods(
    calendar: Calendar, start: datetime, end: datetime, zone: ZoneInfo
) -> tuple[list[Interval], int]:
    """The busy periods of the events between `start` and `end`, recurrences expanded, and the
    number of series (an event with its moved instances) skipped as unreadable.

    The library collects every series of a calendar before it expands any, and an error it
    does not expect there (an event without DTSTART or with two, a date past the year 9999)
    ends the whole query; an RDATE of a time alone fails later, in the expansion. So each
    series goes to the library in a calendar of its own, with the file's calendar properties
    (X-WR-TIMEZONE) and time zones, and a series that fails at any step is left out whole.

    One series at a time also keeps the count cheap: more than MAX_INTERVALS occurrences (free
    ones too) make the file "too_many" as soon as they are counted, before the rest is made
    (the library's `between` would build them all first: a rule every minute for four months
    took seconds and 400 MB)."""
    frame = calendar.copy()  # the calendar's properties without its components
    timezones = [part for part in calendar.subcomponents if part.name == "VTIMEZONE"]
    periods: list[Interval] = []
    skipped = count = 0
    for events in _series(calendar):
        alone = frame.copy()
        alone.subcomponents = [*timezones, *events]
        found: list[Interval] = []
        try:
            for series in recurring_ical_events.of(alone).series:
                for occurrence in series.between(start, end):
                    count += 1
                    if count > MAX_INTERVALS:
                        raise BusyImportError("too_many")
                    event = occurrence.as_component(False)
                    if not _free(event):
                        found.append(_span(event, zone))
        except (BusyImportError, MemoryError):
            raise
        except Exception:  # the library and icalendar raise all kinds on broken events
            skipped += 1
            continue
        periods.extend(found)
    return periods, skipped


def _series(calendar: Calendar) -> list[list[Component]]:
    """The calendar's events grouped as the library groups them into series: by UID, a
    recurring event with its moved instances (RECURRENCE-ID). An event without a UID, or with
    more than one, is a series of its own."""
    series: dict[object, list[Component]] = {}
    for part in calendar.subcomponents:
        if part.name == "VEVENT":
            uid = part.get("UID")
            series.setdefault(uid if isinstance(uid, str) else id(part), []).append(part)
    return list(series.values())


def _span(event: Component, zone: ZoneInfo) -> Interval:
    """The event's start and end; icalendar raises several kinds for missing or malformed
    values."""
    if not isinstance(event, Event):
        raise TypeError(f"{event.name} is not an event")
    return _moment(event.start, zone), _moment(event.end, zone)


def _busy_periods(values: Any, zone: ZoneInfo) -> Iterable[Interval]:
    for period in values if isinstance(values, list) else [values] if values else []:
        if not str(period.params.get("FBTYPE", "BUSY")).upper().startswith("BUSY"):
            continue
        begins, ends = period.dt
        first = _moment(begins, zone)
        last = first + _seconds(ends) if isinstance(ends, timedelta) else _moment(ends, zone)
        yield first, last


def _free(event: Component) -> bool:
    return (
        str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT"
        or str(event.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper() == "FREE"
        or str(event.get("STATUS", "")).upper() == "CANCELLED"
    )


def _moment(value: date | datetime, zone: ZoneInfo) -> int:
    if not isinstance(value, datetime):  # a date of an all-day event: its local midnight
        value = datetime.combine(value, time(0), tzinfo=zone)
    elif value.tzinfo is None:  # a floating time: the district's
        value = value.replace(tzinfo=zone)
    return int(value.timestamp())


def _seconds(length: timedelta) -> int:
    return length.days * 86400 + length.seconds


def _merged(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for first, last in sorted(intervals):
        if merged and first <= merged[-1][1]:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged
