"""What the chat shows after a calendar's reply read from the organizer's mailbox
(`bot.transport.mail.imap`, applied by `bot.services.calendar_replies`): the same as after the
chat's own button. Every copy of the invitation in the answering member's and their colleagues'
chats shows the answer, the coordinator's live board shows it, and the outbox sends what the
reply planned (a decline's flag to the coordinator, the reminders).

The wiring hands `after_reply(application)` to the reader as its `on_applied`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from telegram.ext import Application

from bot.services.calendar_replies import Applied
from bot.transport.telegram import delivery
from handlers.board_text import numbered, refresh_board
from handlers.common import Context
from handlers.invitation_text import redraw_invitation


def after_reply(
    application: Application[Any, Any, Any, Any, Any, Any],
) -> Callable[[Applied], Callable[[], Awaitable[None]]]:
    """The reader's `on_applied`: called in the reply's transaction, it takes the board's turn
    to be drawn (ordered with the chat's own answers, `handlers.board_text.numbered`); what it
    returns redraws after the commit."""

    def prepare(applied: Applied) -> Callable[[], Awaitable[None]]:
        live = numbered(applied.board)

        async def redraw() -> None:
            context = Context(application)
            if applied.view is not None:
                for chat_id, message_id, locale in applied.messages:
                    await redraw_invitation(context, applied.view, chat_id, message_id, locale)
            await refresh_board(context, live)
            if applied.planned:
                delivery.wake(application)

        return redraw

    return prepare
