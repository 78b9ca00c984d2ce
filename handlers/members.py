"""/members: an admin lists the district's members and deactivates leavers."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.core.i18n import Translator
from bot.services import leavers, members
from bot.services.errors import PermissionDenied
from bot.transport.telegram import delivery
from handlers.common import (
    Context,
    HandlerList,
    answer,
    consuming,
    esc,
    keyboard,
    paginate,
    parse_callback,
    parse_id,
    parse_number,
)
from handlers.menus import ROLE_NAMES, clear_member_menu

PAGE_SIZE = 10


async def _everyone(update: Update, context: Context) -> list[members.MemberView] | None:
    """The admin's district's members, or None after telling a non-admin no."""
    runtime = context.runtime
    try:
        async with runtime.database.transaction() as session:
            return await members.list_members(
                session, context.require_actor(), now=runtime.clock.now()
            )
    except PermissionDenied:
        await answer(update, context.tr.gettext("Only administrators can manage members."))
        return None


async def list_members(update: Update, context: Context, page: int = 0) -> None:
    everyone = await _everyone(update, context)
    if everyone is None:
        return
    actor = context.require_actor()
    shown = paginate(everyone, page, PAGE_SIZE)
    tr = context.tr
    _ = tr.gettext
    lines = [
        _("Members ({count}), page {page} of {pages}:").format(
            count=len(everyone), page=shown.number + 1, pages=shown.count
        )
    ]
    lines += [_member_line(view, tr) for view in shown.items]
    rows = [
        [(_("Deactivate {name}").format(name=view.display_name), f"mem:ask:{view.member_id}")]
        for view in shown.items
        if view.active and view.member_id != actor.member_id
    ]
    if nav := shown.nav_row("mem"):
        rows.append(nav)
    await answer(update, "\n".join(lines), keyboard(rows))


def _member_line(view: members.MemberView, tr: Translator) -> str:
    _ = tr.gettext
    status = "" if view.active else " – " + _("deactivated")
    if view.active and not view.reachable:
        status = " – " + _("has blocked the bot")
    role = _(ROLE_NAMES[view.role])
    return f"• {esc(view.display_name)}, {esc(view.institution_name)}, {role}{status}"


async def members_button(update: Update, context: Context) -> None:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "mem") or []
    match parts:
        case ["p", raw_page] if (page := parse_number(raw_page, digits=4)) is not None:
            await list_members(update, context, page=page)
        case ["ask", raw_id] if (member_id := parse_id(raw_id)) is not None:
            await _confirm(update, context, member_id)
        case ["do", raw_id] if (member_id := parse_id(raw_id)) is not None:
            await _deactivate(update, context, member_id)
        case _:
            await list_members(update, context)


async def _confirm(update: Update, context: Context, member_id: int) -> None:
    _ = context.tr.gettext
    runtime = context.runtime
    try:
        async with runtime.database.transaction() as session:
            view = await leavers.to_deactivate(
                session, context.require_actor(), member_id, now=runtime.clock.now()
            )
    except PermissionDenied:
        await answer(update, _("You are not allowed to do that."))
        return
    if not view.active:
        await list_members(update, context)
        return
    text = _("Deactivate {name}? They will no longer be able to use the bot.").format(
        name=esc(view.display_name)
    )
    buttons = [[(_("Yes, deactivate"), f"mem:do:{member_id}"), (_("No"), "mem:p:0")]]
    await answer(update, text, keyboard(buttons))


async def _deactivate(update: Update, context: Context, member_id: int) -> None:
    _ = context.tr.gettext
    runtime = context.runtime
    try:
        async with runtime.database.transaction() as session:
            view = await leavers.deactivate_member(
                session, context.require_actor(), member_id, now=runtime.clock.now()
            )
    except PermissionDenied:
        await answer(update, _("You are not allowed to do that."))
        return
    delivery.wake(context.application)  # the coordinators' hand-over notices, planned with it
    await clear_member_menu(context.bot, view.chat_id)
    text = _("{name} has been deactivated.").format(name=esc(view.display_name))
    await answer(update, text, keyboard([[(_("Back to the list"), "mem:p:0")]]))


def handlers() -> HandlerList:
    return [
        CommandHandler("members", consuming(list_members)),
        CallbackQueryHandler(consuming(members_button), pattern=r"^mem:"),
    ]
