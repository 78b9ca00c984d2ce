"""The poll's messages, shared by the dialogs that start a poll (planning, the board's next
window), answer it, and the outbox's nudge: the poll drawn, sent to everyone invited with the
live board to the coordinator, and the coordinator told whom it could not reach."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from telegram import InlineKeyboardMarkup
from telegram.error import Forbidden, TelegramError

from bot.core.config import Settings
from bot.core.i18n import N_, Translator
from bot.core.models import InvitationKind
from bot.services import board, confidentiality, decisions, polls
from bot.services.board import Board, Inviter, NotInPoll, PollClosed, Target, coordinator_of
from bot.services.errors import PermissionDenied
from bot.services.planning import Started
from bot.services.polls import PollView
from bot.transport.telegram import delivery
from handlers.board_text import NumberedBoard, offer, refresh_board, send_board, with_mini_app
from handlers.common import Context, esc, keyboard
from handlers.errors import mark_unreachable, send_safely
from handlers.method_texts import goal_button, goal_note, kind_line
from handlers.usecase import refusal
from scheduling.finder import Vote

logger = logging.getLogger(__name__)

# A time's mark; None: not marked yet (it counts as no when the answer is sent).
MARKS: dict[Vote | None, str] = {Vote.YES: "✅", Vote.IF_NEED_BE: "🤷", Vote.NO: "❌", None: "⬜"}

NOT_YOURS = refusal(PermissionDenied, say=N_("This is not yours to change."))
# A poll's refusals: not the person's to answer, a time no longer in it, a poll that closed.
POLL_CLOSED = refusal(PollClosed, say=N_("This poll is over; answers are no longer taken."))
POLL_REFUSALS = (NOT_YOURS, refusal(NotInPoll), POLL_CLOSED)


def poll_text(view: PollView, tr: Translator) -> str:
    _ = tr.gettext
    invitee = view.invitation
    if invitee.kind is InvitationKind.INSTITUTION:
        who = _("When can {institution} come?").format(institution=esc(invitee.name))
    elif invitee.kind is InvitationKind.GUARDIAN:
        who = _("When can you come?")
    elif invitee.kind is InvitationKind.GUEST:
        who = _("Enter the answers of {name} (invited by e-mail).").format(
            name="✉ " + esc(invitee.name)
        )
    else:
        who = _("Enter the answers of guardian {n} (without Telegram).").format(n=invitee.number)
    lines = [_("<b>Case conference {code}</b>").format(code=view.case_code)]
    if invitee.kind in (InvitationKind.INSTITUTION, InvitationKind.GUARDIAN):
        lines.append(inviter_line(view.inviter, tr))  # the coordinator's own entry needs none
    lines += [
        kind_line(view.method.kind, tr),
        _("Length {minutes} min · {place}").format(minutes=view.minutes, place=esc(view.place)),
    ]
    if view.method.has_goal and invitee.kind in (
        InvitationKind.INSTITUTION,
        InvitationKind.GUARDIAN,
    ):
        lines.append(goal_note(tr))
    lines += ["", who]
    if view.open:
        lines.append(
            _(
                "Tap a time to mark it: ✅ yes → 🤷 if need be → ❌ no → ⬜ not marked. A time "
                "left unmarked counts as no. Then Send."
            )
        )
        lines.append(_("Answers until {deadline}.").format(deadline=tr.datetime(view.deadline)))
    else:
        lines.append(_("The poll is closed."))
    if invitee.answered_at:
        if invitee.answered_by:
            answered = _("Answered by {name}, {when}.").format(
                name=esc(invitee.answered_by), when=tr.datetime(invitee.answered_at)
            )
        else:  # a guest, on the web page
            answered = _("Answered by the guest on the web page, {when}.").format(
                when=tr.datetime(invitee.answered_at)
            )
        lines.append(answered)
        # What was sent stays on the message, each time with its mark.
        lines += [
            f"{MARKS[view.sent.get(slot.id, Vote.NO)]} {tr.slot(slot.starts_at)}"
            for slot in view.slots
        ]
        if view.open:
            lines.append(_("You can still change it: tap the times and Send again."))
    elif view.open:
        lines.append(_("Nobody has answered yet."))
    return "\n".join(lines)


def inviter_line(inviter: Inviter, tr: Translator) -> str:
    """Who invites: the coordinator and their institution."""
    return tr.gettext("Invited by {name}, {institution}").format(
        name=esc(inviter.name), institution=esc(inviter.institution)
    )


def poll_markup(view: PollView, tr: Translator, settings: Settings) -> InlineKeyboardMarkup | None:
    """The times to tap and Send; with the web page on (`settings`), also the same poll as a
    grid in a Mini App."""
    if not view.open:
        return None
    invitation = view.invitation.id
    rows = [
        [(f"{MARKS[view.votes[slot.id]]} {tr.slot(slot.starts_at)}", f"pv:{invitation}:{slot.id}")]
        for slot in view.slots
    ]
    rows.append([("📨 " + tr.gettext("Send"), f"ps:{invitation}:{view.round}")])
    if view.method.has_goal and view.invitation.kind in (
        InvitationKind.INSTITUTION,
        InvitationKind.GUARDIAN,
    ):
        rows.append([goal_button(view.conference_id, tr)])
    grid = "▦ " + tr.gettext("Answer in a grid")
    return with_mini_app(keyboard(rows), settings, f"/app/poll/{invitation}", grid)


async def redraw_poll(context: Context, view: PollView) -> None:
    """A poll message in someone's chat (a colleague's of the same institution, the
    coordinator's for a guest), showing what was sent."""
    if view.message_id is None:
        return
    tr = context.runtime.translator(view.locale)
    with contextlib.suppress(TelegramError):
        await context.bot.edit_message_text(
            poll_text(view, tr),
            chat_id=view.chat_id,
            message_id=view.message_id,
            reply_markup=poll_markup(view, tr, context.runtime.settings),
        )


