"""The case-conference method's own parts of a conference: the coordinator's screen of its kind,
its goal and the child's voice (`mt:` buttons, from the board and the record, changeable until
the record is finished), and a participant's "Goal of the conference" (`mg:`), read on request.

Both show protected text (the goal, the child's view): a new message that cannot be forwarded,
and every reading is audited by the service."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import CallbackQueryHandler, ConversationHandler, MessageHandler

from bot.core.i18n import N_, Translator
from bot.core.method_record import part_label
from bot.core.method_tables import ChildPart
from bot.services import decisions, method
from bot.services.errors import PermissionDenied
from bot.services.method import BadText, MethodClosed, MethodView
from handlers.board_text import numbered, refresh_board
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
    parse_id,
    say_below,
)
from handlers.method_texts import GOAL, GOAL_PROMPT, METHOD, kind_line, next_kind, too_long
from handlers.task_screens import delete_typed_text
from handlers.usecase import refusal, use_case

TYPING = "typing"
EDITING = "method"  # user_data: {"conference": id, "field": "goal" | "support" | ...}
NOT_YOURS = refusal(PermissionDenied, say=N_("This is not yours to change."))
NOT_A_PARTICIPANT = refusal(
    PermissionDenied, say=N_("Only the participants of this conference can read its goal.")
)
CLOSED = refusal(
    MethodClosed,
    say=N_("The record is finished (or the conference cancelled): this can no longer change."),
)
PARTS = {
    "p": ChildPart.PRESENT,
    "s": ChildPart.SUPPORTED,
    "w": ChildPart.VIEW,
    "a": ChildPart.ABSENT,
}
PROMPTS = {
    "goal": GOAL_PROMPT,
    "support": N_("Type who supports the child at the conference (at most {limit} characters)."),
    "reason": N_("Type why the child does not take part (at most {limit} characters)."),
    "view": N_(
        "Type the child's view in their own words, as they gave it after preparation (at most "
        "{limit} characters). It is stored encrypted and appears only in the record."
    ),
}
FIELD_KEYS = {"g": "goal", "s": "support", "r": "reason", "v": "view"}


def method_text(view: MethodView, tr: Translator) -> str:
    _ = tr.gettext
    section = view.section
    lines = [
        "🧒 " + _("<b>Goal and the child's voice: {code}</b>").format(code=view.case_code),
        kind_line(section.kind, tr),
        _("Goal: {goal}").format(goal=esc(section.goal) if section.goal else "—"),
        "",
        _("How the child takes part: {part}").format(part=part_label(section.child_part, tr)),
    ]
    if section.child_part is ChildPart.SUPPORTED:
        lines.append(_("Support person: {name}").format(name=esc(section.support) or "—"))
    if section.child_part is ChildPart.ABSENT:
        lines.append(_("Reason: {reason}").format(reason=esc(section.reason) or "—"))
    lines.append(_("The child's view: {view}").format(view=esc(section.child_view) or "—"))
    if not view.open:
        lines += ["", _("The record is finished: this is as it stands in the record.")]
    return "\n".join(lines)


def method_markup(view: MethodView, tr: Translator) -> InlineKeyboardMarkup | None:
    if not view.open:
        return None
    _ = tr.gettext
    conf = view.conference_id
    part = view.section.child_part

    def mark(key: str, label: str) -> tuple[str, str]:
        chosen = PARTS[key] is part
        return (("• " + label + " •") if chosen else label, f"{METHOD}:p:{conf}:{key}")

    rows = [
        [("🏷 " + _("Kind"), f"{METHOD}:k:{conf}"), ("🎯 " + _("Goal"), f"{METHOD}:g:{conf}")],
        [mark("p", _("Child present")), mark("s", _("With a support person"))],
        [mark("w", _("Written or reported view")), mark("a", _("Not taking part"))],
    ]
    if part is ChildPart.SUPPORTED:
        rows.append([("✍ " + _("Who supports the child"), f"{METHOD}:s:{conf}")])
    if part is ChildPart.ABSENT:
        rows.append([("✍ " + _("Why not"), f"{METHOD}:r:{conf}")])
    rows.append([("✍ " + _("The child's view"), f"{METHOD}:v:{conf}")])
    return keyboard(rows)


async def _screen(update: Update, context: Context, conference_id: int, *, below: bool) -> None:
    """The screen: a new protected message (`below`), or in place of the pressed one (which is
    protected already)."""
    async with use_case(update, context, NOT_YOURS) as case:
        view = await method.method_view(
            case.session, case.actor, context.runtime.cipher, conference_id, now=case.now
        )
    if not case.done:
        return
    tr = context.tr
    text, markup = method_text(view, tr), method_markup(view, tr)
    if below or update.callback_query is None:
        await say_below(update, context, text, markup, protect=True)
        return
    await answer(update, text, markup)


async def pressed(update: Update, context: Context) -> str | int:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, METHOD) or []
    conference = parse_id(parts[1]) if len(parts) >= 2 else None
    if conference is None:
        await no_longer_active(update, context)
        return ConversationHandler.END
    match parts[0], parts[2:]:
        case "o", []:
            await _screen(update, context, conference, below=True)
            return ConversationHandler.END
        case "k", []:
            async with use_case(update, context, NOT_YOURS, CLOSED) as case:
                kind = next_kind(await method.kind_of(case.session, conference))
                await method.set_kind(case.session, case.actor, conference, kind, now=case.now)
                # The live board says the kind too.
                board = numbered(await decisions.fresh_board(case.session, conference))
            if case.done:
                await refresh_board(context, board)
        case "p", [key] if key in PARTS:
            async with use_case(update, context, NOT_YOURS, CLOSED) as case:
                await method.set_child_part(
                    case.session, case.actor, conference, PARTS[key], now=case.now
                )
        case ("g" | "s" | "r" | "v") as key, []:
            return await _ask(update, context, conference, FIELD_KEYS[key])
        case _:
            await no_longer_active(update, context)
            return ConversationHandler.END
    if case.done:
        await _screen(update, context, conference, below=False)
    return ConversationHandler.END


async def _ask(update: Update, context: Context, conference_id: int, field: str) -> str | int:
    async with use_case(update, context, NOT_YOURS, CLOSED) as case:
        await method.changeable(case.session, case.actor, conference_id, now=case.now)
    if not case.done:
        return ConversationHandler.END
    context.user_data[EDITING] = {"conference": conference_id, "field": field}  # type: ignore[index]
    limit = method.FIELDS[field][1]
    await say_below(update, context, context.tr.gettext(PROMPTS[field]).format(limit=limit))
    return TYPING


async def typed(update: Update, context: Context) -> str | int:
    editing = (context.user_data or {}).get(EDITING)
    message = update.effective_message
    if not isinstance(editing, dict) or message is None:
        return ConversationHandler.END
    conference, field = int(editing["conference"]), str(editing["field"])
    text = message.text or ""
    try:
        async with use_case(update, context, NOT_YOURS, CLOSED) as case:
            await method.set_text(
                case.session,
                case.actor,
                context.runtime.cipher,
                conference,
                field,
                text=text,
                now=case.now,
            )
    except BadText as error:
        await answer(update, too_long(context.tr, error.limit, len(text.strip())))
        return TYPING
    context.user_data.pop(EDITING, None)  # type: ignore[union-attr]
    if not case.done:
        return ConversationHandler.END
    await delete_typed_text(update)  # what was typed goes once it is stored (encrypted)
    await _screen(update, context, conference, below=True)
    return ConversationHandler.END


async def read_goal(update: Update, context: Context) -> None:
    """A participant's "Goal of the conference": protected, audited; anyone else refused."""
    query = update.callback_query
    parts = parse_callback(query.data if query else None, GOAL) or []
    conference = parse_id(parts[0]) if len(parts) == 1 else None
    if conference is None or update.effective_chat is None:
        await no_longer_active(update, context)
        return
    async with use_case(update, context, NOT_A_PARTICIPANT) as case:
        goal = await method.read_goal(
            case.session, case.actor, context.runtime.cipher, conference, now=case.now
        )
    if not case.done:
        return
    tr = context.tr
    _ = tr.gettext
    lines = [
        "🎯 " + _("<b>Goal of the case conference {code}</b>").format(code=goal.case_code),
        kind_line(goal.kind, tr),
        "",
        esc(goal.goal) if goal.goal else _("The coordinator has not written the goal yet."),
    ]
    await say_below(update, context, "\n".join(lines), protect=True)


def handlers() -> HandlerList:
    dialog = Dialog("method")
    return [
        dialog.conversation(
            entry_points=[CallbackQueryHandler(dialog.entry(pressed), pattern=rf"^{METHOD}:")],
            states={TYPING: [MessageHandler(TYPED, dialog.step(typed))]},
        )
    ]


def command_handlers() -> HandlerList:
    return [CallbackQueryHandler(consuming(read_goal), pattern=rf"^{GOAL}:")]
