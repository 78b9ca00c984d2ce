"""The coordinators' side of referrals: open one, accept, decline, ask the referrer;
/referrals (the queue). Whom a decision or a question is told to is planned by the service and
sent by the outbox (handlers.referral_notices)."""

from __future__ import annotations

import contextlib

from telegram import InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)

from bot.core.i18n import N_, NP_, Translator
from bot.core.models import Consent, NoteKind, ReferralStatus
from bot.services import referrals
from bot.services.errors import PermissionDenied
from bot.services.referrals import AlreadyDecided, Details, Rejected
from handlers.common import (
    TYPED,
    Context,
    Dialog,
    HandlerList,
    acknowledge,
    answer,
    chunks,
    consuming,
    esc,
    keyboard,
    no_longer_active,
    paginate,
    parse_callback,
    parse_id,
    pressed_ids,
    say_below,
)
from handlers.referral_texts import (
    categories_text,
    guardians_text,
    rejection_text,
    urgency_text,
)
from handlers.typed import delete_typed
from handlers.usecase import on_pressed, refusal, refused_by, use_case

TYPING = "typing"
TRIAGE = "triage"
PAGE_SIZE = 8
CHUNK = 4000  # a Telegram message holds 4,096 characters

STATUS_NAMES = {
    ReferralStatus.SUBMITTED: N_("waiting for a decision"),
    ReferralStatus.NEEDS_INFO: N_("waiting for the referrer's answer"),
    ReferralStatus.ACCEPTED: N_("accepted"),
    ReferralStatus.DECLINED: N_("declined"),
    ReferralStatus.DRAFT: N_("unfinished draft"),
}
# "Answer" is also a button: a note's kind has its own context.
NOTE = "referral note"
NOTE_NAMES = {
    NoteKind.QUESTION: NP_("referral note", "Question"),
    NoteKind.ANSWER: NP_("referral note", "Answer"),
    NoteKind.DECLINE_REASON: NP_("referral note", "Reason for declining"),
}


NOT_ALLOWED = refusal(PermissionDenied, say=N_("You are not allowed to see this referral."))


async def _no_longer_kept(update: Update, context: Context, gone: Exception) -> None:
    """Show (or Open) on a referral whose details were deleted after the retention period."""
    assert isinstance(gone, referrals.NoLongerKept)
    text = context.tr.gettext(
        "The details of {code} are no longer kept: they were deleted after the retention period."
    ).format(code=gone.code)
    await say_below(update, context, text)


NO_LONGER_KEPT = refused_by(referrals.NoLongerKept, answer=_no_longer_kept)


async def _decided_already(update: Update, context: Context, already: Exception) -> None:
    """Another coordinator decided first: who, and how; the decision buttons go."""
    assert isinstance(already, AlreadyDecided)
    tr = context.tr
    _ = tr.gettext
    status = _(STATUS_NAMES[already.status])
    if already.by:
        text = _("{code} has already been decided by {name}: {status}.").format(
            code=already.code, name=esc(already.by), status=status
        )
    else:
        text = _("{code} has already been decided: {status}.").format(
            code=already.code, status=status
        )
    await _drop_buttons(update)
    await say_below(update, context, text)


async def _drop_buttons(update: Update) -> None:
    """The decision buttons under a referral's details go once it is decided."""
    query = update.callback_query
    if query is not None:
        with contextlib.suppress(TelegramError):
            await query.edit_message_reply_markup(None)


# Not a coordinator of the referral's district, or another coordinator decided first.
DECISION_REFUSALS = (
    NOT_ALLOWED,
    refused_by(AlreadyDecided, answer=_decided_already),
)


# Opening a referral.


async def open_referral(update: Update, context: Context) -> None:
    """The details, on request only, protected, and audited: a coordinator's Open, and the
    referrer's Show on every message about her referral."""
    pressed = await pressed_ids(update, context, "rf:o")
    if pressed is None:
        return
    async with use_case(update, context, NOT_ALLOWED, NO_LONGER_KEPT) as run:
        details = await referrals.view(
            run.session, run.actor, context.runtime.cipher, pressed[0], now=run.now
        )
    if not run.done:
        return
    assert update.callback_query is not None
    await acknowledge(update.callback_query)
    tr = context.tr
    texts = chunks(details_sections(details, tr), CHUNK, separator="\n\n")
    markup = decision_markup(details.id, tr) if details.can_decide else None
    for number, chunk in enumerate(texts, start=1):
        await context.bot.send_message(
            run.actor.chat_id,
            chunk,
            protect_content=True,
            reply_markup=markup if number == len(texts) else None,
        )


