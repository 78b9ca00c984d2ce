"""Bugs the property tests found, each kept as the plain story that shows it."""

from __future__ import annotations

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
    await bot.settle()  # the invitations are on their way through the outbox
    petr = people["petr"]
    invitation = next(m for m in petr.chat.bot_messages_newest_first() if m.document)
    await petr.press_data("cs:p:99999999999999999999", message_id=invitation.message_id)
    refused = await until(petr, "Only coordinators")
    assert refused.text == "Only coordinators see the district's cases."
    assert refused.message_id != invitation.message_id
    assert petr.messages[invitation.message_id].document is not None  # left as it was