async def show_answered(
    context: Context, others: Sequence[PollView], live: NumberedBoard, best: Board | None
) -> None:
    """After an answer to the poll, in the chat or on the web page: the invitation's poll
    messages in `others`' chats, the coordinator's board, and the offer of the `best` time
    once every required invitee has answered."""
    for view in others:
        await redraw_poll(context, view)
    await refresh_board(context, live)
    if best is not None:
        await offer(context, best, all_answered=True)


async def deliver(context: Context, started: Started) -> None:
    """Poll messages to everyone, guardian links and the live board to the coordinator."""
    runtime = context.runtime
    actor = context.require_actor()
    tr = context.tr
    _ = tr.gettext
    missed = await send_polls(context, started.targets)
    username = runtime.settings.bot_username or (await context.bot.get_me()).username
    for link in started.links:
        await context.bot.send_message(
            actor.chat_id,
            _(
                "Guardian {n}: send them this one-time link. It joins them to Round Table and "
                "shows them the poll; it works once, until {deadline}:\n{link}"
            ).format(
                n=link.number,
                deadline=tr.datetime(link.expires_at),
                link=f"https://t.me/{username}?start={link.code}",
            ),
        )
    await tell_unreachable(context, started.conference_id, missed, everyone=True)
    async with runtime.database.reading() as session:  # the poll's start checked the actor
        board = await decisions.fresh_board(session, started.conference_id)
    await send_board(context, actor.chat_id, board)


async def tell_unreachable(
    context: Context, conference_id: int, missed: list[Target], *, everyone: bool
) -> None:
    """The coordinator learns at once whom the poll could not reach (blocked the bot, gone).

    An institution none of whose members can be reached is named as such: every institution of
    the conference (``everyone``, when the poll starts) or those a failed send just emptied.
    Whether the bot already knew of a block or learnt it from this send makes no difference.
    """
    async with context.runtime.database.reading() as session:
        coordinator = await coordinator_of(session, conference_id)
        empty = await board.unreachable_institutions(session, conference_id)
    failed = {target.invitation_id for target in missed}
    institutions = [name for id_, name in empty.items() if everyone or id_ in failed]
    people = [target.recipient.name for target in missed if target.invitation_id not in empty]
    if not institutions and not people:
        return

    tr = context.runtime.translator(coordinator.locale)
    lines = []
    if institutions:
        lines.append(
            tr.gettext(
                "Nobody could be reached at: {names}. Please invite them another way."
            ).format(names=", ".join(esc(name) for name in institutions))
        )
    if people:
        lines.append(
            tr.gettext("The poll could not be delivered to: {names}.").format(
                names=", ".join(esc(name) for name in people)
            )
        )
    await send_safely(context, coordinator.chat_id, "\n".join(lines))


async def send_polls(context: Context, targets: Sequence[Target]) -> list[Target]:
    """One poll message per target; returns the targets the bot could not reach. Whoever has
    not confirmed confidentiality gets the prompt instead (through the outbox, once), and the
    poll once they confirm (`send_open_polls`)."""
    runtime = context.runtime
    missed: list[Target] = []
    asked = False
    for target in targets:
        tr = runtime.translator(target.recipient.locale)
        async with runtime.database.transaction() as session:
            now = runtime.clock.now()
            member_id = target.recipient.member_id
            if await confidentiality.holds(session, member_id, confidentiality.CASE, now=now):
                asked = True
                continue
            view = await polls.poll_of(session, target, now=now)
        text = poll_text(view, tr)
        try:
            message = await context.bot.send_message(
                target.recipient.chat_id, text, reply_markup=poll_markup(view, tr, runtime.settings)
            )
        except Forbidden:
            await mark_unreachable(context, target.recipient.chat_id)
            missed.append(target)
            continue
        except TelegramError as error:
            logger.warning("could not send a poll: %s", type(error).__name__)
            missed.append(target)
            continue
        async with runtime.database.transaction() as session:
            await polls.record_message(
                session, target.invitation_id, target.recipient, message.message_id
            )
    if asked:
        delivery.wake(context.application)
    return missed


async def send_open_polls(context: Context) -> None:
    """A person who just joined (a guardian by link, a new member of an invited institution)
    gets the polls waiting for them."""
    runtime = context.runtime
    async with runtime.database.reading() as session:
        targets = await polls.open_polls(session, context.require_actor(), now=runtime.clock.now())
    await send_polls(context, targets)
