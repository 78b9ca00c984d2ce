"""The web page at a plain http:// address (a test install, or one behind no TLS): Telegram
opens only https:// pages as Mini Apps, so the chat offers no grid button, and the poll in the
chat works as before; a guest's mail still carries their personal link."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.config import Settings
from bot.sandbox import BotApiSandbox
from bot.sandbox.mail import MailPerson, MailServer
from bot.sandbox.models import inline_keyboard
from tests.e2e.conftest import RunningBot
from tests.e2e.mail_world import mail_server
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import answer_poll, until
from tests.e2e.test_web_page import PAEDIATRICS, _poll_with_a_guest, _text, web_settings

__all__ = ["mail_server"]

PLAIN = "http://roundtable.test"


@pytest.fixture
def settings(
    database_url: str, sandbox: BotApiSandbox, tmp_path: Path, mail_server: MailServer
) -> Settings:
    return web_settings(database_url, sandbox, tmp_path, mail_server, PLAIN)


async def test_without_https_the_chat_offers_no_mini_app_and_the_guest_still_gets_a_link(
    bot: RunningBot, mail_server: MailServer
) -> None:
    hana, petr, board = await _poll_with_a_guest(bot)
    poll = await until(petr, "When can")
    for message in (poll, hana.messages[board.message_id]):
        buttons = [button for row in inline_keyboard(message.reply_markup) for button in row]
        assert buttons and not [button for button in buttons if "web_app" in button]
    await answer_poll(petr, poll, {0: 1})  # the chat's poll works as before
    await until(hana, "Answered 1 of 3")
    doctor = MailPerson(mail_server, PAEDIATRICS, "Pediatrie Cheb")
    assert f"{PLAIN}/p/" in _text(await doctor.next_mail())
