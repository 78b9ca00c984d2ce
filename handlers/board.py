"""The coordinator's board and the decision: the board again from /cases, a poll closed early,
the best time or another confirmed, a blocking invitee made optional, a new poll over the next
window, and a guardian's answers entered for them."""

from __future__ import annotations

from functools import partial

from telegram import Update
from telegram.ext import CallbackQueryHandler

from bot.core.i18n import N_
from bot.core.models import ConferenceStatus
from bot.services import decisions, polls
from bot.services.board import Board, Recipient
from bot.services.decisions import Scheduled
from bot.services.errors import PermissionDenied
from bot.services.members import Actor
from bot.services.planning import Defaults, NoCandidates
from handlers.board_text import (
    NumberedBoard,
    numbered,
    offer,
    offer_markup,
    offer_text,
    refresh_board,
    send_board,
    time_refused,
)
from handlers.common import (
    Context,
    HandlerList,
    acknowledge,
    answer,
    consuming,
    esc,
    keyboard,
    pressed_ids,
    say_below,
)
from handlers.poll_messages import POLL_CLOSED, POLL_REFUSALS, deliver, poll_markup, poll_text
from handlers.usecase import on_pressed, refusal, use_case

ONLY_THE_COORDINATOR = refusal(
    PermissionDenied, say=N_("Only the conference's coordinator can close its poll early.")
)


async def _pressed_board(
    update: Update, context: Context, prefix: str, *, polling: bool = False
) -> tuple[Board, Actor] | None:
    """The board of the pressed button's conference as the one who pressed may see it, and
    who that is (`polling`: only while the poll is open); None when the button was stale or
    the look refused (already answered)."""
    ids = await pressed_ids(update, context, prefix)
    if ids is None:
        return None
    async with use_case(update, context, *POLL_REFUSALS) as case:
        board = await decisions.board(
            case.session, case.actor, ids[0], now=case.now, polling=polling
        )
    if not case.done:
        return None
    return board, case.actor


async def show_board(update: Update, context: Context) -> None:
    """The board again, as a new live message (from /cases)."""
    seen = await _pressed_board(update, context, "cf:b")
    if seen is None:
        return
    board, actor = seen
    assert update.callback_query is not None
    await acknowledge(update.callback_query)
    # The live board moves to this message; a colleague's look is a copy.
    live = board.status is ConferenceStatus.POLLING and board.coordinator_id == actor.member_id
    await send_board(context, actor.chat_id, board, live=live)


async def decide_now(update: Update, context: Context) -> None:
    done = await on_pressed(
        update, context, "cf:o", decisions.board_to_decide, ONLY_THE_COORDINATOR, POLL_CLOSED
    )
    if done is None:
        return
    board = done.result
    assert update.callback_query is not None
    await acknowledge(update.callback_query)
    await offer(context, board, all_answered=all(i.answered_at for i in board.invitees))


async def choose_time(update: Update, context: Context) -> None:
    """Every candidate time as a button, to force one."""
    seen = await _pressed_board(update, context, "cf:a", polling=True)
    if seen is None:
        return
    board = seen[0]
    tr = context.tr
    rows = []
    for slot in board.slots:
        blockers = board.outcome.blockers.get(slot.id, ())
        mark = "⚠️ " if blockers else ""
        rows.append([(mark + tr.slot(slot.starts_at), f"cf:c:{board.conference_id}:{slot.id}")])
    await answer(
        update,
        tr.gettext("Which time? ⚠️ marks times a required invitee cannot make."),
        keyboard(rows),
    )


async def confirm_time(update: Update, context: Context) -> None:
    ids = await pressed_ids(update, context, "cf:c", 2)
    if ids is None:
        return
    tr = context.tr
    async with use_case(update, context, *POLL_REFUSALS) as case:
        result = await decisions.confirm(case.session, case.actor, ids[0], ids[1], now=case.now)
        live = numbered(result.board) if isinstance(result, Scheduled) else None
    if not case.done:
        return
    passed = tr.gettext("That time has passed. Choose another time or poll the next window.")
    if await time_refused(update, context, result, passed):
        return
    assert isinstance(result, Scheduled) and live is not None
    await _scheduled(update, context, result, live)


async def _scheduled(
    update: Update, context: Context, done: Scheduled, live: NumberedBoard
) -> None:
    tr = context.tr
    await answer(
        update,
        tr.gettext(
            "The case conference {code} is set for {when}, {place}. Everyone invited is told."
        ).format(code=done.case_code, when=tr.datetime(done.starts_at), place=esc(done.place)),
    )
    await refresh_board(context, live)


async def make_optional(update: Update, context: Context) -> None:
    ids = await pressed_ids(update, context, "cf:m")
    if ids is None:
        return
    async with use_case(update, context, *POLL_REFUSALS) as case:
        board = await decisions.make_optional(case.session, case.actor, ids[0], now=case.now)
        live = numbered(board)
    if not case.done:
        return
    tr = context.tr
    answered = all(invitee.answered_at for invitee in board.invitees if invitee.required)
    await answer(update, offer_text(board, tr, all_answered=answered), offer_markup(board, tr))
    await refresh_board(context, live)


async def poll_next_window(update: Update, context: Context) -> None:
    next_window = partial(decisions.next_window, defaults=Defaults.of(context.runtime.settings))
    done = await on_pressed(update, context, "cf:w", next_window, *POLL_REFUSALS)
    if done is None:
        return
    started = done.result
    tr = context.tr
    if isinstance(started, NoCandidates):
        await answer(
            update,
            tr.gettext(
                "Nothing between {first} and {last} is free either. Choose a time anyway, or plan "
                "again later."
            ).format(first=tr.day(started.first_day), last=tr.day(started.last_day)),
        )
        return
    await answer(
        update,
        tr.gettext("A new poll for {code} is on its way, with new times.").format(
            code=started.case_code
        ),
    )
    await deliver(context, started)


async def enter_offline(update: Update, context: Context) -> None:
    """The coordinator answers for a guardian without Telegram: the poll comes to them."""
    done = await on_pressed(update, context, "pe", polls.poll, *POLL_REFUSALS)
    if done is None:
        return
    view = done.result
    message = await say_below(
        update,
        context,
        poll_text(view, context.tr),
        poll_markup(view, context.tr, context.runtime.settings),
    )
    if message is None:
        return
    actor = done.actor
    me = Recipient(actor.member_id, message.chat_id, actor.locale, actor.display_name)
    async with context.runtime.database.transaction() as session:
        await polls.record_message(session, view.invitation.id, me, message.message_id)


def handlers() -> HandlerList:
    return [
        CallbackQueryHandler(consuming(enter_offline), pattern=r"^pe:"),
        CallbackQueryHandler(consuming(decide_now), pattern=r"^cf:o:"),
        CallbackQueryHandler(consuming(choose_time), pattern=r"^cf:a:"),
        CallbackQueryHandler(consuming(confirm_time), pattern=r"^cf:c:"),
        CallbackQueryHandler(consuming(make_optional), pattern=r"^cf:m:"),
        CallbackQueryHandler(consuming(poll_next_window), pattern=r"^cf:w:"),
        CallbackQueryHandler(consuming(show_board), pattern=r"^cf:b:"),
    ]
