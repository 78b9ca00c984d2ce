"""iCalendar invitations to a case conference (METHOD:REQUEST and CANCEL) that calendars accept.

Everything is written by the `icalendar` library, never by hand: it escapes text, quotes
parameters, folds lines at 75 octets and ends them with CRLF. Times are given in the district's
zone with a VTIMEZONE written as yearly rules (Outlook misreads zones given as lists of dates,
which is what `icalendar` itself would write), or in UTC when the zone's changes cannot be put as
such rules.
"""

from __future__ import annotations

import calendar
import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import (
    Calendar,
    Timezone,
    TimezoneDaylight,
    TimezoneStandard,
    vCalAddress,
    vRecur,
)
from icalendar import Event as VEvent

PRODID = "-//Round Table//Case conferences//EN"
FILE_MIME_REQUEST = "text/calendar; method=REQUEST"
FILE_MIME_CANCEL = "text/calendar; method=CANCEL"
ROLES = frozenset({"CHAIR", "REQ-PARTICIPANT", "OPT-PARTICIPANT"})
PARTSTATS = frozenset({"NEEDS-ACTION", "ACCEPTED", "TENTATIVE", "DECLINED"})

# Everything Python's str.splitlines() breaks at: readers that split on these would otherwise see
# a new content line in the middle of a text, so they become plain new lines, which are escaped.
_LINE_BREAK = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# Control characters (other than new line and tab) and lone surrogates are not allowed in
# iCalendar text at all.
_ILLEGAL = frozenset({"Cc", "Cs"})
# A zone whose offset never changes: its one observance starts long before any conference.
_EPOCH = datetime(1970, 1, 1)
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True)
class Attendee:
    """An invitee: e-mail address without "mailto:", name (CN), ROLE and PARTSTAT."""

    address: str
    name: str
    role: str
    partstat: str


@dataclass(frozen=True)
class Event:
    """One case conference as calendars see it; `uid` is stable, `sequence` grows on change."""

    uid: str
    sequence: int
    starts_at: datetime
    minutes: int
    summary: str
    description: str
    location: str
    organizer_address: str
    organizer_name: str
    attendees: tuple[Attendee, ...]
    zone: ZoneInfo
    stamp: datetime

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.minutes)


def request(event: Event) -> bytes:
    """The invitation (METHOD:REQUEST, STATUS:CONFIRMED), also for every reschedule; send it
    as a file of type FILE_MIME_REQUEST. Attendees other than the chair are asked to reply."""
    return _ics(_calendar(event, "REQUEST", "CONFIRMED"))


def cancel(event: Event) -> bytes:
    """The cancellation (METHOD:CANCEL, STATUS:CANCELLED) of the conference with the event's
    UID; the caller passes the raised SEQUENCE. Send it as a file of type FILE_MIME_CANCEL."""
    return _ics(_calendar(event, "CANCEL", "CANCELLED"))


def _ics(cal: Calendar) -> bytes:
    data: bytes = cal.to_ical()  # folded at 75 octets, CRLF line ends
    return data


def _calendar(event: Event, method: str, status: str) -> Calendar:
    _check(event)
    vtimezone = _vtimezone(event.zone, event.starts_at, event.ends_at)
    # Without a VTIMEZONE the times are written in UTC, which every calendar reads the same.
    zone = event.zone if vtimezone is not None else UTC
    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("CALSCALE", "GREGORIAN")
    cal.add("METHOD", method)
    if vtimezone is not None:
        cal.add_component(vtimezone)
    vevent = VEvent()
    vevent.add("UID", _text(event.uid))
    vevent.add("SEQUENCE", event.sequence)
    vevent.add("DTSTAMP", event.stamp.astimezone(UTC).replace(microsecond=0))
    vevent.add("DTSTART", event.starts_at.astimezone(zone).replace(microsecond=0))
    vevent.add("DTEND", event.ends_at.astimezone(zone).replace(microsecond=0))
    vevent.add("SUMMARY", _text(event.summary))
    vevent.add("DESCRIPTION", _text(event.description))
    vevent.add("LOCATION", _text(event.location))
    vevent.add(
        "ORGANIZER",
        vCalAddress.new(_address(event.organizer_address), cn=_parameter(event.organizer_name)),
    )
    for attendee in event.attendees:
        # Nobody answers a cancellation, and the chair need not answer their own conference.
        asks_reply = method == "REQUEST" and attendee.role != "CHAIR"
        vevent.add(
            "ATTENDEE",
            vCalAddress.new(
                _address(attendee.address),
                cn=_parameter(attendee.name),
                cutype="INDIVIDUAL",
                role=attendee.role,
                partstat=attendee.partstat,
                rsvp=asks_reply,
            ),
        )
    vevent.add("STATUS", status)
    vevent.add("TRANSP", "OPAQUE")
    cal.add_component(vevent)
    return cal


