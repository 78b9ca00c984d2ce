"""The coordinator's board, shared by every dialog that changes a conference: its text and
buttons (the poll's answers, then the attendance), the offer of the best time, and the live
board message: sent, then kept up to date with the board each use case returned."""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, WebAppInfo
from telegram.error import BadRequest, TelegramError

from bot.core.config import Settings
from bot.core.i18n import Translator
from bot.core.models import ConferenceStatus, InvitationKind, Rsvp
from bot.services import decisions
from bot.services.board import Board, Invitee, coordinator_of
from bot.services.decisions import Collision, Passed, Scheduled
from handlers.common import Context, esc, keyboard, say_below
from handlers.errors import send_safely
from handlers.method_texts import kind_line, method_button

logger = logging.getLogger(__name__)

RSVP_MARKS = {Rsvp.ACCEPTED: "✅", Rsvp.TENTATIVE: "🤔", Rsvp.DECLINED: "❌", Rsvp.PENDING: "⏳"}


def invitee_name(invitee: Invitee, tr: Translator) -> str:
    if invitee.kind is InvitationKind.INSTITUTION:
        return esc(invitee.name)
    if invitee.kind is InvitationKind.GUEST:
        return "✉ " + esc(invitee.name)  # by e-mail, not on Telegram
    return tr.gettext("Guardian {n}").format(n=invitee.number)


def board_text(board: Board, tr: Translator, *, web: bool = False) -> str:
    """The board's text; `web`: guests answer on the web page themselves (their mail has the
    link), which the coordinator can still do for them."""
    if board.status is not ConferenceStatus.POLLING:
        return attendance_text(board, tr)
    _ = tr.gettext
    lines = [_("<b>Poll for the case conference {code}</b>").format(code=board.case_code)]
    lines.append(kind_line(board.kind, tr))
    if board.round > 1:
        lines.append(_("Round {n}").format(n=board.round))
    lines.append(_("Answers until {deadline}.").format(deadline=tr.datetime(board.deadline)))
    answered = sum(1 for invitee in board.invitees if invitee.answered_at)
    lines += [
        "",
        _("Answered {answered} of {count}:").format(answered=answered, count=len(board.invitees)),
    ]
    for invitee in board.invitees:
        mark = "★" if invitee.required else "☆"
        line = f"{mark} {invitee_name(invitee, tr)}"
        if invitee.answered_at:  # a guest's own answer, on the web page, has no member
            if invitee.kind is InvitationKind.INSTITUTION and invitee.answered_by:
                line = "✅ " + line + " – " + esc(invitee.answered_by)
            else:
                line = "✅ " + line
        elif invitee.kind is InvitationKind.GUEST and web:
            line = "⏳ " + line + " – " + _("answers by the link in their mail, or you enter them")
        elif invitee.kind in (InvitationKind.OFFLINE, InvitationKind.GUEST):
            line = "✍ " + line + " – " + _("you enter their answers")
        elif invitee.kind is InvitationKind.GUARDIAN and not invitee.reachable:
            line = "⏳ " + line + " – " + _("has not joined yet")
        elif not invitee.reachable:
            line = "⛔ " + line + " – " + _("nobody can be reached")
        else:
            line = "⏳ " + line
        lines.append(line)
    lines.append("")
    lines.append(outcome_text(board, tr))
    return "\n".join(lines)


def attendance_text(board: Board, tr: Translator) -> str:
    """The coordinator's live attendance message: who comes, per institution."""
    _ = tr.gettext
    lines = [_("<b>Case conference {code}</b>").format(code=board.case_code)]
    lines.append(kind_line(board.kind, tr))
    when = tr.datetime(board.starts_at) if board.starts_at else ""
    if board.status is ConferenceStatus.CANCELLED:
        lines.append(_("Cancelled ({when}).").format(when=when))
        return "\n".join(lines)
    lines.append(_("Set for {when}.").format(when=when))
    counts = {rsvp: 0 for rsvp in Rsvp}
    rows = []
    for invitee in board.invitees:
        mark = "★" if invitee.required else "☆"
        line = f"{mark} {invitee_name(invitee, tr)}"
        if invitee.kind is InvitationKind.OFFLINE:
            rows.append("✍ " + line + " – " + _("tell them yourself"))
            continue
        counts[invitee.rsvp] += 1
        line = RSVP_MARKS[invitee.rsvp] + " " + line
        if invitee.rsvp_by and invitee.kind is InvitationKind.INSTITUTION:
            line += " – " + esc(invitee.rsvp_by)
        elif not invitee.reachable:
            line += " – " + _("nobody can be reached")
        rows.append(line)
    lines.append(
        _(
            "Accepted {accepted} · tentative {tentative} · declined {declined} · no answer {none}"
        ).format(
            accepted=counts[Rsvp.ACCEPTED],
            tentative=counts[Rsvp.TENTATIVE],
            declined=counts[Rsvp.DECLINED],
            none=counts[Rsvp.PENDING],
        )
    )
    lines.append("")
    lines += rows
    return "\n".join(lines)


