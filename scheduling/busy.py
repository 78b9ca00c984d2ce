"""Busy times from a calendar file (.ics): start and end of each busy period, nothing else."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import recurring_ical_events  # type: ignore[import-untyped]
from icalendar import Calendar, Component, Event

if TYPE_CHECKING:  # numpy, which slots needs, is not needed here (see bot/calendar_reader.py)
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


class BusyImportError(Exception):
    """A file that cannot be used; `reason` is "too_big", "not_calendar" or "too_many"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def busy_intervals(
    data: bytes, *, start: datetime, end: datetime, zone: ZoneInfo
) -> list[Interval]:
    """The busy periods of an iCalendar file between `start` and `end` (aware datetimes), as
    sorted, merged UTC unix-second intervals clipped to [start, end).

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


def _busy(data: bytes, start: datetime, end: datetime, zone: ZoneInfo) -> list[Interval]:
    calendar = _parse(data)
    lower, upper = int(start.timestamp()), int(end.timestamp())
    if lower >= upper:
        return []
    _check_rules(calendar, upper, zone)
    found: list[Interval] = []
    for begins, ends in _periods(calendar, start, end, zone):
        first, last = max(begins, lower), min(ends, upper)
        if first < last:
            found.append((first, last))
    return _merged(found)


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
    span = _span(event, zone)
    if rules is None or span is None:  # no rule, or a broken event: the library skips it
        return 0
    first, last = span
    try:
        return sum(
            _rule_steps(rule, upper + (last - first) - first)
            for rule in (rules if isinstance(rules, list) else [rules])
        )
    except Exception:  # an unreadable rule: the library skips that series, it costs nothing
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


def _periods(
    calendar: Calendar, start: datetime, end: datetime, zone: ZoneInfo
) -> Iterator[Interval]:
    for event in _occurrences(calendar, start - _MARGIN, end + _MARGIN):
        if _free(event):
            continue
        span = _span(event, zone)
        if span is not None:
            yield span
    for freebusy in calendar.walk("VFREEBUSY"):
        yield from _busy_periods(freebusy.get("FREEBUSY"), zone)


def _occurrences(calendar: Calendar, start: datetime, end: datetime) -> Iterator[Component]:
    """The events between `start` and `end`, recurrences expanded, one series at a time; more
    than MAX_INTERVALS of them (free ones too) make the file "too_many" as soon as they are
    counted, before the rest is made (the library's `between` would build them all first: a
    rule every minute for four months took seconds and 400 MB)."""
    query = recurring_ical_events.of(calendar, skip_bad_series=True)
    count = 0
    for series in query.series:
        try:  # a series that fails half-way is skipped whole, as the library's own query does
            occurrences = []
            for occurrence in series.between(start, end):
                occurrences.append(occurrence)
                count += 1
                if count > MAX_INTERVALS:
                    raise BusyImportError("too_many")
        except tuple(query.suppressed_errors):
            continue
        for occurrence in occurrences:
            yield occurrence.as_component(query.keep_recurrence_attributes)


def _span(event: Component, zone: ZoneInfo) -> Interval | None:
    """The event's start and end, or None for an event without a usable start (a broken one
    says nothing about time, and the rest of the file is still good)."""
    if not isinstance(event, Event):
        return None
    try:
        return _moment(event.start, zone), _moment(event.end, zone)
    except Exception:  # icalendar raises several kinds for missing or malformed values
        return None


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