def decision_markup(referral_id: int, tr: Translator) -> InlineKeyboardMarkup:
    _ = tr.gettext
    return keyboard(
        [
            [(_("Accept"), f"rf:a:{referral_id}"), (_("Decline"), f"rf:d:{referral_id}")],
            [(_("Ask the referrer"), f"rf:q:{referral_id}")],
        ]
    )


def details_sections(details: Details, tr: Translator) -> list[str]:
    _ = tr.gettext
    status = _(STATUS_NAMES[details.status])
    if details.case_code:
        status += f" · {details.case_code}"
    head = [
        _("Referral {code}").format(code=details.code),
        _("Sent {date} by {referrer}, {institution}").format(
            date=tr.datetime(details.submitted_at),
            referrer=esc(details.referrer),
            institution=esc(details.institution_name),
        ),
        _("Status: {status}").format(status=status),
    ]
    if details.danger:
        head.append(_("⚠️ The referrer reported that the child may be in danger right now."))
    head += [
        _("Urgency: {urgency}").format(urgency=urgency_text(details.urgency, tr)),
        _("Guardians: {guardians}").format(
            guardians=guardians_text(details.guardians_informed, details.guardians_consent, tr)
        ),
    ]
    if details.guardians_consent is not Consent.YES:
        head.append(_("⚠️ The guardians have not agreed to a case conference."))
    child = [
        _("Child: {name}, born {year}").format(name=esc(details.name), year=details.birth_year),
        _("Class: {class_name}, {school}").format(
            class_name=esc(details.class_name), school=esc(details.school)
        ),
        _("Concerns: {concerns}").format(
            concerns=categories_text(details.categories, details.other, tr)
        ),
    ]
    sections = [
        "\n".join(head),
        "\n".join(child),
        _("What is going on:") + "\n" + esc(details.description),
        _("Already tried:") + "\n" + (esc(details.tried) or "–"),
    ]
    for note in details.notes:
        sections.append(
            f"{tr.pgettext(NOTE, NOTE_NAMES[note.kind])} – {esc(note.author)}, "
            f"{tr.datetime(note.at)}:\n" + esc(note.text)
        )
    return sections


# Deciding.


async def accept(update: Update, context: Context) -> None:
    done = await on_pressed(update, context, "rf:a", referrals.accept, *DECISION_REFUSALS)
    if done is None:
        return
    decision = done.result
    await _drop_buttons(update)
    await say_below(
        update,
        context,
        context.tr.gettext(
            "You accepted {code}. Case {case} is open, and you are its case manager."
        ).format(code=decision.code, case=decision.case_code),
        keyboard([[("📅 " + context.tr.gettext("Plan a conference"), f"cf:n:{decision.case_id}")]]),
    )


async def start_typing(update: Update, context: Context) -> str | int:
    """Decline (a reason is required) or Ask the referrer: the coordinator types the text."""
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "rf") or []
    referral_id = parse_id(parts[1]) if len(parts) == 2 else None
    if referral_id is None:
        await no_longer_active(update, context)
        return ConversationHandler.END
    action = "decline" if parts[0] == "d" else "ask"
    async with use_case(update, context, *DECISION_REFUSALS) as run:
        code = await referrals.awaiting_decision(
            run.session, run.actor, referral_id, action=action, now=run.now
        )
    if not run.done:
        return ConversationHandler.END
    context.user_data[TRIAGE] = {"id": referral_id, "action": action}  # type: ignore[index]
    _ = context.tr.gettext
    if action == "decline":
        text = _("Why do you decline {code}? Type the reason; the referrer will read it.")
    else:
        text = _("Type your question for the referrer of {code}.")
    await say_below(update, context, text.format(code=code), keyboard([[(_("Cancel"), "rf:x")]]))
    return TYPING