def outcome_text(board: Board, tr: Translator) -> str:
    _ = tr.gettext
    outcome = board.outcome
    if outcome.best is not None and not any(i.answered_at for i in board.invitees):
        # Not "(0 yes)": no time is better than another until someone answers.
        return _("Nobody has answered yet; the first time offered is {when}.").format(
            when=tr.slot(outcome.best.starts_at)
        )
    if outcome.best is not None:
        text = _("Best time so far: {when} ({yes} yes)").format(
            when=tr.slot(outcome.best.starts_at), yes=outcome.yes
        )
        if outcome.if_need_be:
            maybe = ", ".join(invitee_name(invitee, tr) for invitee in outcome.if_need_be)
            text += "\n" + _("If need be: {names}").format(names=maybe)
        return text
    lines = [_("No time suits every required invitee:")]
    for slot in board.slots:
        blockers = outcome.blockers.get(slot.id, ())
        names = ", ".join(invitee_name(invitee, tr) for invitee in blockers)
        lines.append(f"{tr.slot(slot.starts_at)} – {names}")
    return "\n".join(lines)


def with_mini_app(
    markup: InlineKeyboardMarkup, settings: Settings, path: str, label: str
) -> InlineKeyboardMarkup:
    """`markup` with a last button opening the web page's `path` as a Mini App, when the chat
    offers one (`Settings.mini_app`)."""
    if not settings.mini_app:
        return markup
    url = settings.web_address(path)
    assert url is not None
    button = InlineKeyboardButton(label, web_app=WebAppInfo(url))
    return InlineKeyboardMarkup([*markup.inline_keyboard, [button]])


def board_markup(board: Board, tr: Translator, settings: Settings) -> InlineKeyboardMarkup | None:
    """The board's buttons; while the poll runs, with the web page on (`settings`), also the
    board as a grid in a Mini App."""
    _ = tr.gettext
    conference = board.conference_id
    if board.status is ConferenceStatus.SCHEDULED:
        return keyboard(
            [
                [
                    ("🗓 " + _("New date"), f"ca:n:{conference}"),
                    ("📅 " + _("New poll"), f"cf:w:{conference}"),
                ],
                [method_button(conference, tr)],
                [("❌ " + _("Cancel the conference"), f"ca:x:{conference}")],
            ]
        )
    if board.status is not ConferenceStatus.POLLING:
        return None
    rows = [
        [("✍ " + _("Answers of guardian {n}").format(n=invitee.number), f"pe:{invitee.id}")]
        for invitee in board.invitees
        if invitee.kind is InvitationKind.OFFLINE
    ]
    rows += [
        [("✍ " + _("Answers of {name}").format(name=f"✉ {invitee.name}"), f"pe:{invitee.id}")]
        for invitee in board.invitees
        if invitee.kind is InvitationKind.GUEST
    ]
    rows.append([method_button(conference, tr)])
    rows.append([("🗓 " + _("Decide now"), f"cf:o:{board.conference_id}")])
    grid = "▦ " + _("Everyone's answers as a grid")
    return with_mini_app(keyboard(rows), settings, f"/app/board/{conference}", grid)


# The live board message. Whoever changes a conference redraws it with the board the service
# returned (a participant's answer, the coordinator's decision, the sweep's offer); it is not
# read again. Two changes at once must not leave the older board on the message, so each board
# is numbered in its use case's block, before the commit, while the service still holds the
# conference's row (on SQLite, the one writer): the numbers follow the commits. The edits of one
# message go one at a time, and a board older than the one drawn is left out.


