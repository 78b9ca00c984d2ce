"""/contacts: an admin sets, changes or removes the institutions' contact e-mail addresses (a
coordinator can then invite an institution none of whose staff is on Telegram as a guest)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler

from bot.core.i18n import N_
from bot.services import addresses
from bot.services.addresses import Contact, InvalidAddress
from bot.services.errors import PermissionDenied
from handlers.address_text import unusable_address
from handlers.common import (
    TYPED,
    Context,
    Dialog,
    HandlerList,
    answer,
    esc,
    keyboard,
    no_longer_active,
    paged_keyboard,
    paginate,
    parse_callback,
    parse_id,
    parse_number,
    say_below,
)
from handlers.usecase import refusal, use_case

PAGE_SIZE = 10
TYPING = "typing"
EDITING = "contact"  # user_data: the institution whose address is being typed
ONLY_ADMINS = refusal(
    PermissionDenied,
    say=N_("Only administrators can set the institutions' e-mail addresses."),
    as_answer=True,
)


async def list_contacts(update: Update, context: Context, page: int = 0) -> str | int:
    async with use_case(update, context, ONLY_ADMINS) as case:
        everyone = await addresses.contacts(case.session, case.actor, now=case.now)
    if not case.done:
        return ConversationHandler.END
    shown = paginate(everyone, page, PAGE_SIZE)
    _ = context.tr.gettext
    text = _(
        "Institutions' contact e-mail addresses ({count}), page {page} of {pages}. ✉ has one. "
        "Tap an institution to set or remove its address."
    ).format(count=len(everyone), page=shown.number + 1, pages=shown.count)

    def button(item: Contact) -> tuple[str, str]:
        return (("✉ " if item.address else "☐ ") + item.name, f"ct:i:{item.institution_id}")

    await answer(update, text, paged_keyboard(shown, button, "ct"))
    return ConversationHandler.END


async def _show(update: Update, context: Context, found: Contact) -> None:
    _ = context.tr.gettext
    if found.address:
        text = _("{name}: contact address {address}").format(
            name=esc(found.name), address=esc(found.address)
        )
        rows = [
            [
                (_("Change"), f"ct:c:{found.institution_id}"),
                (_("Remove"), f"ct:x:{found.institution_id}"),
            ]
        ]
    else:
        text = _("{name} has no contact address.").format(name=esc(found.name))
        rows = [[(_("Give an address"), f"ct:c:{found.institution_id}")]]
    rows.append([(_("Back to the list"), "ct:p:0")])
    await answer(update, text, keyboard(rows))


async def pressed(update: Update, context: Context) -> str | int:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "ct") or []
    match parts:
        case ["p", raw] if (page := parse_number(raw, digits=4)) is not None:
            return await list_contacts(update, context, page)
        case ["i", raw] if (institution := parse_id(raw)) is not None:
            async with use_case(update, context, ONLY_ADMINS) as case:
                found = await addresses.contact(case.session, case.actor, institution, now=case.now)
            if case.done:
                await _show(update, context, found)
            return ConversationHandler.END
        case ["c", raw] if (institution := parse_id(raw)) is not None:
            async with use_case(update, context, ONLY_ADMINS) as case:
                found = await addresses.contact(case.session, case.actor, institution, now=case.now)
            if not case.done:
                return ConversationHandler.END
            context.user_data[EDITING] = institution  # type: ignore[index]
            await say_below(
                update,
                context,
                context.tr.gettext("Type the contact e-mail address of {name}.").format(
                    name=esc(found.name)
                ),
            )
            return TYPING
        case ["x", raw] if (institution := parse_id(raw)) is not None:
            async with use_case(update, context, ONLY_ADMINS) as case:
                found = await addresses.set_contact(
                    case.session, case.actor, institution, None, now=case.now
                )
            if case.done:
                await _show(update, context, found)
            return ConversationHandler.END
    await no_longer_active(update, context)
    return ConversationHandler.END


async def typed_address(update: Update, context: Context) -> str | int:
    institution = (context.user_data or {}).get(EDITING)
    message = update.effective_message
    if not isinstance(institution, int) or message is None:
        return ConversationHandler.END
    try:
        async with use_case(update, context, ONLY_ADMINS) as case:
            found = await addresses.set_contact(
                case.session, case.actor, institution, message.text or "", now=case.now
            )
    except InvalidAddress:
        await answer(update, unusable_address(context.tr))
        return TYPING
    if not case.done:
        return ConversationHandler.END
    context.user_data.pop(EDITING, None)  # type: ignore[union-attr]
    await _show(update, context, found)
    return ConversationHandler.END


def handlers() -> HandlerList:
    dialog = Dialog("contacts")
    return [
        dialog.conversation(
            entry_points=[
                CommandHandler("contacts", dialog.entry(list_contacts)),
                CallbackQueryHandler(dialog.entry(pressed), pattern=r"^ct:"),
            ],
            states={TYPING: [MessageHandler(TYPED, dialog.step(typed_address))]},
        )
    ]
