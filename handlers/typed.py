"""Messages that may name the child, deleted from a chat once what they say is stored: shared by
the dialogs that take such texts (a referral's steps, a coordinator's question or decline, a
decline's reason) and by the sweep that finishes a deletion cut short."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from telegram import Message
from telegram.error import TelegramError

from bot.core.i18n import Translator
from bot.services import drafting
from handlers.common import Context

logger = logging.getLogger(__name__)


async def delete_typed(context: Context, message: Message) -> str:
    """Delete a typed message that may name the child, once what it says is stored (a
    question, a reason). Returns what to tell its author: nothing when it is gone, else that
    they should delete it themselves."""
    done = await delete_from_chat(
        context, message.chat_id, [[message.message_id, unix(message.date)]]
    )
    return deletion_text(done, context.tr, confirm=False)


@dataclass(frozen=True)
class Deletion:
    deleted: int  # the person's own messages deleted
    too_old: int  # the person's own, past the 48 hours Telegram allows
    failed: list[list[int]]  # refs whose deletion failed now (Telegram or the network)

    @property
    def failed_theirs(self) -> int:
        return sum(1 for ref in self.failed if not drafting.from_bot(ref))


async def delete_from_chat(context: Context, chat_id: int, refs: list[list[int]]) -> Deletion:
    """Delete the listed messages ([id, unix time, from bot]) that Telegram still lets a bot
    delete (48 hours)."""
    deletable = drafting.deletable(refs, context.runtime.clock.now())
    too_old = sum(1 for ref in refs if ref not in deletable and not drafting.from_bot(ref))
    deleted = 0
    failed: list[list[int]] = []
    for start in range(0, len(deletable), 100):
        batch = deletable[start : start + 100]
        try:
            await context.bot.delete_messages(chat_id, [ref[0] for ref in batch])
        except TelegramError as error:
            logger.warning("could not delete messages from a chat: %s", type(error).__name__)
            failed += batch
            continue
        deleted += sum(1 for ref in batch if not drafting.from_bot(ref))
    return Deletion(deleted, too_old, failed)


async def delete_messages(
    context: Context, chat_id: int, refs: list[list[int]], *, retried: bool = False
) -> tuple[str, list[list[int]]]:
    """Delete the messages that carried the child's data; say what was done. Returns the text
    and the messages to try again (retried=True: the sweep will; else the person is asked)."""
    if not refs:
        return "", []
    done = await delete_from_chat(context, chat_id, refs)
    return deletion_text(done, context.tr, retried=retried), done.failed


def deletion_text(
    done: Deletion, tr: Translator, *, retried: bool = False, confirm: bool = True
) -> str:
    """What was deleted (confirm=False: only what was not, for one typed message whose
    deletion needs no news) and what the person should delete themselves."""
    lines = []
    if done.deleted and confirm:
        lines.append(
            tr.ngettext(
                "I deleted your message with the child's details from this chat.",
                "I deleted your {n} messages with the child's details from this chat.",
                done.deleted,
            ).format(n=done.deleted)
        )
    if done.too_old:
        lines.append(
            tr.ngettext(
                "{n} older message could not be deleted (Telegram allows it for 48 hours); "
                "please delete it yourself.",
                "{n} older messages could not be deleted (Telegram allows it for 48 hours); "
                "please delete them yourself.",
                done.too_old,
            ).format(n=done.too_old)
        )
    if done.failed_theirs and retried:
        lines.append(
            tr.ngettext(
                "{n} message could not be deleted just now; I will try again shortly.",
                "{n} messages could not be deleted just now; I will try again shortly.",
                done.failed_theirs,
            ).format(n=done.failed_theirs)
        )
    elif done.failed_theirs:
        lines.append(
            tr.ngettext(
                "{n} message could not be deleted just now; please delete it yourself.",
                "{n} messages could not be deleted just now; please delete them yourself.",
                done.failed_theirs,
            ).format(n=done.failed_theirs)
        )
    return " ".join(lines)


def unix(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())
