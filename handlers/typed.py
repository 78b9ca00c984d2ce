"""A typed message that may name the child, deleted once what it says is stored: shared by the
dialogs that take such texts (a coordinator's question or decline, a decline's reason)."""

from __future__ import annotations

from datetime import UTC

from telegram import Message

from handlers.common import Context
from handlers.referral import delete_from_chat, deletion_text


async def delete_typed(context: Context, message: Message) -> str:
    """Delete a typed message that may name the child, once what it says is stored (a
    question, a reason). Returns what to tell its author: nothing when it is gone, else that
    they should delete it themselves."""
    sent_at = int(message.date.astimezone(UTC).timestamp())
    done = await delete_from_chat(context, message.chat_id, [[message.message_id, sent_at]])
    return deletion_text(done, context.tr, confirm=False)