class _LiveBoard:
    """The edits of one conference's board message."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.drawn = 0  # the number of the board on the message


# Kept while a handler still holds a numbered board of the conference: once none does, every
# board read later has a higher number than all drawn, so nothing needs keeping.
_LIVE: weakref.WeakValueDictionary[int, _LiveBoard] = weakref.WeakValueDictionary()
_READ = itertools.count(1)


@dataclass(frozen=True)
class NumberedBoard:
    """A board as a use case read it, numbered among all boards read (see refresh_board)."""

    board: Board
    number: int
    live: _LiveBoard


def numbered(board: Board) -> NumberedBoard:
    """The board a service returned, numbered for refresh_board: taken in the use case's block,
    before its commit."""
    live = _LIVE.get(board.conference_id)
    if live is None:
        live = _LIVE[board.conference_id] = _LiveBoard()
    return NumberedBoard(board, next(_READ), live)


async def refresh_board(context: Context, numbered_board: NumberedBoard) -> None:
    """The coordinator's live board message shows the board, unless a newer one is on it."""
    board = numbered_board.board
    if board.chat_id is None or board.message_id is None:
        return
    live = numbered_board.live
    async with live.lock:
        if numbered_board.number < live.drawn:
            return  # a board read later is on the message already
        live.drawn = numbered_board.number
        tr = context.runtime.translator(board.locale)
        try:
            await context.bot.edit_message_text(
                board_text(board, tr, web=context.runtime.settings.web_url is not None),
                chat_id=board.chat_id,
                message_id=board.message_id,
                reply_markup=board_markup(board, tr, context.runtime.settings),
            )
        except BadRequest as error:
            if "not modified" not in error.message:
                logger.warning("could not update a poll board: %s", error.message)
        except TelegramError as error:
            logger.warning("could not update a poll board: %s", type(error).__name__)


async def send_board(context: Context, chat_id: int, board: Board, *, live: bool = True) -> None:
    """The board as a new message in the chat, in the language of the person talking; `live`,
    it is the message refresh_board keeps up to date from now on."""
    tr = context.tr
    message = await context.bot.send_message(
        chat_id,
        board_text(board, tr, web=context.runtime.settings.web_url is not None),
        reply_markup=board_markup(board, tr, context.runtime.settings),
    )
    if live:
        async with context.runtime.database.transaction() as session:
            await decisions.set_board(session, board.conference_id, chat_id, message.message_id)


# The offer of the best time, and a chosen time refused.


async def offer(context: Context, board: Board, *, all_answered: bool) -> None:
    """The coordinator is offered the best time in one tap, or the ways out when none suits."""
    async with context.runtime.database.reading() as session:
        chat_id = (await coordinator_of(session, board.conference_id)).chat_id
    tr = context.runtime.translator(board.locale)
    await send_safely(
        context, chat_id, offer_text(board, tr, all_answered=all_answered), offer_markup(board, tr)
    )


def offer_text(board: Board, tr: Translator, *, all_answered: bool) -> str:
    _ = tr.gettext
    if all_answered:
        head = _("Every required invitee has answered the poll for {code}.")
    else:
        head = _("The poll for {code} has closed.")
    lines = [head.format(code=board.case_code)]
    waiting = [invitee_name(i, tr) for i in board.invitees if i.answered_at is None]
    if waiting:
        lines.append(_("No answer from: {names}").format(names=", ".join(waiting)))
    lines.append(outcome_text(board, tr))
    if board.outcome.best is not None:
        lines.append(_("Confirm it, and everyone invited is told."))
    return "\n".join(lines)


def offer_markup(board: Board, tr: Translator) -> InlineKeyboardMarkup:
    _ = tr.gettext
    conference = board.conference_id
    rows: list[list[tuple[str, str]]] = []
    best = board.outcome.best
    if best is not None:
        rows.append(
            [
                (
                    "✅ " + _("Confirm {when}").format(when=tr.slot(best.starts_at)),
                    f"cf:c:{conference}:{best.id}",
                )
            ]
        )
        rows.append([(_("Choose another time"), f"cf:a:{conference}")])
    else:
        rows.append([(_("Choose a time anyway"), f"cf:a:{conference}")])
        blocking: dict[int, Invitee] = {}
        for invitees in board.outcome.blockers.values():
            for invitee in invitees:
                blocking[invitee.id] = invitee
        for invitee in blocking.values():
            rows.append(
                [
                    (
                        _("Make {name} optional").format(name=invitee_name(invitee, tr)),
                        f"cf:m:{invitee.id}",
                    )
                ]
            )
    rows.append([("📅 " + _("Poll the next window"), f"cf:w:{conference}")])
    return keyboard(rows)


async def time_refused(
    update: Update, context: Context, result: Scheduled | Collision | Passed, passed: str
) -> bool:
    """A chosen time that is past (`passed` says so) or clashes is refused below the buttons."""
    tr = context.tr
    if isinstance(result, Passed):
        await say_below(update, context, passed)
        return True
    if isinstance(result, Collision):
        await say_below(
            update,
            context,
            tr.gettext("That time now clashes with {code} at {when}. Choose another time.").format(
                code=result.other_code, when=tr.datetime(result.other_starts_at)
            ),
        )
        return True
    return False
