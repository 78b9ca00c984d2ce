"""/invite: an admin or coordinator makes a one-time invite link for an institution and a role."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler

from bot.core.i18n import N_, NP_, Translator
from bot.core.models import InstitutionKind, Role
from bot.services import members
from bot.services.errors import PermissionDenied, ServiceError
from handlers.common import (
    TYPED,
    TYPED_TEXT,
    Context,
    Dialog,
    HandlerList,
    answer,
    esc,
    keyboard,
    paginate,
    parse_callback,
    parse_id,
    parse_number,
)
from handlers.menus import ROLE_NAMES
from handlers.usecase import refusal, refused_by, use_case

PICK_INSTITUTION, NEW_NAME, NEW_KIND, PICK_ROLE = "institution", "new_name", "new_kind", "role"
PAGE_SIZE = 8
DRAFT = "invite"

# "Other" is also a case outcome: the kinds have their own context (a literal, for pybabel).
KIND = "institution kind"
KIND_NAMES = {
    InstitutionKind.POLICE: NP_("institution kind", "Police"),
    InstitutionKind.OSPOD: NP_("institution kind", "Child protection (OSPOD)"),
    InstitutionKind.SOCIAL_DEPARTMENT: NP_("institution kind", "Social department"),
    InstitutionKind.PPP: NP_("institution kind", "Counselling centre (PPP)"),
    InstitutionKind.SCHOOL: NP_("institution kind", "School"),
    InstitutionKind.PMS: NP_("institution kind", "Probation and Mediation Service"),
    InstitutionKind.NGO: NP_("institution kind", "NGO"),
    InstitutionKind.DOCTOR: NP_("institution kind", "Doctor"),
    InstitutionKind.PROSECUTOR: NP_("institution kind", "Prosecutor"),
    InstitutionKind.OTHER: NP_("institution kind", "Other"),
}

# What each role may do, one line under the question which role to give.
ROLE_DUTIES = {
    Role.ADMIN: N_("registers institutions and people and takes leavers out."),
    Role.COORDINATOR: N_(
        "decides on referrals, opens cases, plans case conferences and follows the plan."
    ),
    Role.REFERRER: N_("reports a concern about a child and follows what happens to it."),
    Role.PARTICIPANT: N_(
        "answers date polls for their institution, gets invitations and reminders, and "
        "reports on their tasks."
    ),
}


async def _refused(update: Update, context: Context, _error: Exception) -> None:
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    await answer(update, context.tr.gettext("You are not allowed to do that."))


# Creating an institution or an invite: refused (and the draft dropped) to anyone who may not.
NOT_ALLOWED = refused_by(ServiceError, answer=_refused)
NOT_AN_INVITER = refusal(
    PermissionDenied,
    say=N_("Only administrators and coordinators can create invite links."),
    as_answer=True,
)


async def start_invite(update: Update, context: Context) -> str | int:
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    return await _show_institutions(update, context, page=0)


async def _show_institutions(update: Update, context: Context, *, page: int) -> str | int:
    async with use_case(update, context, NOT_AN_INVITER) as case:
        members.require_inviter(case.actor, now=case.now)
        institutions = await members.institutions_of(case.session, case.actor.district_id)
    if not case.done:
        return ConversationHandler.END
    actor = case.actor
    _ = context.tr.gettext
    shown = paginate(institutions, page, PAGE_SIZE)
    rows = [[(institution.name, f"inv:i:{institution.id}")] for institution in shown.items]
    if nav := shown.nav_row("inv"):
        rows.append(nav)
    if actor.is_admin:
        rows.append([(_("➕ New institution"), "inv:new")])
    rows.append([(_("Cancel"), "inv:x")])
    text = _("Whom is the invite for? Choose their institution.")
    if not institutions and not actor.is_admin:
        text = _("Your district has no institutions yet. Ask an administrator to add them.")
    await answer(update, text, keyboard(rows))
    return PICK_INSTITUTION


async def institution_button(update: Update, context: Context) -> str | int:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "inv") or ["x"]
    match parts:
        case ["p", raw_page] if (page := parse_number(raw_page, digits=4)) is not None:
            return await _show_institutions(update, context, page=page)
        case ["new"] if context.require_actor().is_admin:
            await answer(update, context.tr.gettext("Type the name of the new institution."))
            return NEW_NAME
        case ["i", raw_id] if (institution_id := parse_id(raw_id)) is not None:
            _draft(context)["institution_id"] = institution_id
            return await _show_roles(update, context)
    return await cancel(update, context)


async def new_name(update: Update, context: Context) -> str:
    message = update.effective_message
    text = " ".join((message.text or "").split()) if message else ""
    _ = context.tr.gettext
    if not text or len(text) > members.MAX_NAME_LENGTH:
        await answer(
            update,
            _("The name must have 1 to {limit} characters. Please type it again.").format(
                limit=members.MAX_NAME_LENGTH
            ),
        )
        return NEW_NAME
    _draft(context)["new_name"] = text
    rows = [
        [(context.tr.pgettext(KIND, label), f"inv:k:{kind.value}")]
        for kind, label in KIND_NAMES.items()
    ]
    rows.append([(_("Cancel"), "inv:x")])
    await answer(
        update, _("What kind of institution is {name}?").format(name=esc(text)), keyboard(rows)
    )
    return NEW_KIND


async def kind_button(update: Update, context: Context) -> str | int:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "inv") or ["x"]
    name = _draft(context).get("new_name")
    kinds = {kind.value: kind for kind in InstitutionKind}
    if len(parts) != 2 or parts[0] != "k" or parts[1] not in kinds or not name:
        return await cancel(update, context)
    async with use_case(update, context, NOT_ALLOWED) as case:
        institution = await members.create_institution(
            case.session, case.actor, name, kinds[parts[1]], now=case.now
        )
    if not case.done:
        return ConversationHandler.END
    _draft(context)["institution_id"] = institution.id
    return await _show_roles(update, context)


async def _show_roles(update: Update, context: Context) -> str:
    actor = context.require_actor()
    _ = context.tr.gettext
    rows = [
        [(_(ROLE_NAMES[role]), f"inv:r:{role.value}")]
        for role in members.INVITABLE_ROLES.get(actor.role, ())
    ]
    rows.append([(_("Back"), "inv:back"), (_("Cancel"), "inv:x")])
    # One line each on what the role may do, above its button.
    duties = [
        f"• <b>{esc(_(ROLE_NAMES[role]))}</b>: {_(ROLE_DUTIES[role])}"
        for role in members.INVITABLE_ROLES.get(actor.role, ())
    ]
    text = "\n".join([_("Which role will they have?"), "", *duties])
    await answer(update, text, keyboard(rows))
    return PICK_ROLE


async def role_button(update: Update, context: Context) -> str | int:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "inv") or ["x"]
    if parts == ["back"]:
        return await _show_institutions(update, context, page=0)
    roles = {role.value: role for role in Role}
    institution_id = _draft(context).get("institution_id")
    if len(parts) != 2 or parts[0] != "r" or parts[1] not in roles or institution_id is None:
        return await cancel(update, context)
    async with use_case(update, context, NOT_ALLOWED) as case:
        invite = await members.create_invite(
            case.session,
            institution_id=institution_id,
            role=roles[parts[1]],
            creator=case.actor,
            now=case.now,
            ttl=context.runtime.settings.invite_ttl,
        )
    if not case.done:
        return ConversationHandler.END
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    await answer(update, invite_text(invite, context.bot.username, context.tr))
    return ConversationHandler.END


def invite_text(invite: members.IssuedInvite, bot_username: str, tr: Translator) -> str:
    _ = tr.gettext
    return "\n\n".join(
        [
            _("Invite link for a {role} of {institution}. It works once, until {expires}:").format(
                role=_(ROLE_NAMES[invite.role]),
                institution=esc(invite.institution_name),
                expires=tr.datetime(invite.expires_at),
            ),
            f"https://t.me/{bot_username}?start={invite.code}",
            _("Send it to that person only, privately."),
        ]
    )


async def cancel(update: Update, context: Context) -> int:
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    await answer(update, context.tr.gettext("Cancelled. No invite link was created."))
    return ConversationHandler.END


async def type_or_press(update: Update, context: Context) -> None:
    """Something the current step does not expect (text where a button is, a photo, ...)."""
    await answer(update, context.tr.gettext("Please answer the question above, or send /cancel."))


def _draft(context: Context) -> dict[str, Any]:
    draft: dict[str, Any] = context.user_data.setdefault(DRAFT, {})  # type: ignore[union-attr]
    return draft


def handlers() -> HandlerList:
    buttons = r"^inv:"
    dialog = Dialog("invite")
    return [
        dialog.conversation(
            entry_points=[CommandHandler("invite", dialog.entry(start_invite))],
            states={
                PICK_INSTITUTION: [
                    CallbackQueryHandler(dialog.step(institution_button), pattern=buttons)
                ],
                NEW_NAME: [MessageHandler(TYPED_TEXT, dialog.step(new_name))],
                NEW_KIND: [CallbackQueryHandler(dialog.step(kind_button), pattern=buttons)],
                PICK_ROLE: [CallbackQueryHandler(dialog.step(role_button), pattern=buttons)],
            },
            fallbacks=[
                CommandHandler("cancel", dialog.step(cancel)),
                MessageHandler(TYPED, dialog.step(type_or_press)),
            ],
        )
    ]