async def typed(update: Update, context: Context) -> str | int:
    message = update.effective_message
    task = context.user_data.get(TRIAGE)  # type: ignore[union-attr]
    if message is None or not isinstance(task, dict):
        return ConversationHandler.END
    tr = context.tr
    if message.text is None:
        await answer(update, tr.gettext("Please type your answer as text."))
        return TYPING
    cipher = context.runtime.cipher
    async with use_case(update, context, *DECISION_REFUSALS) as run:
        if task["action"] == "decline":
            result: referrals.Decision | referrals.Question | Rejected = await referrals.decline(
                run.session, run.actor, cipher, task["id"], message.text, now=run.now
            )
        else:
            result = await referrals.ask(
                run.session, run.actor, cipher, task["id"], message.text, now=run.now
            )
    if not run.done:
        return _done(context)
    if isinstance(result, Rejected):
        await answer(update, rejection_text(result, TYPING, tr))
        return TYPING
    # Stored: the typed text may name the child, so it does not stay in the coordinator's chat.
    undeleted = await delete_typed(context, message)
    if isinstance(result, referrals.Decision):
        done = tr.gettext("You declined {code}. The referrer has been told the reason.")
    else:
        done = tr.gettext(
            "Your question about {code} was sent to the referrer. The referral waits for the "
            "answer."
        )
    await answer(update, " ".join(filter(None, [done.format(code=result.code), undeleted])))
    return _done(context)


def _done(context: Context) -> int:
    context.user_data.pop(TRIAGE, None)  # type: ignore[union-attr]
    return ConversationHandler.END


async def cancel(update: Update, context: Context) -> int:
    await answer(update, context.tr.gettext("Cancelled. Nothing was sent."))
    return _done(context)


# /referrals

COORDINATORS_ONLY = refusal(
    PermissionDenied, say=N_("Only coordinators see the referral queue."), as_answer=True
)


async def show_queue(update: Update, context: Context, page: int = 0) -> None:
    async with use_case(update, context, COORDINATORS_ONLY) as run:
        items = await referrals.queue(run.session, run.actor, now=run.now)
    if not run.done:
        return
    tr = context.tr
    _ = tr.gettext
    if not items:
        await answer(update, _("No referrals are waiting for a decision."))
        return
    shown = paginate(items, page, PAGE_SIZE)
    lines = [
        _("Referrals waiting for a decision ({count}), urgent and oldest first:").format(
            count=len(items)
        )
    ]
    for item in shown.items:
        line = f"{item.code} · {urgency_text(item.urgency, tr)} · {esc(item.institution_name)}"
        line += f" · {tr.date(item.submitted_at)}"
        if item.danger:
            line = "⚠️ " + line
        if item.status is ReferralStatus.NEEDS_INFO:
            line += " · " + _(STATUS_NAMES[item.status])
        if item.consent is not Consent.YES:
            line += " · " + _("no agreement of the guardians")
        lines.append(line)
    rows = [[(item.code, f"rf:o:{item.id}")] for item in shown.items]
    if nav := shown.nav_row("rq"):
        rows.append(nav)
    await answer(update, "\n".join(lines), keyboard(rows))


async def queue_page(update: Update, context: Context) -> None:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "rq") or []
    page = parse_id(parts[1]) if len(parts) == 2 else None
    await show_queue(update, context, page or 0)


def handlers() -> HandlerList:
    dialog = Dialog("triage")
    return [
        dialog.conversation(
            entry_points=[CallbackQueryHandler(dialog.entry(start_typing), pattern=r"^rf:[dq]:")],
            states={
                TYPING: [
                    MessageHandler(TYPED, dialog.step(typed)),
                    CallbackQueryHandler(dialog.step(cancel), pattern=r"^rf:x$"),
                ]
            },
            fallbacks=[CommandHandler("cancel", dialog.step(cancel))],
        )
    ]


def command_handlers() -> HandlerList:
    """Outside the dialog's group: a command that ends the dialog still reaches these."""
    return [
        CallbackQueryHandler(consuming(open_referral), pattern=r"^rf:o:"),
        CallbackQueryHandler(consuming(accept), pattern=r"^rf:a:"),
        CommandHandler("referrals", consuming(show_queue)),
        CallbackQueryHandler(consuming(queue_page), pattern=r"^rq:p:"),
    ]
