"""What the chat shows after an answer given on the web page (`bot.transport.web`): the same as
after the chat's own button. The coordinator's live board shows it, the invitation's poll
messages in the chats show what was sent (the member's own, their colleagues', the
coordinator's for a guest), the coordinator is offered the best time once every required
invitee has answered, and the outbox sends what the answer planned.

The wiring hands `after_answer(application)` to the pages as their `Redraw`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from telegram.ext import Application

from bot.services.board import Board
from bot.services.polls import PollView
from bot.transport.telegram import delivery
from bot.transport.web.pages import Redraw
from handlers.board_text import numbered
from handlers.common import Context
from handlers.poll_messages import show_answered


def after_answer(application: Application[Any, Any, Any, Any, Any, Any]) -> Redraw:
    def prepare(
        board: Board, poll_views: Sequence[PollView], offer: Board | None, *, planned: bool
    ) -> Callable[[], Awaitable[None]]:
        live = numbered(board)  # in the answer's transaction: see handlers.board_text

        async def redraw() -> None:
            await show_answered(Context(application), poll_views, live, offer)
            if planned:
                delivery.wake(application)

        return redraw

    return prepare
