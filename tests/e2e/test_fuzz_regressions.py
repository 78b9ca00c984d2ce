"""Bugs the property tests found, each kept as the plain story that shows it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.models import Invitation, Rsvp
from tests.e2e.conftest import RunningBot
from tests.e2e.test_conferences import until
from tests.e2e.test_invitations import scheduled, team
from tests.e2e.test_tasks import due_date_asked, record_asked


async def test_a_refusal_pressed_under_a_calendar_file_comes_as_a_new_message(
    bot: RunningBot,
) -> None:
    # Found by test_case_properties: a participant pressed a forged "cases, page N" button on
    # the message that carries the invitation's .ics file. The refusal replaces the message
    # under a button, but a document has no text to replace: Telegram answers 400, and the
    # participant got "something went wrong".
    people = await team(bot)
    await scheduled(bot, people)
    petr = people["petr"]
    invitation = await until(petr, "Will you come?")  # through the outbox: wait for it
    assert invitation.document is not None
    await petr.press_data("cs:p:99999999999999999999", message_id=invitation.message_id)
    refused = await until(petr, "Only coordinators")
    assert refused.text == "Only coordinators see the district's cases."
    assert refused.message_id != invitation.message_id
    assert petr.messages[invitation.message_id].document is not None  # left as it was


async def test_a_reason_typed_after_a_new_poll_gets_an_answer(bot: RunningBot) -> None:
    # Found by test_meeting_properties: a participant declined and was asked for a reason;
    # meanwhile the coordinator started a new poll, which set the invitation back to pending.
    # The reason typed then was dropped without a word: the person typed into silence.
    people = await team(bot)
    await scheduled(bot, people)
    hana, petr = people["hana"], people["petr"]
    invitation = await until(petr, "Will you come?")
    await petr.press("❌ Decline", message_id=invitation.message_id)
    await until(petr, "type a short reason")
    flag = await until(hana, "Policie Cheb (Petr) declined the case conference")
    await hana.press("📅 New poll", message_id=flag.message_id)
    await until(hana, "A new poll for PK-2026-0001 is on its way")
    await petr.send_text("On leave that week")
    refused = await until(petr, "changed since you declined it")
    assert refused.text == (
        "That invitation has changed since you declined it, so the reason was not kept."
    )
    async with bot.runtime.database.transaction() as session:
        assert await session.scalar(select(Invitation.decline_reason)) is None


async def test_an_answer_pressed_on_another_message_leaves_that_message_alone(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by test_meeting_properties after the chaos work: a pressed invitation is redrawn
    # when the outbox never noted where it went; an invitation's button pressed on another
    # message (the answer to /help) tried to put the invitation's caption on that text.
    people = await team(bot)
    await scheduled(bot, people)
    petr = people["petr"]
    invitation = await until(petr, "Will you come?")
    maybe = next(d for row in invitation.buttons() for _t, d in row if d and d.endswith(":t"))
    await petr.send_text("/help")
    other = await until(petr, "/language")
    assert other.document is None
    before = other.text
    await petr.press_data(maybe, message_id=other.message_id)
    await bot.settle()
    assert petr.messages[other.message_id].text == before
    assert "could not redraw" not in caplog.text
    async with bot.runtime.database.transaction() as session:
        answers = list(await session.scalars(select(Invitation.rsvp)))
    assert Rsvp.TENTATIVE in answers  # the answer itself is taken


async def test_forged_digits_in_a_button_are_a_stale_button_not_an_error(
    bot: RunningBot, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by a review: "²" passes str.isdigit() but not int(). "ih:1:²:1" from any member,
    # and "rc:d:²" inside the record dialog, raised ValueError: the sender got the generic
    # error and every admin of the district an alert, on every press.
    people = await team(bot)
    starts = await scheduled(bot, people)
    hana, petr = people["hana"], people["petr"]
    invitation = await until(petr, "Will you come?")
    for forged in ("ih:1:²:1", "ih:1:٣:1", "iv:1:²:a"):
        answer = await petr.press_data(forged, message_id=invitation.message_id)
        assert answer.text == "This button is no longer active."
    await record_asked(bot, clock, hana, starts, "Attendance:")
    asked = await due_date_asked(hana, "Visit the family", "Petr (Policie Cheb)")
    answer = await hana.press_data("rc:d:²", message_id=asked.message_id)
    assert answer.text == "This button is no longer active."
    assert "while handling update" not in caplog.text
