"""Hostile and broken calendar uploads, through the running bot: each is refused with a clear
answer, nothing is stored, and the bot goes on answering; a file with some broken events keeps
the rest and says how many were left out."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from sqlalchemy import func, select

from bot.core.models import BusyTime, InstitutionKind, Role
from bot.sandbox import Person
from bot.sandbox.models import BotMessage
from tests.bot.test_calendar_reader import event, ics
from tests.e2e.conftest import RunningBot

NOT_CALENDAR = "That does not look like a calendar file."
TOO_BIG = "That file is too big for me (over 2 MB)."
TOO_MANY = "That calendar has too many events in the next four months for me to read."
MB = 1_000_000


def zip_bomb() -> bytes:
    """200 MB of a calendar, zipped to a few hundred kilobytes."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("calendar.ics", ics(*event("1", "DTSTART:20261124T080000Z")) * 1_000_000)
    return archive.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06" + b"\x00" * 64
NEVER = "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"  # 30 February: looked for until the year 9999


async def participant(bot: RunningBot) -> Person:
    return await bot.join(
        3, "Petr", Role.PARTICIPANT, institution="Policie Cheb", kind=InstitutionKind.POLICE
    )


async def upload(person: Person, name: str, content: bytes, **options: bool) -> BotMessage:
    await person.send_document(name, content, mime_type="text/calendar", **options)
    return await person.next_message(timeout=60)


async def busy_rows(bot: RunningBot) -> int:
    async with bot.runtime.database.transaction() as session:
        return await session.scalar(select(func.count()).select_from(BusyTime)) or 0


@pytest.mark.parametrize(
    ("name", "content", "answer"),
    [
        ("calendar.ics", PNG, NOT_CALENDAR),
        ("calendar.ics", b"Meeting with the school on Tuesday at nine.\n", NOT_CALENDAR),
        ("calendar.ics", zip_bomb(), NOT_CALENDAR),
        (
            "deep.ics",
            b"BEGIN:VCALENDAR\r\n" + b"BEGIN:X\r\n" * 100_000 + b"END:X\r\n" * 100_000,
            NOT_CALENDAR,
        ),
        (
            "minutes.ics",
            ics(*event("1", "DTSTART:20261123T080000Z", "DURATION:PT1M", "RRULE:FREQ=MINUTELY")),
            TOO_MANY,
        ),
        (
            "events.ics",
            ics(
                *(
                    line
                    for n in range(6_000)
                    for line in event(str(n), "DTSTART:20261124T080000Z", "DURATION:PT1H")
                )
            ),
            TOO_MANY,
        ),
        ("big.ics", b"\x00" * (50 * MB), TOO_BIG),
    ],
    ids=["png", "text", "zip bomb", "deep nesting", "endless rule", "many events", "50 MB"],
)
async def test_a_hostile_upload_is_refused_and_nothing_is_kept(
    bot: RunningBot, name: str, content: bytes, answer: str
) -> None:
    # The answer here is the file's, never the time budget's: on a machine slowed down many
    # times over (a parallel suite beside other work) the deep nesting alone took the default
    # 20 s; the budget has a test of its own below.
    bot.runtime.settings.calendar_seconds = 300
    petr = await participant(bot)
    began = time.monotonic()
    refused = await upload(petr, name, content)
    print(f"\n{name}: {len(content):,} bytes refused in {time.monotonic() - began:.2f} s")
    assert answer in (refused.text or "")
    assert await busy_rows(bot) == 0
    await petr.send_text("/help")
    assert "Commands:" in ((await petr.next_message()).text or "")


@pytest.mark.parametrize("size", [5 * MB, 50 * MB], ids=["5 MB", "50 MB"])
async def test_a_file_whose_size_is_not_given_is_refused_as_too_big(
    bot: RunningBot, size: int
) -> None:
    # Telegram may leave the size out; the bot stops reading at its limit (5 MB) or Telegram
    # refuses to hand a bot anything over 20 MB (50 MB). The same answer either way.
    petr = await participant(bot)
    refused = await upload(petr, "big.ics", b"BEGIN:VCALENDAR\r\n" * (size // 17), size_known=False)
    assert TOO_BIG in (refused.text or "")
    assert await busy_rows(bot) == 0


async def test_a_file_of_rules_that_never_come_true_is_stopped_at_the_time_budget(
    bot: RunningBot,
) -> None:
    # Each of these events takes the recurrence library seconds (it looks for 30 February
    # until the year 9999); all of them would take it hours. The budget is two seconds here.
    bot.runtime.settings.calendar_seconds = 2.0
    petr = await participant(bot)
    never = ics(
        *(
            line
            for n in range(500)
            for line in event(str(n), "DTSTART:20261124T080000Z", "DURATION:PT1H", NEVER)
        )
    )
    began = time.monotonic()
    refused = await upload(petr, "never.ics", never)
    print(f"\nnever.ics refused in {time.monotonic() - began:.2f} s")
    assert TOO_MANY in (refused.text or "")
    assert await busy_rows(bot) == 0


async def test_broken_events_are_left_out_the_rest_kept_and_the_person_told(
    bot: RunningBot,
) -> None:
    petr = await participant(bot)
    data = ics(
        *event("good", "DTSTART:20261124T080000Z", "DTEND:20261124T090000Z"),
        *event("no start", "DTEND:20261125T090000Z"),
        *event("end of time", "DTSTART;VALUE=DATE:99991231"),
    )
    read = await upload(petr, "calendar.ics", data)
    assert "I read 1 busy time from your calendar" in (read.text or "")
    assert "2 events in the file could not be read and were left out." in (read.text or "")
    assert await busy_rows(bot) == 1