def _check(event: Event) -> None:
    if event.starts_at.utcoffset() is None or event.stamp.utcoffset() is None:
        raise ValueError("starts_at and stamp must be aware datetimes")
    if event.minutes <= 0:
        raise ValueError("a conference lasts at least a minute")
    if event.sequence < 0:
        raise ValueError("SEQUENCE starts at 0")
    for attendee in event.attendees:
        if attendee.role not in ROLES or attendee.partstat not in PARTSTATS:
            raise ValueError(f"unknown ROLE or PARTSTAT: {attendee.role}, {attendee.partstat}")


def _text(value: str) -> str:
    """Text that iCalendar can carry: line breaks as new lines, no control characters."""
    value = _LINE_BREAK.sub("\n", value)
    return "".join(
        char for char in value if char in "\n\t" or unicodedata.category(char) not in _ILLEGAL
    )


def _parameter(value: str) -> str:
    """A parameter value (CN) every reader takes as it is: one line, and none of the characters
    that icalendar would encode the RFC 6868 way (", ^, new line), which Outlook does not decode.
    """
    value = _text(value).replace("\n", " ").replace("\t", " ")
    return value.replace('"', "'").replace("^", "\u02c6")


def _address(value: str) -> str:
    address = "".join(
        char for char in value if not char.isspace() and unicodedata.category(char) not in _ILLEGAL
    )
    if not address:
        raise ValueError("an e-mail address is needed for ORGANIZER and every ATTENDEE")
    return f"mailto:{address}"


