"""The gate in front of every dialog: only registered, active members get past it."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop, TypeHandler

from bot.services import members
from handlers.common import Context, HandlerList, acknowledge


async def admit(update: Update, context: Context) -> None:
    """Load who is talking; strangers get one short polite answer and nothing else."""
    user = update.effective_user
    chat = update.effective_chat
    if user is None or user.is_bot or (chat is not None and chat.type != ChatType.PRIVATE):
        # Round Table talks only in private chats; group and channel traffic is ignored.
        raise ApplicationHandlerStop
    database = context.runtime.database
    async with database.reading() as session:
        context.actor = actor = await members.find_actor(session, user.id)
    if actor is not None and not actor.reachable:
        async with database.transaction() as session:
            context.actor = await members.mark_reachable(session, actor)
    if context.actor is not None or _is_join_attempt(update):
        return
    _forget_in_memory(context, user.id, chat.id if chat else None)
    if (request := _request(update)) is not None:
        async with database.transaction() as session:
            await members.turned_away(session, user.id, request, now=context.runtime.clock.now())
    await _turn_away(update, context)
    raise ApplicationHandlerStop


def _forget_in_memory(context: Context, user_id: int, chat_id: int | None) -> None:
    """A deactivated member's drafts may still be held in memory: drop them with the rows."""
    application = context.application
    if user_id in application.user_data:
        application.drop_user_data(user_id)
    if chat_id is not None and chat_id in application.chat_data:
        application.drop_chat_data(chat_id)


def _request(update: Update) -> str | None:
    """What a command or a button asked for, to audit its refusal; None for anything else
    (a stranger's chatter is answered, not logged)."""
    if update.callback_query is not None:
        return (update.callback_query.data or "")[:64]
    text = update.message.text if update.message else None
    if text and text.startswith("/"):
        return text.split(maxsplit=1)[0][:64]
    return None


def _is_join_attempt(update: Update) -> bool:
    text = update.message.text if update.message else None
    return bool(text and text.startswith("/start ") and len(text.split()) == 2)


async def _turn_away(update: Update, context: Context) -> None:
    _ = context.tr.gettext
    text = _(
        "This bot is only for members of the case conference team. "
        "Please ask your coordinator for a personal invite link."
    )
    if update.callback_query is not None:
        await acknowledge(update.callback_query, text, alert=True)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(text)


def handlers() -> HandlerList:
    return [TypeHandler(Update, admit)]
