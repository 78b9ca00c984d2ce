"""/members: an admin lists the district's members and deactivates leavers."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.core.i18n import N_, Translator
from bot.services import leavers, members
from bot.services.errors import PermissionDenied
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
from handlers.usecase import refusal, use_case

PAGE_SIZE = 10
NOT_AN_ADMIN = refusal(
    PermissionDenied, say=N_("Only administrators can manage members."), as_answer=True
)
NOT_ALLOWED = refusal(PermissionDenied, say=N_("You are not allowed to do that."), as_answer=True)


async def list_members(update: Update, context: Context, page: int = 0) -> None:
    async with use_case(update, context, NOT_AN_ADMIN) as case:
        everyone = await members.list_members(case.session, case.actor, now=case.now)
    if not case.done:
        return
    actor = case.actor
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
    async with use_case(update, context, NOT_ALLOWED) as case:
        view = await leavers.to_deactivate(case.session, case.actor, member_id, now=case.now)
    if not case.done:
        return
    _ = context.tr.gettext
    if not view.active:
        await list_members(update, context)
        return
    text = _("Deactivate {name}? They will no longer be able to use the bot.").format(
        name=esc(view.display_name)
    )
    buttons = [[(_("Yes, deactivate"), f"mem:do:{member_id}"), (_("No"), "mem:p:0")]]
    await answer(update, text, keyboard(buttons))


async def _deactivate(update: Update, context: Context, member_id: int) -> None:
    # The coordinators' hand-over notices are planned with it, and the runner wakes the outbox.
    async with use_case(update, context, NOT_ALLOWED) as case:
        view = await leavers.deactivate_member(case.session, case.actor, member_id, now=case.now)
    if not case.done:
        return
    _ = context.tr.gettext
    await clear_member_menu(context.bot, view.chat_id)
    text = _("{name} has been deactivated.").format(name=esc(view.display_name))
    await answer(update, text, keyboard([[(_("Back to the list"), "mem:p:0")]]))


def handlers() -> HandlerList:
    return [
        CommandHandler("members", consuming(list_members)),
        CallbackQueryHandler(consuming(members_button), pattern=r"^mem:"),
    ]
