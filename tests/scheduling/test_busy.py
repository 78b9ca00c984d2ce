"""Busy-time import from .ics files as Outlook and Google export them."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduling.busy import MAX_BYTES, MAX_INTERVALS, BusyImportError, BusyRead, busy_intervals

PRAGUE = ZoneInfo("Europe/Prague")
# Monday 2 March 2026 to Monday 6 April 2026, across the change to summer time on 29 March.
START = datetime(2026, 3, 2, tzinfo=PRAGUE)
END = datetime(2026, 4, 6, tzinfo=PRAGUE)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def prague(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=PRAGUE).timestamp())


def ics(*lines: str) -> bytes:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *lines,
                        "END:VCALENDAR", ""]).encode()  # fmt: skip


def event(*lines: str) -> list[str]:
    uid = [] if any(line.startswith("UID:") for line in lines) else [f"UID:{abs(hash(lines))}"]
    return ["BEGIN:VEVENT", *uid, "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"]


def busy(data: bytes) -> list[tuple[int, int]]:
    return busy_intervals(data, start=START, end=END, zone=PRAGUE).intervals


OUTLOOK = "\r\n".join(
    [
        "\ufeffBEGIN:VCALENDAR",
        "PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN",
        "VERSION:2.0",
        "METHOD:PUBLISH",
        "X-MS-OLK-FORCEINSPECTOROPEN:TRUE",
        "BEGIN:VTIMEZONE",
        "TZID:Central Europe Standard Time",
        "BEGIN:STANDARD",
        "DTSTART:16011028T030000",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "END:STANDARD",
        "BEGIN:DAYLIGHT",
        "DTSTART:16010325T020000",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "END:DAYLIGHT",
        "END:VTIMEZONE",
        "BEGIN:VEVENT",
        "CLASS:PUBLIC",
        "CREATED:20260210T101500Z",
        "DESCRIPTION:Porada týmu\\n",
        'DTEND;TZID="Central Europe Standard Time":20260303T103000',
        "DTSTAMP:20260210T101500Z",
        'DTSTART;TZID="Central Europe Standard Time":20260303T090000',
        "LOCATION:Zasedačka",
        "PRIORITY:5",
        "SEQUENCE:0",
        "SUMMARY;LANGUAGE=cs:Porada",
        "TRANSP:OPAQUE",
        "UID:040000008200E00074C5B7101A82E00800000000A0B1C2D3E4F5",
        "X-MICROSOFT-CDO-BUSYSTATUS:BUSY",
        "END:VEVENT",
        "BEGIN:VEVENT",
        'DTEND;TZID="Central Europe Standard Time":20260331T110000',
        "DTSTAMP:20260210T101500Z",
        'DTSTART;TZID="Central Europe Standard Time":20260331T100000',
        "SUMMARY:Po změně času",
        "UID:040000008200E00074C5B7101A82E00800000000A0B1C2D3E4F6",
        "X-MICROSOFT-CDO-BUSYSTATUS:OOF",
        "END:VEVENT",
        "BEGIN:VEVENT",
        'DTEND;TZID="Central Europe Standard Time":20260304T110000',
        "DTSTAMP:20260210T101500Z",
        'DTSTART;TZID="Central Europe Standard Time":20260304T100000',
        "SUMMARY:Volno v kalendáři",
        "UID:040000008200E00074C5B7101A82E00800000000A0B1C2D3E4F7",
        "X-MICROSOFT-CDO-BUSYSTATUS:FREE",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
).encode()


def test_an_outlook_export_with_a_windows_time_zone_is_read_in_that_zone() -> None:
    assert busy(OUTLOOK) == [
        (prague(2026, 3, 3, 9, 0), prague(2026, 3, 3, 10, 30)),  # CET: 08:00-09:30 UTC
        (utc(2026, 3, 31, 8, 0), utc(2026, 3, 31, 9, 0)),  # CEST after the change
    ]
    assert busy(OUTLOOK)[0] == (utc(2026, 3, 3, 8, 0), utc(2026, 3, 3, 9, 30))


GOOGLE = ics(
    "X-WR-CALNAME:Práce",
    "X-WR-TIMEZONE:Europe/Prague",
    # Weekly on Tuesdays 13:00-14:00 UTC from 3 March; 10 March is cancelled (EXDATE); the
    # 17 March one was moved to Wednesday 18 March 07:00-08:00 UTC (RECURRENCE-ID).
    *event(
        "UID:weekly@google.com",
        "DTSTART:20260303T130000Z",
        "DTEND:20260303T140000Z",
        "RRULE:FREQ=WEEKLY;BYDAY=TU;UNTIL=20260325T000000Z",
        "EXDATE:20260310T130000Z",
        "SUMMARY:Supervize",
    ),
    *event(
        "UID:weekly@google.com",
        "RECURRENCE-ID:20260317T130000Z",
        "DTSTART:20260318T070000Z",
        "DTEND:20260318T080000Z",
        "SUMMARY:Supervize (přesunuto)",
    ),
)


def test_a_google_export_expands_the_rule_without_the_exdate_and_with_the_moved_instance() -> None:
    assert busy(GOOGLE) == [
        (utc(2026, 3, 3, 13, 0), utc(2026, 3, 3, 14, 0)),
        (utc(2026, 3, 18, 7, 0), utc(2026, 3, 18, 8, 0)),
        (utc(2026, 3, 24, 13, 0), utc(2026, 3, 24, 14, 0)),
    ]


def test_an_all_day_event_is_busy_for_the_whole_local_days() -> None:
    data = ics(*event("DTSTART;VALUE=DATE:20260312", "DTEND;VALUE=DATE:20260314"))
    assert busy(data) == [(prague(2026, 3, 12, 0, 0), prague(2026, 3, 14, 0, 0))]
    # without DTEND it is one day; across the change to summer time the day is 23 hours long
    data = ics(*event("DTSTART;VALUE=DATE:20260329"))
    assert busy(data) == [(prague(2026, 3, 29), prague(2026, 3, 30))]
    assert prague(2026, 3, 30) - prague(2026, 3, 29) == 23 * 3600


def test_transparent_and_cancelled_events_are_not_busy() -> None:
    data = ics(
        *event("DTSTART;VALUE=DATE:20260312", "TRANSP:TRANSPARENT"),
        *event("DTSTART:20260305T090000Z", "DTEND:20260305T100000Z", "STATUS:CANCELLED"),
        *event("DTSTART:20260306T090000Z", "DTEND:20260306T100000Z", "STATUS:CONFIRMED"),
    )
    assert busy(data) == [(utc(2026, 3, 6, 9, 0), utc(2026, 3, 6, 10, 0))]


def test_floating_times_are_local_and_intervals_are_clipped_and_merged() -> None:
    data = ics(
        *event("DTSTART:20260305T090000", "DTEND:20260305T100000"),  # floating
        *event("DTSTART:20260305T083000Z", "DTEND:20260305T120000Z"),  # overlaps it
        *event("DTSTART:20260305T120000Z", "DTEND:20260305T130000Z"),  # adjacent
        *event("DTSTART:20260301T220000Z", "DTEND:20260302T010000Z"),  # begins before START
        *event("DTSTART:20260406T090000Z", "DTEND:20260406T100000Z"),  # after END
        *event("DTSTART:20260307T090000Z", "DURATION:PT45M"),
        *event("DTSTART:20260308T090000Z"),  # no length: not busy
    )
    assert busy(data) == [
        (prague(2026, 3, 2, 0, 0), utc(2026, 3, 2, 1, 0)),
        (prague(2026, 3, 5, 9, 0), utc(2026, 3, 5, 13, 0)),
        (utc(2026, 3, 7, 9, 0), utc(2026, 3, 7, 9, 45)),
    ]


def test_freebusy_periods_of_busy_types_count() -> None:
    data = ics(
        "BEGIN:VFREEBUSY",
        "DTSTAMP:20260101T000000Z",
        "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20260304T080000Z/20260304T090000Z,20260305T080000Z/PT30M",
        "FREEBUSY:20260306T080000Z/20260306T090000Z",
        "FREEBUSY;FBTYPE=FREE:20260307T080000Z/20260307T090000Z",
        "END:VFREEBUSY",
    )
    assert busy(data) == [
        (utc(2026, 3, 4, 8, 0), utc(2026, 3, 4, 9, 0)),
        (utc(2026, 3, 5, 8, 0), utc(2026, 3, 5, 8, 30)),
        (utc(2026, 3, 6, 8, 0), utc(2026, 3, 6, 9, 0)),
    ]


def test_nothing_but_numbers_is_kept() -> None:
    for first, last in busy(OUTLOOK) + busy(GOOGLE):
        assert type(first) is int and type(last) is int


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02\xff\xfe garbage",
        b"\xc3\x28 not utf-8",
        b"hello, this is a text file\n",
        b"BEGIN:VEVENT\r\nDTSTART:20260305T090000Z\r\nEND:VEVENT\r\n",  # no VCALENDAR
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n",  # cut short
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
    ],
)
def test_broken_input_is_not_a_calendar(data: bytes) -> None:
    with pytest.raises(BusyImportError) as caught:
        busy(data)
    assert caught.value.reason == "not_calendar"


def test_a_broken_event_is_skipped_and_the_rest_is_kept() -> None:
    data = ics(
        *event("DTSTART:garbage", "DTEND:20260305T100000Z"),
        *event("DTSTART:20260306T090000Z", "DTEND:20260306T100000Z"),
    )
    assert busy_intervals(data, start=START, end=END, zone=PRAGUE) == BusyRead(
        [(utc(2026, 3, 6, 9, 0), utc(2026, 3, 6, 10, 0))], skipped=1
    )


def test_a_good_file_skips_nothing() -> None:
    assert busy_intervals(GOOGLE, start=START, end=END, zone=PRAGUE).skipped == 0
    assert busy_intervals(OUTLOOK, start=START, end=END, zone=PRAGUE).skipped == 0


@pytest.mark.parametrize(
    "broken",
    [
        ["DTSTART;VALUE=DATE:99991231"],  # its end, the next day, is past what Python counts
        ["DTSTART:99991231T230000Z", "DURATION:PT2H"],
        ["DTSTART:20260305T090000Z", "DURATION:P9999999D"],  # some 27,000 years
    ],
    ids=["all-day on 31 December 9999", "into the year 10000", "lasting 27,000 years"],
)
def test_an_event_at_the_end_of_time_is_skipped_and_the_rest_is_kept(broken: list[str]) -> None:
    data = ics(
        *event("DTSTART:20260304T090000Z", "DTEND:20260304T100000Z"),
        *event(*broken),
        *event("DTSTART;VALUE=DATE:20260312", "DTEND;VALUE=DATE:20260313"),
    )
    assert busy_intervals(data, start=START, end=END, zone=PRAGUE) == BusyRead(
        [
            (utc(2026, 3, 4, 9, 0), utc(2026, 3, 4, 10, 0)),
            (prague(2026, 3, 12), prague(2026, 3, 13)),
        ],
        skipped=1,
    )


def test_a_broken_moved_instance_skips_its_whole_series_once() -> None:
    # The library reads a recurring event with its moved instances as one series; a broken
    # instance (two starts) costs the series, counted once, and not the next event.
    data = ics(
        *event(
            "UID:weekly",
            "DTSTART:20260303T130000Z",
            "DTEND:20260303T140000Z",
            "RRULE:FREQ=WEEKLY;COUNT=4",
        ),
        *event(
            "UID:weekly",
            "RECURRENCE-ID:20260310T130000Z",
            "DTSTART:20260311T070000Z",
            "DTSTART:20260311T080000Z",
            "DTEND:20260311T090000Z",
        ),
        *event("UID:other", "DTSTART:20260306T090000Z", "DTEND:20260306T100000Z"),
    )
    assert busy_intervals(data, start=START, end=END, zone=PRAGUE) == BusyRead(
        [(utc(2026, 3, 6, 9, 0), utc(2026, 3, 6, 10, 0))], skipped=1
    )


# Calendar files nobody here wrote: test files of the icalendar project (see calendars/README.md).
# The recurrence library gave up on each of them whole, so the file was "not a calendar".

CALENDARS = Path(__file__).parent / "calendars"


def real(name: str) -> bytes:
    return (CALENDARS / name).read_bytes()


def read_years(data: bytes, first: int, last: int) -> BusyRead:
    return busy_intervals(
        data, start=datetime(first, 1, 1, tzinfo=UTC), end=datetime(last, 1, 1, tzinfo=UTC),
        zone=PRAGUE,
    )  # fmt: skip


def test_events_without_a_start_are_skipped_and_the_rest_is_kept() -> None:
    # Plone's export: a good event, one without an end (a moment, not busy), one empty.
    read = read_years(real("created_calendar_with_unicode_fields.ics"), 2010, 2011)
    assert read == BusyRead([(utc(2010, 10, 10, 10, 0), utc(2010, 10, 10, 12, 0))], skipped=1)
    # One event starting in New York and ending in Los Angeles, with an extra two-hour
    # occurrence in Berlin (RDATE;VALUE=PERIOD); an instance and an event with no DTSTART.
    read = read_years(real("issue_722_missing_timezones.ics"), 2014, 2025)
    assert read == BusyRead(
        [
            (utc(2014, 8, 29, 12, 0), utc(2014, 8, 29, 15, 0)),  # 8:00 EDT to 8:00 PDT
            (utc(2024, 9, 13, 10, 0), utc(2024, 9, 13, 12, 0)),  # 12:00 CEST for two hours
        ],
        skipped=2,
    )


@pytest.mark.parametrize(
    ("name", "skipped"),
    [
        ("pacific_fiji.ics", 1),  # an event with two DTSTART lines, after a custom time zone
        ("multiple_timezones.ics", 3),  # three events with an RDATE;VALUE=TIME (a time, no day)
    ],
)
def test_a_file_of_broken_events_is_read_as_one_with_none_busy(name: str, skipped: int) -> None:
    assert read_years(real(name), 2000, 2030) == BusyRead([], skipped=skipped)
    # and an event beside them is kept
    good = "\r\n".join(event("UID:good", "DTSTART:20210302T090000Z", "DURATION:PT1H"))
    data = real(name).replace(b"END:VCALENDAR", good.encode() + b"\r\nEND:VCALENDAR")
    assert read_years(data, 2000, 2030) == BusyRead(
        [(utc(2021, 3, 2, 9, 0), utc(2021, 3, 2, 10, 0))], skipped=skipped
    )


def test_a_file_too_big_is_refused_before_parsing() -> None:
    data = b"x" * (MAX_BYTES + 1)  # not even a calendar: the size is checked first
    with pytest.raises(BusyImportError) as caught:
        busy(data)
    assert caught.value.reason == "too_big"


def test_too_many_intervals_are_refused() -> None:
    # Every 9 minutes for 35 days is 5,600 occurrences.
    data = ics(
        *event("DTSTART:20260302T000000Z", "DURATION:PT1M", "RRULE:FREQ=MINUTELY;INTERVAL=9")
    )
    with pytest.raises(BusyImportError) as caught:
        busy(data)
    assert caught.value.reason == "too_many"
    assert MAX_INTERVALS < 35 * 24 * 60 // 9


def test_a_rule_too_costly_to_expand_is_refused_at_once() -> None:
    # Every second since 2000: dateutil would walk hundreds of millions of steps.
    data = ics(*event("DTSTART:20000101T000000Z", "DURATION:PT1S", "RRULE:FREQ=SECONDLY"))
    with pytest.raises(BusyImportError) as caught:
        busy(data)
    assert caught.value.reason == "too_many"


def test_a_long_running_weekly_meeting_is_fine() -> None:
    data = ics(
        *event(
            "DTSTART;TZID=Europe/Prague:20100105T090000",
            "DTEND;TZID=Europe/Prague:20100105T100000",
            "RRULE:FREQ=WEEKLY;BYDAY=TU",
        )
    )
    intervals = busy(data)
    assert len(intervals) == 5
    assert intervals[-1] == (prague(2026, 3, 31, 9, 0), prague(2026, 3, 31, 10, 0))


# Hostile files: each is refused, and reading it stays small in memory.


def peak_bytes(data: bytes) -> tuple[str, int]:
    """The refusal of `data` and the most memory reading it took."""
    tracemalloc.start()
    try:
        busy(data)
    except BusyImportError as error:
        return error.reason, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    raise AssertionError("the file was accepted")


def test_a_rule_without_an_end_is_refused_before_it_is_all_expanded() -> None:
    # Every five minutes from the start, no COUNT or UNTIL: 10,080 occurrences in the span.
    data = ics(
        *event("DTSTART:20260302T000000Z", "DURATION:PT1M", "RRULE:FREQ=MINUTELY;INTERVAL=5")
    )
    reason, peak = peak_bytes(data)
    assert reason == "too_many"
    assert peak < 10_000_000  # all of them made at once took 22 MB


def zipped(name: str, size: int) -> bytes:
    """A zip archive of `size` zero bytes (a "zip bomb": a thousand times smaller)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(name, b"\x00" * size)
    return archive.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


@pytest.mark.parametrize(
    "data",
    [
        zipped("calendar.ics", 50_000_000),
        PNG,
        b"BEGIN:VCALENDAR\r\n" + b"BEGIN:X\r\n" * 50_000 + b"END:X\r\n" * 50_000,
        b"BEGIN:VCALENDAR\r\n" + b"X-A;" + b"P=1;" * 100_000 + b":y\r\nEND:VCALENDAR\r\n",
    ],
    ids=["zip bomb", "png", "deep nesting", "endless parameters"],
)
def test_hostile_files_are_not_calendars(data: bytes) -> None:
    assert len(data) < MAX_BYTES
    with pytest.raises(BusyImportError) as caught:
        busy(data)
    assert caught.value.reason == "not_calendar"
