"""Calendar files are read in a child process that is stopped when its time is up."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.core.calendar_reader import read_busy
from scheduling.busy import MAX_BYTES, BusyImportError, busy_intervals

PRAGUE = ZoneInfo("Europe/Prague")
START = datetime(2026, 11, 23, 7, tzinfo=UTC)
END = START + timedelta(days=120)


def ics(*lines: str) -> bytes:
    return "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *lines, "END:VCALENDAR", ""]
    ).encode()


def event(uid: str, *lines: str) -> list[str]:
    return ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"]


async def test_a_calendar_is_read_in_the_child_as_it_is_here() -> None:
    data = ics(
        *event("a", "DTSTART:20261124T080000Z", "DTEND:20261124T093000Z"),
        *event(
            "b",
            "DTSTART;TZID=Europe/Prague:20261125T090000",
            "DURATION:PT1H",
            "RRULE:FREQ=WEEKLY;COUNT=3",
        ),
        *event("c", "SUMMARY:no start"),  # skipped, and the count comes back too
    )
    read = await read_busy(data, start=START, end=END, zone=PRAGUE, seconds=30)
    assert read == busy_intervals(data, start=START, end=END, zone=PRAGUE)
    assert len(read.intervals) == 4
    assert read.skipped == 1


async def test_a_rule_that_never_comes_true_is_stopped_when_its_time_is_up() -> None:
    # Every minute, but only the second of the minute's one occurrence: never. The library
    # looks for it minute by minute until the year 9999 (hours); the budget is a second.
    data = ics(
        *event(
            "never", "DTSTART:20261123T070000Z", "DURATION:PT1M", "RRULE:FREQ=MINUTELY;BYSETPOS=2"
        )
    )
    began = time.monotonic()
    with pytest.raises(BusyImportError) as caught:
        await read_busy(data, start=START, end=END, zone=PRAGUE, seconds=1.0)
    assert caught.value.reason == "too_many"
    assert time.monotonic() - began < 15  # a second, and the child's start and kill


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"\x89PNG\r\n\x1a\n", "not_calendar"), (b"x" * (MAX_BYTES + 1), "too_big")],
)
async def test_refusals_come_back_from_the_child(data: bytes, reason: str) -> None:
    with pytest.raises(BusyImportError) as caught:
        await read_busy(data, start=START, end=END, zone=PRAGUE, seconds=30)
    assert caught.value.reason == reason
