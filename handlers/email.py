"""/email: a member gives, changes or removes their work e-mail address. A new address is used
only once the one-time code mailed to it is typed back here (bot.services.addresses)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler

from bot.core.i18n import N_
from bot.services import addresses
from bot.services.addresses import (
    CodeSent,
    Confirmed,
    InvalidAddress,
    NoCode,
    SameAddress,
    TakenAddress,
    TooManyCodes,
    WrongCode,
)
from handlers.address_text import unusable_address
from handlers.common import TYPED, Context, Dialog, HandlerList, answer, esc, keyboard, say_below
from handlers.usecase import refusal, use_case

ADDRESS = "address"
CODE = "code"

TAKEN_TEXT = N_(
    "Another member of Round Table uses that address already. Please give your own work address."
)
# Confirmed by another member while this code was on its way.
TAKEN = refusal(TakenAddress, say=TAKEN_TEXT, as_answer=True)


def mail_off(context: Context) -> str | None:
    """The one line said when this Round Table sends no e-mail, else None."""
    if context.runtime.settings.mail_enabled:
        return None
    return context.tr.gettext(
        "This Round Table sends no e-mail yet: ask your administrator to set it up."
    )


async def show(update: Update, context: Context) -> str | int:
    """The member's address (or none), with Change and Remove."""
    if (off := mail_off(context)) is not None:
        await answer(update, off)
        return ConversationHandler.END
    async with use_case(update, context) as case:
        own = await addresses.own_address(case.session, case.actor)
    if not case.done:
        return ConversationHandler.END
    _ = context.tr.gettext
    if own.address is None:
        text = _("You have not given a work e-mail address. Invitations come only here.")
        rows = [[(_("Give an address"), "em:c")]]
    else:
        text = _(
            "Your work e-mail address: {address}\nInvitations also come there, "
            "and your calendar can answer them."
        ).format(address=esc(own.address))
        if own.failing:
            text += "\n" + _("⚠️ Mail to it was refused lately. Give it again, or another one.")
        rows = [[(_("Change"), "em:c"), (_("Remove"), "em:r")]]
    await answer(update, text, keyboard(rows))
    return ConversationHandler.END


async def pressed(update: Update, context: Context) -> str | int:
    query = update.callback_query
    if (off := mail_off(context)) is not None:
        await answer(update, off)
        return ConversationHandler.END
    _ = context.tr.gettext
    if query is not None and query.data == "em:r":
        async with use_case(update, context) as case:
            removed = await addresses.remove_own(case.session, case.actor, now=case.now)
        if not case.done:
            return ConversationHandler.END
        if removed:
            await answer(update, _("Your e-mail address was removed. Invitations come only here."))
        else:
            await answer(update, _("You have no e-mail address to remove."))
        return ConversationHandler.END
    await say_below(
        update,
        context,
        _("Type your work e-mail address. I will mail a code to it to check that it is yours."),
    )
    return ADDRESS


async def typed_address(update: Update, context: Context) -> str | int:
    message = update.effective_message
    if message is None:
        return ConversationHandler.END
    _ = context.tr.gettext
    text = message.text or ""
    try:
        async with use_case(update, context) as case:
            sent = await addresses.request_code(
                case.session, case.actor, context.runtime.cipher, text, now=case.now
            )
    except InvalidAddress:
        await answer(update, unusable_address(context.tr))
        return ADDRESS
    except SameAddress:
        await answer(update, _("That is your address already; nothing changes."))
        return ConversationHandler.END
    except TakenAddress:
        await answer(update, _(TAKEN_TEXT))
        return ADDRESS
    except TooManyCodes as error:
        await answer(
            update,
            _("I have mailed you three codes within an hour. Ask again after {when}.").format(
                when=context.tr.datetime(error.again_at)
            ),
        )
        return ConversationHandler.END
    if not case.done:
        return ConversationHandler.END
    return await _code_sent(update, context, sent)


async def _code_sent(update: Update, context: Context, sent: CodeSent) -> str:
    _ = context.tr.gettext
    await answer(
        update,
        _(
            "I have mailed a code to {address}. Type its six digits here; it is valid until "
            "{when}. Not there? Look in the spam folder, or ask for a new code."
        ).format(address=esc(sent.address), when=context.tr.datetime(sent.expires_at)),
        keyboard([[(_("Ask for a new code"), "em:c")]]),
    )
    return CODE


async def typed_code(update: Update, context: Context) -> str | int:
    message = update.effective_message
    if message is None:
        return ConversationHandler.END
    _ = context.tr.gettext
    typed = "".join((message.text or "").split())
    if not (typed.isdigit() and len(typed) == addresses.CODE_DIGITS):
        # Not a try: something else was typed (a sticker, a word, the address again).
        await answer(update, _("Please type the six digits of the code I mailed you."))
        return CODE
    async with use_case(update, context, TAKEN) as case:
        result = await addresses.confirm_code(case.session, case.actor, typed, now=case.now)
    if not case.done:
        return ConversationHandler.END
    match result:
        case Confirmed(address=address):
            await answer(
                update,
                _("Done: {address} is your work e-mail address now.").format(address=esc(address)),
            )
            return ConversationHandler.END
        case WrongCode(tries_left=left) if left > 0:
            await answer(
                update,
                context.tr.ngettext(
                    "That is not the code. {n} try left.",
                    "That is not the code. {n} tries left.",
                    left,
                ).format(n=left),
            )
            return CODE
        case WrongCode():
            await answer(
                update,
                _("That is not the code, and it was the last try. Ask for a new code: /email"),
            )
            return ConversationHandler.END
        case NoCode():
            await answer(
                update,
                _("No code is waiting (it expired or was replaced). Ask for a new one: /email"),
            )
    return ConversationHandler.END


def handlers() -> HandlerList:
    dialog = Dialog("email")
    return [
        dialog.conversation(
            entry_points=[
                CommandHandler("email", dialog.entry(show)),
                CallbackQueryHandler(dialog.entry(pressed), pattern=r"^em:[cr]$"),
            ],
            states={
                ADDRESS: [MessageHandler(TYPED, dialog.step(typed_address))],
                CODE: [MessageHandler(TYPED, dialog.step(typed_code))],
            },
        )
    ]
