"""The gate in front of every dialog: only registered, active members get past it."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop, TypeHandler

from bot.core.models import Role
from bot.services import members
from bot.services.members import Actor
from handlers.common import Context, HandlerList, acknowledge
from handlers.confidentiality_text import ask_first


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
    if context.actor is not None:
        if _shows_a_case(update, context.actor) and await ask_first(update, context):
            raise ApplicationHandlerStop  # confidentiality is confirmed first
        return
    if _is_join_attempt(update):
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


# What a member may use before confirming confidentiality (bot.services.confidentiality):
# joining, help, the language, their e-mail address, their own referrals (a referrer is their
# author), setting up people and institutions, and the confirmation itself. Everything else may
# show something of a case, so a command or a button not named here asks for it first.
FREE_COMMANDS = frozenset(
    {"start", "help", "language", "email", "refer", "myreferrals", "cancel"}
    | {"invite", "members", "contacts"}
)
FREE_BUTTONS = ("cn:", "lang:", "ref:", "rf:r:", "em:", "inv:", "mem:", "ct:")
OWN_REFERRAL = "rf:o:"  # a referrer's Show of her own referral; a coordinator's Open of any


def _shows_a_case(update: Update, actor: Actor) -> bool:
    """Whether the update is a command or a button that may show something of a case."""
    if update.callback_query is not None:
        data = update.callback_query.data or ""
        if data.startswith(OWN_REFERRAL):
            return actor.role is Role.COORDINATOR
        return not data.startswith(FREE_BUTTONS)
    text = update.message.text if update.message else None
    if not text or not text.startswith("/"):
        return False  # what a dialog already running waits for
    command = text.split(maxsplit=1)[0][1:].split("@", 1)[0].lower()
    return command not in FREE_COMMANDS


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
