"""Joining with an invite code, choosing the language, /help, and the answers of last resort."""

from __future__ import annotations

from datetime import timedelta

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ChatMemberStatus
from telegram.ext import (
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.core.config import LOCALES
from bot.core.i18n import LANGUAGE_NAMES, N_, Translator, pick_locale
from bot.core.models import Role
from bot.services import members
from handlers.common import (
    TYPED,
    Context,
    Dialog,
    HandlerList,
    answer,
    consuming,
    esc,
    keyboard,
    no_longer_active,
    parse_callback,
)
from handlers.confidentiality_text import ask_after_joining
from handlers.menus import BY_ROLE, COMMON, ROLE_NAMES, set_member_menu
from handlers.poll_messages import send_open_polls

CHOOSING_LANGUAGE = "choosing_language"

ROLE_PURPOSE = {
    Role.ADMIN: N_(
        "As an administrator you register institutions and people and take leavers out."
    ),
    Role.COORDINATOR: N_(
        "As a coordinator you triage referrals, open cases, invite institutions to case "
        "conferences and keep an eye on the plan."
    ),
    Role.REFERRER: N_(
        "As a referrer you report a concern about a child and follow what happens to it."
    ),
    Role.PARTICIPANT: N_(
        "As a participant you answer date polls for your institution, receive invitations "
        "and reminders, and report on the tasks you take on."
    ),
}


def language_keyboard() -> InlineKeyboardMarkup:
    return keyboard([[(LANGUAGE_NAMES[locale], f"lang:{locale}") for locale in LOCALES]])


def home_text(role: Role, tr: Translator) -> str:
    """What this person can do here: their role's purpose and their commands."""
    _ = tr.gettext
    lines = [_(ROLE_PURPOSE[role]), "", _("Commands:")]
    lines += [f"/{name} – {_(text)}" for name, text in (*BY_ROLE[role], *COMMON)]
    return "\n".join(lines)


def home_markup(role: Role, tr: Translator) -> InlineKeyboardMarkup | None:
    """The buttons on a member's home message: a referrer's one job is a tap away."""
    if role is Role.REFERRER:
        return keyboard([[(tr.gettext("Report a concern"), "ref:new")]])
    return None


async def _home(update: Update, context: Context, prefix: str = "") -> None:
    role = context.require_actor().role
    tr = context.tr
    await answer(update, prefix + home_text(role, tr), home_markup(role, tr))


async def start(update: Update, context: Context) -> str | int:
    """/start with an invite code registers the person; without one it shows the home text."""
    actor = context.actor
    if actor is not None:
        await _home(update, context)
        return ConversationHandler.END
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None or not context.args:
        return ConversationHandler.END
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        result = await members.redeem_invite(
            session,
            code=context.args[0],
            telegram_user_id=user.id,
            chat_id=chat.id,
            display_name=user.full_name,
            locale=pick_locale(user.language_code, runtime.settings.default_locale),
            now=runtime.clock.now(),
            attempts_per_hour=runtime.settings.join_attempts_per_hour,
        )
    match result:
        case members.Joined(actor=joined) | members.AlreadyMember(actor=joined):
            context.actor = joined
            return await _welcome(update, context)
        case members.Throttled(retry_after=wait):
            await answer(update, _throttled_text(wait, context.tr))
        case members.CodeRefused(reason=reason):
            await answer(update, _refusal_text(reason, context.tr))
    return ConversationHandler.END


async def _welcome(update: Update, context: Context) -> str:
    actor = context.require_actor()
    _ = context.tr.gettext
    await set_member_menu(context.bot, actor.chat_id, actor.role, context.tr)
    if actor.is_guardian:
        text = _(
            "Welcome to Round Table, {name}! You have been invited to a case conference about "
            "your child. I will ask you when you can come."
        ).format(name=esc(actor.display_name))
    else:
        text = _("Welcome to Round Table, {name}! You have joined {institution} as {role}.").format(
            name=esc(actor.display_name),
            institution=esc(actor.institution_name),
            role=_(ROLE_NAMES[actor.role]),
        )
    await answer(update, text + "\n\n" + _("Which language shall I use?"), language_keyboard())
    return CHOOSING_LANGUAGE


def _refusal_text(reason: str, tr: Translator) -> str:
    _ = tr.gettext
    if reason == "expired":
        return _("This invite link has expired. Please ask your coordinator for a new one.")
    if reason == "used":
        return _("This invite link has already been used. Each link works only once.")
    return _("This invite link is not valid. Please check it or ask your coordinator.")


def _throttled_text(wait: timedelta, tr: Translator) -> str:
    minutes = max(1, -(-int(wait.total_seconds()) // 60))
    return tr.ngettext(
        "Too many attempts with wrong codes. Please try again in {n} minute.",
        "Too many attempts with wrong codes. Please try again in {n} minutes.",
        minutes,
    ).format(n=minutes)


async def ask_language(update: Update, context: Context) -> str:
    await answer(update, context.tr.gettext("Which language shall I use?"), language_keyboard())
    return CHOOSING_LANGUAGE


async def language_chosen(update: Update, context: Context) -> int:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "lang")
    actor = context.require_actor()
    if not parts or parts[0] not in LOCALES:
        await answer(update, context.tr.gettext("Which language shall I use?"), language_keyboard())
        return ConversationHandler.END
    async with context.runtime.database.transaction() as session:
        context.actor = actor = await members.set_locale(session, actor, parts[0])
    tr = context.tr
    await set_member_menu(context.bot, actor.chat_id, actor.role, tr)
    await _home(update, context, tr.gettext("I will write to you in English.") + "\n\n")
    await ask_after_joining(context)  # confidentiality, unless confirmed: before any case
    await send_open_polls(context)  # a poll running for their institution, or a guardian's
    return ConversationHandler.END


async def remind_language(update: Update, context: Context) -> str:
    if update.effective_message is not None:
        await update.effective_message.reply_text(
            context.tr.gettext("Please choose a language with one of the buttons."),
            reply_markup=language_keyboard(),
        )
    return CHOOSING_LANGUAGE


async def show_help(update: Update, context: Context) -> None:
    await _home(update, context)


async def not_understood(update: Update, context: Context) -> None:
    """A member wrote something no dialog is waiting for."""
    if not context.handled and update.effective_message is not None:
        await update.effective_message.reply_text(
            context.tr.gettext("I did not understand that. /help shows what you can do here.")
        )


async def presence_changed(update: Update, context: Context) -> None:
    """Telegram tells us when a member blocks the bot (or unblocks it) in their private chat."""
    change = update.my_chat_member
    actor = context.require_actor()
    if change is None:
        return
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        if change.new_chat_member.status == ChatMemberStatus.BANNED:
            await members.mark_unreachable(session, actor.chat_id, now=runtime.clock.now())
        elif not actor.reachable:
            await members.mark_reachable(session, actor)


def join_handlers() -> HandlerList:
    """The join and language dialog: its own handler group, first after the guard."""
    dialog = Dialog("join")
    return [
        dialog.conversation(
            entry_points=[
                CommandHandler("start", dialog.entry(start)),
                CommandHandler("language", dialog.entry(ask_language)),
            ],
            states={
                CHOOSING_LANGUAGE: [
                    CallbackQueryHandler(dialog.step(language_chosen), pattern=r"^lang:"),
                    MessageHandler(TYPED, dialog.step(remind_language)),
                ]
            },
        )
    ]


def general_handlers() -> HandlerList:
    return [
        CommandHandler("help", consuming(show_help)),
        ChatMemberHandler(consuming(presence_changed), ChatMemberHandler.MY_CHAT_MEMBER),
        # A language button from an old message still works: the choice is harmless.
        CallbackQueryHandler(consuming(language_chosen), pattern=r"^lang:"),
    ]


def last_resort_handlers() -> HandlerList:
    """Registered after every dialog: whatever nobody else took. Edits of old messages are
    not answered: they are not new requests."""
    return [
        CallbackQueryHandler(no_longer_active),
        MessageHandler(filters.UpdateType.MESSAGE, not_understood),
    ]
