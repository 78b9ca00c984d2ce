"""The record circulated for comments (`rk:` buttons): a participant's Comment (typed, then
deleted from the chat) and No comments under the draft; the coordinator reading a comment
(protected, audited) and sending the final record."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler

from bot.core.circulation_tables import Reply
from bot.core.i18n import N_, Translator
from bot.services import circulation, records
from bot.services.circulation import Answered
from bot.services.errors import PermissionDenied
from handlers.circulation_notices import comment_author
from handlers.common import (
    TYPED_TEXT,
    Context,
    Dialog,
    HandlerList,
    answer,
    consuming,
    esc,
    pressed_ids,
    say_below,
)
from handlers.task_screens import TASK_REFUSALS, delete_typed_text, fits, send_record
from handlers.usecase import on_pressed, refusal, use_case

COMMENT = "comment"
DRAFT = "record_comment"  # the invitation being commented on, in the dialog's user data
REFUSALS = (
    refusal(PermissionDenied, say=N_("This is not yours to answer.")),
    *TASK_REFUSALS[1:],
)


# A participant's answer.


def _answered_text(result: Answered, tr: Translator) -> str:
    _ = tr.gettext
    if result.saved:
        text = _("Noted: no comments on the draft record of {code}.")
    elif result.reply is Reply.COMMENTED:
        text = _("You have commented on the draft record of {code}; the coordinator has it.")
    elif result.final:
        text = _("The final record of {code} has gone out already.")
    else:
        text = _("Noted already: no comments on the draft record of {code}.")
    return text.format(code=result.code)


async def no_comments(update: Update, context: Context) -> None:
    done = await on_pressed(update, context, "rk:n", circulation.no_comments, *REFUSALS)
    if done is not None:
        await say_below(update, context, _answered_text(done.result, context.tr))


async def ask_comment(update: Update, context: Context) -> str | int:
    done = await on_pressed(update, context, "rk:c", circulation.commentable, *REFUSALS)
    if done is None:
        return ConversationHandler.END
    code = done.result
    assert context.user_data is not None
    context.user_data[DRAFT] = {"invitation": done.id}
    await say_below(
        update,
        context,
        context.tr.gettext(
            "Type your comment on the draft record of {code} in one message (at most {limit} "
            "characters). It is stored encrypted and only the coordinator reads it. /cancel "
            "to leave it."
        ).format(code=code, limit=circulation.COMMENT_MAX),
    )
    return COMMENT


async def typed_comment(update: Update, context: Context) -> str | int:
    assert update.message is not None and context.user_data is not None
    tr = context.tr
    text = (update.message.text or "").strip()
    too_long = tr.gettext("That is {length} characters; a comment takes 1 to {limit}.")
    if not await fits(update, text, circulation.COMMENT_MAX, too_long):
        return COMMENT
    invitation_id = int(context.user_data.get(DRAFT, {}).get("invitation", 0))
    async with use_case(update, context, *REFUSALS) as case:
        result = await circulation.add_comment(
            case.session, case.actor, context.runtime.cipher, invitation_id, text, now=case.now
        )
    context.user_data.pop(DRAFT, None)
    await delete_typed_text(update)
    if case.done:
        said = tr.gettext("Your comment on the draft record of {code} went to the coordinator.")
        if result.late:
            said += " " + tr.gettext("It came after the deadline and is marked so.")
        await update.message.reply_text(said.format(code=result.code))
    return ConversationHandler.END


async def cancel_comment(update: Update, context: Context) -> int:
    assert context.user_data is not None
    context.user_data.pop(DRAFT, None)
    await say_below(update, context, context.tr.gettext("Nothing was sent."))
    return ConversationHandler.END


# The coordinator.


async def read_comment(update: Update, context: Context) -> None:
    ids = await pressed_ids(update, context, "rk:r")
    if ids is None:
        return
    async with use_case(update, context, *TASK_REFUSALS) as case:
        notice, text = await circulation.read_comment(
            case.session, case.actor, context.runtime.cipher, ids[0], now=case.now
        )
    if not case.done:
        return
    tr = context.tr
    head = tr.gettext("Comment on the draft record of {code}: {who}, {name}").format(
        code=notice.code, who=esc(comment_author(notice, tr)), name=esc(notice.author)
    )
    if notice.late:
        head += " " + tr.gettext("(after the deadline)")
    await answer(update, f"{head}\n\n{esc(text)}", protect=True)


async def send_final(update: Update, context: Context) -> None:
    ids = await pressed_ids(update, context, "rk:f")
    if ids is None:
        return
    tr = context.tr
    record = None
    async with use_case(update, context, *TASK_REFUSALS) as case:
        final = await circulation.send_final(case.session, case.actor, ids[0], now=case.now)
        if final.first:  # the coordinator's own copy, audited as every record document is
            record = await records.record_document(
                case.session,
                case.actor,
                context.runtime.cipher,
                ids[0],
                with_name=False,
                now=case.now,
            )
    if not case.done or update.effective_chat is None:
        return
    if record is None:
        await say_below(
            update,
            context,
            tr.gettext("The final record of {code} went out {when}.").format(
                code=final.code, when=tr.datetime(final.final_at)
            ),
        )
        return
    text = tr.ngettext(
        "The final record of {code} goes to {count} participant.",
        "The final record of {code} goes to {count} participants.",
        final.recipients,
    ).format(code=final.code, count=final.recipients)
    await say_below(update, context, text)
    caption = tr.gettext("The final record of {code}: only you have it.")
    await send_record(context, update.effective_chat.id, record, caption.format(code=record.code))


# Wiring.


def handlers() -> HandlerList:
    dialog = Dialog("record comment")
    return [
        dialog.conversation(
            entry_points=[
                CallbackQueryHandler(dialog.entry(ask_comment), pattern=r"^rk:c:\d+$"),
            ],
            states={COMMENT: [MessageHandler(TYPED_TEXT, dialog.step(typed_comment))]},
            fallbacks=[CommandHandler("cancel", dialog.step(cancel_comment))],
        ),
    ]


def command_handlers() -> HandlerList:
    return [
        CallbackQueryHandler(consuming(no_comments), pattern=r"^rk:n:\d+$"),
        CallbackQueryHandler(consuming(read_comment), pattern=r"^rk:r:\d+$"),
        CallbackQueryHandler(consuming(send_final), pattern=r"^rk:f:\d+$"),
    ]
