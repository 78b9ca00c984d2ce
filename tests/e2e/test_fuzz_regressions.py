"""Bugs the property tests found, each kept as the plain story that shows it."""

from __future__ import annotations

from sqlalchemy import select

from bot.models import Invitation
from tests.e2e.conftest import RunningBot
from tests.e2e.test_conferences import until
from tests.e2e.test_invitations import scheduled, team


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
