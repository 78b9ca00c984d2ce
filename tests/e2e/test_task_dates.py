"""Far-future dates typed into the record: "31.12.9999" (the "no end" of administrative systems)
and a typo such as "15.3.2207" are refused with the latest date allowed, at the same step, and
the record can still be finished; a date in another year shows its year."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from bot.core.clock import FakeClock
from bot.sandbox import Person
from tests.e2e.conftest import RunningBot
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import until
from tests.e2e.test_invitations import team
from tests.e2e.test_tasks import due_date_asked, from_the_record, press_shown, record_opened

PRAGUE = ZoneInfo("Europe/Prague")
ERROR = "Sorry, something went wrong"


def medium(day: date) -> str:
    """A date as the English catalog writes it in full: "Nov 27, 2028"."""
    return f"{day:%b} {day.day}, {day.year}"


async def reply(person: Person, text: str) -> str:
    """What the bot answers next to a typed text: nothing is passed over."""
    await person.send_text(text)
    return (await person.next_message()).text or ""


async def test_far_future_dates_are_refused_and_other_years_show_their_year(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot)
    hana, petr, pavel = people["hana"], people["petr"], people["pavel"]
    await record_opened(bot, clock, people)
    today = clock.now().astimezone(PRAGUE).date()
    assert today.year == 2026 and today.month in (11, 12)
    two_years = medium(date(today.year + 2, today.month, today.day))
    too_far = f"That is too far ahead: a task is due by {two_years} at the latest."

    # The record dialog: refused at the same step, then a date in the next year is taken.
    await due_date_asked(hana, "Arrange tutoring", "Petr (Policie Cheb)")
    await hana.press("📅 A date…")
    await until(hana, "Type the due date")
    for far in ("31.12.9999", "15.3.2207", "9999-12-31"):
        assert too_far in await reply(hana, far)
    await hana.send_text("15.3.2027")
    screen = await until(hana, "«Arrange tutoring»")
    assert "«Arrange tutoring» · due Mon, Mar 15, 2027 ·" in (screen.text or "")
    # A task due this year has no year.
    await due_date_asked(hana, "Visit the family", "Pavel (Policie Cheb)")
    await hana.press("1 week")
    week = today + timedelta(days=7)
    assert week.year == today.year
    screen = await until(hana, "Plan: 2 tasks.")
    short = f"{week:%a}, {week:%b} {week.day}"  # "Fri, Dec 4"
    assert f"«Visit the family» · due {short} · Pavel" in (screen.text or "")

    # Finishing works: the owners are told.
    await hana.press("✅ Finish: send the tasks to their owners")
    await until(hana, "The record of PK-2026-0001")
    tutoring = await until(petr, "A task for you")
    assert "Mon, Mar 15, 2027" in (tutoring.text or "")
    await until(pavel, "A task for you")

    # The coordinator's new due date: refused, then taken, at the same step.
    await from_the_record(hana, "✏️ Arrange tutoring")
    await until(hana, "Owner: Petr")
    await hana.press("📅 Another due date…")
    await until(hana, "Type the due date")
    assert too_far in await reply(hana, "31.12.9999")
    await hana.send_text("20.1.2027")
    moved = await until(hana, "Owner: Petr")
    assert "Due Wed, Jan 20, 2027" in (moved.text or "")
    await until(petr, "The coordinator moved the due date of your task")

    # The review conference: six months at most, said with the latest date.
    await hana.press("⬅️ Back to the record")
    await press_shown(hana, "🗓 Review: fix the date")
    await until(hana, "Type the date and time of the review conference")
    month = today.month + 6
    six_months = medium(date(today.year + (month - 1) // 12, (month - 1) % 12 + 1, today.day))
    review_too_far = (
        "That is too far ahead: the review conference meets within 6 months, by "
        f"{six_months} at the latest. Type an earlier date, please."
    )
    for far in ("31.12.9999 23:00", "15.3.2207 10:00"):
        assert await reply(hana, far) == review_too_far
    await hana.send_text("16.2.2027 10:00")
    await until(hana, "The review conference PK-2026-0001 is set")
    await until(petr, "You are invited")

    for person in (hana, petr, pavel):
        assert not any(ERROR in (m.text or "") for m in person.messages.values())