@dataclass(frozen=True)
class _Rule:
    """A yearly change of a zone's offset: on the `nth` (-1: last) `weekday` (0: Monday) of
    `month` at the local wall-clock time `wall`, read in the offset before the change."""

    month: int
    weekday: int
    nth: int
    wall: time
    offset_from: timedelta
    offset_to: timedelta
    name: str

    def onset(self, year: int) -> datetime:
        """The local wall-clock time of the change in `year` (naive, as VTIMEZONE writes it)."""
        first, days = calendar.monthrange(year, self.month)
        first_day = 1 + (self.weekday - first) % 7
        if self.nth > 0:
            day = first_day + 7 * (self.nth - 1)
        else:
            day = first_day + 7 * ((days - first_day) // 7)
        return datetime.combine(date(year, self.month, day), self.wall)

    def instant(self, year: int) -> datetime:
        return (self.onset(year) - self.offset_from).replace(tzinfo=UTC)


def _vtimezone(zone: ZoneInfo, starts: datetime, ends: datetime) -> Timezone | None:
    """The VTIMEZONE that gives the start and the end of the event as zoneinfo does, or None
    when the times had better be written in UTC."""
    if not zone.key or not all(_unambiguous(zone, moment) for moment in (starts, ends)):
        return None
    year = starts.astimezone(zone).year
    rules = _rules(zone, year)
    if rules is None:
        return None
    if not rules:
        return _fixed_zone(zone, starts, ends)
    # The rules are read off the event's year; they start in the year before, so that the
    # change before the first one of the event's year is known too.
    if any(
        _offset(rules, year, moment) != moment.astimezone(zone).utcoffset()
        for moment in (starts, ends)
    ):
        return None
    daylight = max(rule.offset_to for rule in rules)
    vtimezone = Timezone()
    vtimezone.add("TZID", zone.key)
    for rule in rules:
        observance = TimezoneDaylight() if rule.offset_to == daylight else TimezoneStandard()
        observance.add("DTSTART", rule.onset(year - 1))
        observance.add("TZOFFSETFROM", rule.offset_from)
        observance.add("TZOFFSETTO", rule.offset_to)
        observance.add("TZNAME", rule.name)
        observance.add("RRULE", _recurrence(rule))
        vtimezone.add_component(observance)
    return vtimezone


def _unambiguous(zone: ZoneInfo, moment: datetime) -> bool:
    """Whether the local wall-clock time of `moment` happens once: a time in the hour repeated
    when the clocks go back cannot be told apart in a VTIMEZONE's terms."""
    local = moment.astimezone(zone)
    return local.utcoffset() == local.replace(fold=1 - local.fold).utcoffset()


def _fixed_zone(zone: ZoneInfo, starts: datetime, ends: datetime) -> Timezone | None:
    offset = starts.astimezone(zone).utcoffset()
    if offset is None or ends.astimezone(zone).utcoffset() != offset:
        return None
    standard = TimezoneStandard()
    standard.add("DTSTART", _EPOCH)
    standard.add("TZOFFSETFROM", offset)
    standard.add("TZOFFSETTO", offset)
    standard.add("TZNAME", starts.astimezone(zone).tzname() or zone.key)
    vtimezone = Timezone()
    vtimezone.add("TZID", zone.key)
    vtimezone.add_component(standard)
    return vtimezone


def _recurrence(rule: _Rule) -> vRecur:
    return vRecur(
        {"FREQ": "YEARLY", "BYMONTH": rule.month, "BYDAY": f"{rule.nth}{_WEEKDAYS[rule.weekday]}"}
    )


def _offset(rules: tuple[_Rule, ...], year: int, moment: datetime) -> timedelta | None:
    """The offset the rules give at `moment`, from their first onsets in the year before
    `year` on; None before any of them."""
    onsets = sorted(
        (rule.instant(each), rule.offset_to)
        for rule in rules
        for each in range(year - 1, moment.year + 2)
    )
    passed = [offset for instant, offset in onsets if instant <= moment]
    return passed[-1] if passed else None


@functools.cache
def _rules(zone: ZoneInfo, year: int) -> tuple[_Rule, ...] | None:
    """The zone's changes in `year` as yearly rules: none for a zone that keeps one offset, a
    change there and one back for daylight-saving time, None when they are anything else."""
    changes = _changes(zone, year)
    if not changes:
        return ()
    if len(changes) != 2:
        return None
    (_, there_from, there_to, _), (_, back_from, back_to, _) = changes
    if (there_from, there_to) != (back_to, back_from):
        return None
    return tuple(_rule(*change) for change in changes)


def _rule(at: datetime, before: timedelta, after: timedelta, name: str) -> _Rule:
    wall = (at + before).replace(tzinfo=None)
    days = calendar.monthrange(wall.year, wall.month)[1]
    nth = -1 if wall.day + 7 > days else (wall.day - 1) // 7 + 1
    return _Rule(wall.month, wall.weekday(), nth, wall.time(), before, after, name)


def _changes(zone: ZoneInfo, year: int) -> list[tuple[datetime, timedelta, timedelta, str]]:
    """The moments (UTC) in `year` when the zone's offset changes, with the offsets before and
    after and the zone's name after: found day by day, then to the second."""
    changes = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    offset = _utcoffset(zone, day)
    while day.year == year:
        following = day + timedelta(days=1)
        next_offset = _utcoffset(zone, following)
        if next_offset != offset:
            at = _change_within(zone, day, following)
            changes.append((at, offset, next_offset, at.astimezone(zone).tzname() or zone.key))
        day, offset = following, next_offset
    return changes


def _change_within(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first second at which the offset differs from the one at `before`."""
    offset = _utcoffset(zone, before)
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) // 2
        if _utcoffset(zone, middle) == offset:
            before = middle
        else:
            after = middle
    return after


def _utcoffset(zone: ZoneInfo, moment: datetime) -> timedelta:
    return moment.astimezone(zone).utcoffset() or timedelta()
