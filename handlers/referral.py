"""/refer: a referrer reports a concern about a child, step by step; /myreferrals; answering a
coordinator's question.

The draft lives in the database (encrypted), together with the step the dialog is at, so a
restart at any moment loses nothing and the dialog resumes where the database says it is. The
conversation state mirrors that step. Prompts never repeat the child's details; only the summary
shows them, as a protected message (handlers.referral_steps).
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)

from bot.core.i18n import N_
from bot.core.models import ReferralStatus
from bot.services import drafting, referrals
from bot.services.drafting import Draft
from bot.services.errors import PermissionDenied
from bot.services.referrals import Rejected
from handlers.common import (
    TYPED,
    Context,
    Dialog,
    HandlerList,
    acknowledge,
    alert,
    answer,
    consuming,
    keyboard,
    no_longer_active,
    parse_callback,
    say_below,
)
from handlers.referral_steps import cancel_button, show_step
from handlers.referral_texts import REPLY, emergency_text, rejection_text, show_button
from handlers.typed import delete_messages, unix
from handlers.usecase import on_pressed, refusal, use_case

logger = logging.getLogger(__name__)

DIALOG = "refer"
RESUME = "resume"
REPLY_TO = "reply_to"
GONE = N_(
    "There is no referral in progress: it was sent, cancelled, or deleted after 14 days "
    "without changes. /refer starts a new one."
)
DRAFT_GONE = refusal(drafting.NoDraft, say=GONE)
NOT_A_REFERRER = refusal(
    PermissionDenied,
    say=N_(
        "Concerns are reported by referrers: school and counselling staff. If you "
        "need to report one, ask your coordinator for a referrer's invite."
    ),
    as_answer=True,
)

STATUS_NAMES = {
    ReferralStatus.DRAFT: N_("unfinished draft"),
    ReferralStatus.SUBMITTED: N_("waiting for a decision"),
    ReferralStatus.NEEDS_INFO: N_("question for you"),
    ReferralStatus.ACCEPTED: N_("accepted"),
    ReferralStatus.DECLINED: N_("declined"),
}


# Entering.


async def start_refer(update: Update, context: Context) -> str | int:
    """/refer and the home message's "Report a concern" button."""
    context.user_data.pop(REPLY_TO, None)  # type: ignore[union-attr]
    tr = context.tr
    async with use_case(update, context, NOT_A_REFERRER) as run:
        drafting.require_referrer(run.actor, now=run.now)
        draft = await drafting.find_draft(run.session, run.actor, context.runtime.cipher)
    if not run.done:
        return ConversationHandler.END
    if draft is None:
        return await _fresh(update, context)
    text = tr.gettext(
        "You have an unfinished referral, last changed {date}. Continue it or start over?"
    ).format(date=tr.datetime(draft.updated_at))
    _ = tr.gettext
    await answer(
        update,
        text,
        keyboard(
            [[(_("Continue"), "ref:resume"), (_("Start over"), "ref:fresh")], [cancel_button(tr)]]
        ),
    )
    return RESUME


async def _fresh(update: Update, context: Context) -> str:
    async with use_case(update, context) as run:
        draft, discarded = await drafting.start_draft(
            run.session, run.actor, context.runtime.cipher, now=run.now
        )
    intro = context.tr.gettext(
        "Report a concern about a child. It takes about three minutes; you can stop at any time "
        "and continue later with /refer."
    )
    deleted, _failed = await delete_messages(context, run.actor.chat_id, discarded)
    return await show_step(
        update, context, draft, before="\n\n".join(filter(None, [deleted, intro]))
    )


async def _current_draft(context: Context) -> Draft | None:
    runtime = context.runtime
    async with runtime.database.reading() as session:
        return await drafting.find_draft(session, context.require_actor(), runtime.cipher)


async def resume(update: Update, context: Context) -> str | int:
    """ "Continue" (also from the one-day reminder): back to where the draft is."""
    context.user_data.pop(REPLY_TO, None)  # type: ignore[union-attr]
    draft = await _current_draft(context)
    if draft is None:
        return await _draft_gone(update, context)
    return await show_step(update, context, draft)


async def where_you_are(update: Update, context: Context, before: str) -> bool:
    """After an answer lost on the way (handlers.errors.answer_lost): the question of the step
    the draft is at, below `before`. False without a draft, or while answering a coordinator's
    question."""
    if (context.user_data or {}).get(REPLY_TO) is not None:
        return False
    draft = await _current_draft(context)
    if draft is None:
        return False
    await show_step(update, context, draft, before=before)
    return True


# The steps.


