"""Telling several people something, each in their own language."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from telegram import InlineKeyboardMarkup

from bot.core.i18n import Translator
from handlers.common import Context
from handlers.errors import send_safely


class Addressee(Protocol):
    @property
    def chat_id(self) -> int: ...

    @property
    def locale(self) -> str: ...


async def notify(
    context: Context,
    recipients: Iterable[Addressee],
    text: Callable[[Translator], str],
    markup: Callable[[Translator], InlineKeyboardMarkup | None] | None = None,
    *,
    protect: bool = False,
) -> int:
    """Send to each recipient in their language; returns how many it reached. A person who
    blocked the bot is marked unreachable and does not stop the others."""
    reached = 0
    for recipient in recipients:
        tr = context.runtime.translator(recipient.locale)
        sent = await send_safely(
            context,
            recipient.chat_id,
            text(tr),
            markup(tr) if markup is not None else None,
            protect=protect,
        )
        reached += sent
    return reached
