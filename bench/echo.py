"""The floor for `python -m bench load`: a bare python-telegram-bot echo bot, as a typical bot
author writes it, with the library's defaults and `concurrent_updates(64)`.

Run as its own process: `python -m bench.echo` with ECHO_TOKEN and ECHO_API_URL set.
"""

from __future__ import annotations

import os

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is not None and message.text is not None:
        await message.reply_text(message.text)


def main() -> None:
    application = (
        Application.builder()
        .token(os.environ["ECHO_TOKEN"])
        .base_url(os.environ["ECHO_API_URL"])
        .concurrent_updates(64)
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.run_polling(allowed_updates=Update.ALL_TYPES)


if __name__ == "__main__":
    main()