async def typed(update: Update, context: Context) -> str | int | None:
    """A typed answer (or a photo, a voice message, ...) to the step the draft is at."""
    message = update.effective_message
    if message is None:
        return None
    async with use_case(update, context, DRAFT_GONE) as run:
        draft, rejected = await drafting.typed_step(
            run.session,
            run.actor,
            context.runtime.cipher,
            message.text,
            message_id=message.message_id,
            sent_at=unix(message.date),
            now=run.now,
        )
    if not run.done:
        return ConversationHandler.END
    if rejected is not None:  # the draft is left at its step, which is asked again
        before = rejection_text(rejected, draft.step, context.tr)
        return await show_step(update, context, draft, before=before)
    return await show_step(update, context, draft)


async def pressed(update: Update, context: Context) -> str | int | None:
    """A button of the dialog: a choice, Back, an edit on the summary, Send or Cancel."""
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "ref") or []
    cipher = context.runtime.cipher
    if parts != ["rx"]:
        context.user_data.pop(REPLY_TO, None)  # type: ignore[union-attr]
    match parts:
        case ["new"]:
            return await start_refer(update, context)
        case ["x"]:
            return await confirm_cancel(update, context)
        case ["xx" | "rx"]:
            return await cancel(update, context)
        case ["send"]:
            return await send(update, context)
        case ["resume"]:
            return await resume(update, context)
        case ["fresh"]:
            return await _fresh(update, context)
        case ["go" | "edit" as how, step] if step in drafting.STEPS:
            async with use_case(update, context, DRAFT_GONE) as run:
                draft = await drafting.go_to(
                    run.session, run.actor, cipher, step, now=run.now, edit=how == "edit"
                )
            if not run.done:
                return ConversationHandler.END
            return await show_step(update, context, draft)
        case [step, value] if step in drafting.STEPS:
            async with use_case(update, context, DRAFT_GONE) as run:
                result = await drafting.set_choice(
                    run.session, run.actor, cipher, step, value, now=run.now
                )
            if not run.done:
                return ConversationHandler.END
            if result is None:
                await no_longer_active(update, context)
                return None
            if isinstance(result, Rejected):
                assert query is not None
                await acknowledge(
                    query, context.tr.gettext("Choose at least one concern."), alert=True
                )
                return None
            before = emergency_text(context.tr) if (step, value) == ("danger", "yes") else ""
            toggled = step == result.step == "concerns"
            return await show_step(update, context, result, before=before, in_place=toggled)
    await no_longer_active(update, context)
    return None


async def send(update: Update, context: Context) -> str | int:
    """Send the draft; the coordinators' alert was planned with it and goes out from the
    outbox (handlers.referral_notices)."""
    runtime = context.runtime
    async with use_case(update, context, DRAFT_GONE) as run:
        result = await drafting.submit(run.session, run.actor, runtime.cipher, now=run.now)
    if not run.done:
        return ConversationHandler.END
    if isinstance(result, Draft):  # something is missing: ask for it
        return await show_step(update, context, result)
    tr = context.tr
    _ = tr.gettext
    if update.callback_query is not None:
        await acknowledge(update.callback_query)
    # The summary (the bot's message with the child's details) goes with the referrer's own.
    chat_id = run.actor.chat_id
    deleted, retry = await delete_messages(context, chat_id, result.message_refs, retried=True)
    async with runtime.database.transaction() as session:
        await drafting.followed_up(session, result.referral_id, remaining=retry)
    lines = [
        _("Sent. Your referral code is {code}.").format(code=result.code),
        _(
            "The coordinators have been told. I will let you know when its status changes; "
            "/myreferrals shows the status of your referrals."
        )
        if result.alerted
        else _(
            "No coordinator could be reached right now. Your referral is saved and waits "
            "in their queue."
        ),
        deleted,
    ]
    await context.bot.send_message(
        chat_id,
        "\n\n".join(line for line in lines if line),
        reply_markup=keyboard([[show_button(result.referral_id, tr)]]),
    )
    return ConversationHandler.END


async def confirm_cancel(update: Update, context: Context) -> str | int:
    """The draft's Cancel button asks first: deleting it cannot be undone. Asking twice, or a
    confirmation pressed after the draft is gone, changes nothing."""
    draft = await _current_draft(context)
    if draft is None:
        return await _draft_gone(update, context)
    _ = context.tr.gettext
    await answer(
        update,
        _("Delete this draft? Nothing is sent."),
        keyboard([[(_("Yes, delete"), "ref:xx")], [(_("No, keep it"), "ref:resume")]]),
    )
    return draft.step


async def cancel(update: Update, context: Context) -> int:
    """Cancel confirmed (or /cancel) deletes the draft; while answering a question, it cancels
    only the answer."""
    if context.user_data.pop(REPLY_TO, None) is not None:  # type: ignore[union-attr]
        await answer(update, context.tr.gettext("Cancelled. No answer was sent."))
        return ConversationHandler.END
    async with use_case(update, context) as run:
        refs = await drafting.discard_draft(run.session, run.actor)
    if refs is None:
        return await _draft_gone(update, context)
    lines = [context.tr.gettext("Cancelled. Nothing was sent, and the draft is deleted.")]
    lines.append((await delete_messages(context, run.actor.chat_id, refs))[0])
    await answer(update, "\n\n".join(line for line in lines if line))
    return ConversationHandler.END


