"""Answers to a calendar invitation in Telegram: accept, tentative or decline (with a reason for
the coordinator), handing it over to a colleague; and the coordinator's new date and
cancellation of a scheduled conference.

Rules live in `bot.services.replies` and `bot.services.decisions`; the message and its calendar
file are drawn by `handlers.invitation_text`, and sent by the outbox
(`handlers.conference_notices`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.ext import CallbackQueryHandler, ConversationHandler, MessageHandler

from bot.core.i18n import N_
from bot.core.models import Rsvp
from bot.services import decisions, invitations, replies
from bot.services.board import PollClosed
from bot.services.decisions import Scheduled
from bot.services.errors import PermissionDenied
from bot.services.invitations import StaleInvitation
from bot.services.planning import Defaults
from bot.services.replies import NotYours
from handlers.board_text import numbered, refresh_board, time_refused
from handlers.common import (
    TYPED_TEXT,
    Context,
    Dialog,
    HandlerList,
    acknowledge,
    alert,
    answer,
    consuming,
    esc,
    keyboard,
    no_longer_active,
    paged_keyboard,
    paginate,
    parse_callback,
    parse_id,
    parse_number,
    pressed_ids,
    say_below,
)
from handlers.invitation_text import redraw_invitation, rsvp_label
from handlers.typed import delete_typed
from handlers.usecase import on_pressed, refusal, refused_by, use_case

REASON = "reason"
WAITING_FOR = "decline"  # user_data: the invitation and sequence a reason is for
COLLEAGUES_PAGE = 8  # colleagues on one page of "Send a colleague", with ◀ ▶ below them
ANSWERS = {"a": Rsvp.ACCEPTED, "t": Rsvp.TENTATIVE, "d": Rsvp.DECLINED}


# Participants: answering, handing over, the reason for a decline.


async def _handed_over(update: Update, context: Context, handed: Exception) -> None:
    await alert(
        update,
        context.tr.gettext("{name} answers this invitation now.").format(name=str(handed.args[0])),
    )


async def _changed(update: Update, context: Context, _error: Exception) -> None:
    if update.callback_query is not None:
        await no_longer_active(update, context)
    else:  # a reason typed after the invitation changed (a new poll or date meanwhile)
        await answer(
            update,
            context.tr.gettext(
                "That invitation has changed since you declined it, so the reason was not kept."
            ),
        )


# An invitation's refusals: not the person's, handed to a colleague, changed or over meanwhile.
REFUSALS = (
    refusal(PermissionDenied, say=N_("This is not yours to answer.")),
    refused_by(NotYours, answer=_handed_over),
    refused_by(StaleInvitation, PollClosed, answer=_changed),
)


def _invitation_ids(update: Update, prefix: str) -> tuple[int, int, str] | None:
    assert update.callback_query is not None
    parts = parse_callback(update.callback_query.data, prefix)
    if parts is None or len(parts) != 3:
        return None
    invitation_id, sequence = parse_id(parts[0]), parse_number(parts[1], digits=6)
    if invitation_id is None or sequence is None:
        return None
    return invitation_id, sequence, parts[2]


async def answer_invitation(update: Update, context: Context) -> str | int:
    ids = _invitation_ids(update, "iv")
    if ids is None or ids[2] not in ANSWERS:
        await no_longer_active(update, context)
        return ConversationHandler.END
    invitation_id, sequence, code = ids
    rsvp = ANSWERS[code]
    async with use_case(update, context, *REFUSALS) as case:
        done = await replies.answer(
            case.session, case.actor, invitation_id, sequence, rsvp, now=case.now
        )
        live = numbered(done.board)
    if not case.done:
        return ConversationHandler.END
    assert update.callback_query is not None
    tr = context.tr
    await acknowledge(
        update.callback_query,
        tr.gettext("Your answer: {answer}.").format(answer=rsvp_label(rsvp, tr)),
    )
    await _redraw_copies(update, context, done)
    await refresh_board(context, live)
    if rsvp is not Rsvp.DECLINED:
        return ConversationHandler.END
    context.user_data[WAITING_FOR] = [invitation_id, sequence]  # type: ignore[index]
    await context.bot.send_message(
        context.require_actor().chat_id,
        tr.gettext(
            "You have declined. If you like, type a short reason for the coordinator "
            "(at most {limit} characters); only they will read it."
        ).format(limit=replies.REASON_MAX),
        reply_markup=keyboard([[(tr.gettext("No reason"), "ir:skip")]]),
    )
    return REASON


async def _redraw_copies(update: Update, context: Context, done: replies.Answered) -> None:
    """Every copy of the invitation shows the answer; the pressed one too when the outbox never
    noted where it went (the process died right after sending it, or Telegram's answer to the
    send was lost)."""
    for chat_id, message_id, locale in done.messages:
        await redraw_invitation(context, done.view, chat_id, message_id, locale)
    pressed = update.callback_query.message if update.callback_query else None
    # Only an invitation's own message (it carries the calendar file): a forged button on
    # another message leaves that message as it is.
    if (
        isinstance(pressed, Message)
        and pressed.document is not None
        and (pressed.chat_id, pressed.message_id)
        not in {(chat_id, message_id) for chat_id, message_id, _locale in done.messages}
    ):
        locale = context.require_actor().locale
        await redraw_invitation(context, done.view, pressed.chat_id, pressed.message_id, locale)


async def typed_reason(update: Update, context: Context) -> str | int:
    assert update.message is not None
    tr = context.tr
    text = (update.message.text or "").strip()
    waiting = context.user_data.get(WAITING_FOR)  # type: ignore[union-attr]
    if not waiting:
        return ConversationHandler.END
    if not text:
        await update.message.reply_text(
            tr.gettext("Please type the reason as text, or tap No reason.")
        )
        return REASON
    if len(text) > replies.REASON_MAX:
        await update.message.reply_text(
            tr.gettext(
                "That is {length} characters, but at most {limit} fit here. Please shorten it."
            ).format(length=len(text), limit=replies.REASON_MAX)
        )
        return REASON
    invitation_id, sequence = waiting
    async with use_case(update, context, *REFUSALS) as case:
        await replies.give_reason(
            case.session,
            case.actor,
            invitation_id,
            sequence,
            text,
            cipher=context.runtime.cipher,
            now=case.now,
        )
    context.user_data.pop(WAITING_FOR, None)  # type: ignore[union-attr]
    if not case.done:  # answered already (a stale invitation, say)
        return ConversationHandler.END
    # Stored: a reason may tell of the child or the family, so it leaves the participant's chat.
    undeleted = await delete_typed(context, update.message)
    thanks = tr.gettext("Thank you. The coordinator will read it.")
    await context.bot.send_message(
        update.message.chat_id, " ".join(filter(None, [thanks, undeleted]))
    )
    return ConversationHandler.END


async def skip_reason(update: Update, context: Context) -> str | int:
    context.user_data.pop(WAITING_FOR, None)  # type: ignore[union-attr]
    await answer(update, context.tr.gettext("All right, no reason."))
    return ConversationHandler.END


async def choose_colleague(update: Update, context: Context) -> None:
    ids = _invitation_ids(update, "iv")
    if ids is None:
        await no_longer_active(update, context)
        return
    invitation_id, sequence, _code = ids
    async with use_case(update, context, *REFUSALS) as case:
        people = await replies.colleagues(
            case.session, case.actor, invitation_id, sequence, now=case.now
        )
    if not case.done:
        return
    tr = context.tr
    if not people:
        await alert(update, tr.gettext("Nobody else of your institution uses Round Table yet."))
        return
    await say_below(update, context, tr.gettext("Who goes instead of you?"))
    await context.bot.send_message(
        context.require_actor().chat_id,
        tr.gettext("They get the invitation and answer it."),
        reply_markup=_colleagues_markup(people, 0, invitation_id, sequence),
    )


def _colleagues_markup(
    people: list[replies.Colleague], page: int, invitation_id: int, sequence: int
) -> InlineKeyboardMarkup:
    def person(colleague: replies.Colleague) -> tuple[str, str]:
        return colleague.name, f"ih:{invitation_id}:{sequence}:{colleague.member_id}"

    shown = paginate(people, page, COLLEAGUES_PAGE)
    return paged_keyboard(shown, person, f"ic:{invitation_id}:{sequence}")


async def colleagues_page(update: Update, context: Context) -> None:
    """Another page of the colleagues: "ic:<invitation>:<sequence>:p:<page>"."""
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "ic") or []
    numbers = (
        (parse_id(parts[0]), parse_number(parts[1], digits=6), parse_number(parts[3], digits=4))
        if len(parts) == 4 and parts[2] == "p"
        else (None, None, None)
    )
    invitation_id, sequence, page = numbers
    if invitation_id is None or sequence is None or page is None:
        await no_longer_active(update, context)
        return
    async with use_case(update, context, *REFUSALS) as case:
        people = await replies.colleagues(
            case.session, case.actor, invitation_id, sequence, now=case.now
        )
    if not case.done:
        return
    if not people:  # nobody left to send
        await no_longer_active(update, context)
        return
    await answer(
        update,
        context.tr.gettext("They get the invitation and answer it."),
        _colleagues_markup(people, page, invitation_id, sequence),
    )


async def hand_over(update: Update, context: Context) -> None:
    ids = _invitation_ids(update, "ih")
    colleague = parse_id(ids[2]) if ids else None
    if ids is None or colleague is None:
        await no_longer_active(update, context)
        return
    invitation_id, sequence, _member = ids
    async with use_case(update, context, *REFUSALS) as case:
        view, name = await replies.hand_over(
            case.session, case.actor, invitation_id, sequence, colleague, now=case.now
        )
        live = numbered(await decisions.fresh_board(case.session, view.conference_id))
    if not case.done:
        return
    tr = context.tr
    await answer(
        update,
        tr.gettext(
            "The invitation to {code} is with {name} now; they answer it. You can delete the "
            "event from your calendar."
        ).format(code=view.case_code, name=esc(name)),
    )
    await refresh_board(context, live)


# The coordinator: a new date directly, or cancelling.


async def offer_new_dates(update: Update, context: Context) -> None:
    new_times = partial(decisions.new_times, defaults=Defaults.of(context.runtime.settings))
    done = await on_pressed(update, context, "ca:n", new_times, *REFUSALS)
    if done is None:
        return
    times = done.result
    tr = context.tr
    if not times:
        await say_below(
            update, context, tr.gettext("No free time in the next weeks. Try a new poll.")
        )
        return
    rows = [[(tr.slot(start), f"ca:t:{done.id}:{int(start.timestamp())}")] for start in times]
    rows.append([("📅 " + tr.gettext("New poll instead"), f"cf:w:{done.id}")])
    await say_below(
        update,
        context,
        tr.gettext(
            "Times when everyone invited is free as far as I know. Everyone gets the new time "
            "and answers again."
        ),
        keyboard(rows),
    )


async def set_new_date(update: Update, context: Context) -> None:
    ids = await pressed_ids(update, context, "ca:t", 2)
    if ids is None:
        return
    starts_at = datetime.fromtimestamp(ids[1], tz=UTC)
    async with use_case(update, context, *REFUSALS) as case:
        result = await decisions.reschedule(
            case.session, case.actor, ids[0], starts_at, now=case.now
        )
        live = numbered(result.board) if isinstance(result, Scheduled) else None
    if not case.done:
        return
    tr = context.tr
    if await time_refused(
        update, context, result, tr.gettext("That time has passed. Choose another time.")
    ):
        return
    assert isinstance(result, Scheduled) and live is not None
    await answer(
        update,
        tr.gettext(
            "The case conference {code} moves to {when}. Everyone invited gets the new time."
        ).format(code=result.case_code, when=tr.datetime(result.starts_at)),
    )
    await refresh_board(context, live)


async def ask_cancel(update: Update, context: Context) -> None:
    done = await on_pressed(update, context, "ca:x", invitations.cancellable, *REFUSALS)
    if done is None:
        return
    tr = context.tr
    await say_below(
        update,
        context,
        tr.gettext("Cancel the conference? Everyone invited is told and their calendars updated."),
        keyboard(
            [
                [("❌ " + tr.gettext("Yes, cancel it"), f"ca:y:{done.id}")],
                [(tr.gettext("No, keep it"), "ca:k")],
            ]
        ),
    )


async def keep(update: Update, context: Context) -> None:
    await answer(update, context.tr.gettext("Nothing changed."))


async def do_cancel(update: Update, context: Context) -> None:
    ids = await pressed_ids(update, context, "ca:y")
    if ids is None:
        return
    async with use_case(update, context, *REFUSALS) as case:
        board = await invitations.cancel_conference(case.session, case.actor, ids[0], now=case.now)
        live = numbered(board)
    if not case.done:
        return
    await answer(
        update,
        context.tr.gettext("The case conference {code} is cancelled.").format(code=board.case_code),
    )
    await refresh_board(context, live)


def handlers() -> HandlerList:
    dialog = Dialog("decline")
    return [
        dialog.conversation(
            entry_points=[
                CallbackQueryHandler(dialog.entry(answer_invitation), pattern=r"^iv:\d+:\d+:[atd]$")
            ],
            states={
                REASON: [
                    MessageHandler(TYPED_TEXT, dialog.step(typed_reason)),
                    CallbackQueryHandler(dialog.step(skip_reason), pattern=r"^ir:skip$"),
                ],
            },
        )
    ]


def command_handlers() -> HandlerList:
    return [
        CallbackQueryHandler(consuming(choose_colleague), pattern=r"^iv:\d+:\d+:c$"),
        CallbackQueryHandler(consuming(hand_over), pattern=r"^ih:"),
        CallbackQueryHandler(consuming(colleagues_page), pattern=r"^ic:"),
        CallbackQueryHandler(consuming(offer_new_dates), pattern=r"^ca:n:"),
        CallbackQueryHandler(consuming(set_new_date), pattern=r"^ca:t:"),
        CallbackQueryHandler(consuming(ask_cancel), pattern=r"^ca:x:"),
        CallbackQueryHandler(consuming(do_cancel), pattern=r"^ca:y:"),
        CallbackQueryHandler(consuming(keep), pattern=r"^ca:k$"),
    ]