async def _draft_gone(update: Update, context: Context) -> int:
    await alert(update, context.tr.gettext(GONE))
    return ConversationHandler.END


# Answering a coordinator's question.


# Not the referrer's referral, or no question waiting for an answer any more.
REPLY_REFUSALS = (
    refusal(PermissionDenied, say=N_("You are not allowed to do that."), as_answer=True),
    refusal(
        referrals.NotWaitingForAnswer,
        say=N_("That question has already been answered, or the referral has been decided."),
        as_answer=True,
    ),
)


async def start_reply(update: Update, context: Context) -> str | int | None:
    done = await on_pressed(update, context, "rf:r", referrals.question_for, *REPLY_REFUSALS)
    if done is None:
        return None  # stale or refused: whatever dialog they were in goes on
    tr = context.tr
    code = done.result
    context.user_data[REPLY_TO] = done.id  # type: ignore[index]
    await say_below(
        update,
        context,
        tr.gettext(
            "Type your answer about {code}. Once it is stored, I delete your message from this "
            "chat."
        ).format(code=code),
        keyboard([[(tr.gettext("Cancel"), "ref:rx")]]),
    )
    return REPLY


async def reply_typed(update: Update, context: Context) -> str | int:
    message = update.effective_message
    referral_id = context.user_data.get(REPLY_TO)  # type: ignore[union-attr]
    tr = context.tr
    if message is None or not isinstance(referral_id, int):
        return ConversationHandler.END
    if message.text is None:
        await answer(update, tr.gettext("Please type your answer as text."))
        return REPLY
    cipher = context.runtime.cipher
    async with use_case(update, context, *REPLY_REFUSALS) as run:
        result = await referrals.answer(
            run.session, run.actor, cipher, referral_id, message.text, now=run.now
        )
    if not run.done:
        return ConversationHandler.END
    if isinstance(result, Rejected):
        await answer(update, rejection_text(result, REPLY, tr))
        return REPLY
    context.user_data.pop(REPLY_TO, None)  # type: ignore[union-attr]
    deleted, _failed = await delete_messages(
        context, run.actor.chat_id, [[message.message_id, unix(message.date)]]
    )
    lines = [
        tr.gettext("Thank you. Your answer about {code} was sent to the coordinators.").format(
            code=result.code
        ),
        deleted,
    ]
    if result.draft_kept:
        lines.append(tr.gettext("Your unfinished referral is kept: /refer continues it."))
    markup = keyboard([[show_button(referral_id, tr)]])
    await answer(update, "\n\n".join(line for line in lines if line), markup)
    return ConversationHandler.END


# /myreferrals


async def my_referrals(update: Update, context: Context) -> None:
    runtime = context.runtime
    async with runtime.database.reading() as session:
        own = await referrals.own_referrals(session, context.require_actor())
    tr = context.tr
    _ = tr.gettext
    if not own:
        await answer(update, _("You have not reported any concern yet. /refer reports one."))
        return
    lines = [_("Your referrals:")]
    rows = []
    for item in own[:30]:
        status = _(STATUS_NAMES[item.status])
        if item.code is None:
            lines.append(
                _("Unfinished draft, last changed {date}: /refer continues it.").format(
                    date=tr.date(item.at)
                )
            )
            continue
        if item.case_code is not None:
            status = _("{status}: case {case}").format(status=status, case=item.case_code)
        lines.append(f"{item.code} · {status} · {tr.date(item.at)}")
        if item.kept:
            label, data = show_button(item.id, tr)
            rows.append([(f"{label}: {item.code}", data)])
    await answer(update, "\n".join(lines), keyboard(rows) if rows else None)


def handlers() -> HandlerList:
    dialog = Dialog(DIALOG)
    # Every button of the dialog is an entry point: the draft and its step are in the database,
    # so a press on the draft's message brings the person back into it from any other dialog.
    typed_here: HandlerList = [MessageHandler(TYPED, dialog.step(typed))]
    states: dict[object, HandlerList] = {step: typed_here for step in (*drafting.STEPS, RESUME)}
    states[REPLY] = [MessageHandler(TYPED, dialog.step(reply_typed))]
    return [
        dialog.conversation(
            entry_points=[
                CommandHandler("refer", dialog.entry(start_refer)),
                CallbackQueryHandler(dialog.entry(pressed), pattern=r"^ref:"),
                CallbackQueryHandler(dialog.entry(start_reply), pattern=r"^rf:r:"),
            ],
            states=states,
            fallbacks=[CommandHandler("cancel", dialog.step(cancel))],
        )
    ]


def command_handlers() -> HandlerList:
    """Outside the dialog's group: a command that ends the dialog still reaches these."""
    return [CommandHandler("myreferrals", consuming(my_referrals))]
