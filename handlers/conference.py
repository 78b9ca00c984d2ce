"""Finding a common date: the coordinator's plan, the participants' poll, the live board, the
offer of the best time and its confirmation; calendar files for busy times."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    CallbackQueryHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.core import outbox
from bot.core.calendar_reader import read_busy
from bot.core.i18n import Translator
from bot.core.models import ConferenceStatus, InvitationKind, Rsvp
from bot.core.outbox import Kind, Notification, Outgoing
from bot.services import decisions, members, planning, polls
from bot.services.board import (
    AlreadyPlanned,
    Board,
    ConferenceError,
    Invitee,
    NotInPoll,
    PollClosed,
    Recipient,
    Target,
    coordinator_of,
    recipient_of,
)
from bot.services.decisions import Collision, Passed, Scheduled
from bot.services.errors import PermissionDenied
from bot.services.members import Actor
from bot.services.planning import Defaults, NoCandidates, Plan, Started
from bot.services.polls import PollView
from bot.transport.telegram.http import AiohttpRequest, TooBig
from handlers.common import (
    Context,
    Dialog,
    HandlerList,
    acknowledge,
    alert,
    answer,
    callback_ids,
    consuming,
    edit,
    ends_on_other_commands,
    esc,
    keyboard,
    no_longer_active,
    parse_callback,
    parse_id,
    say_below,
)
from handlers.errors import send_safely
from handlers.notify import notify
from scheduling.busy import MAX_BYTES, BusyImportError
from scheduling.finder import Vote

logger = logging.getLogger(__name__)
T = TypeVar("T")

PLANNING = "planning"
PLACE = "place"
PLAN = "plan"
WINDOW_STARTS = (2, 7, 12)  # working days after today: the default, a week later, two weeks
MARKS = {Vote.YES: "✅", Vote.IF_NEED_BE: "🤷", Vote.NO: "❌"}
BUSY_HORIZON = timedelta(days=120)
# One edit of a board at a time, so that a late edit never overwrites a newer one.
_BOARD_LOCKS: dict[int, asyncio.Lock] = {}


def defaults_of(context: Context) -> Defaults:
    return Defaults.of(context.runtime.settings)


def invitee_name(invitee: Invitee, tr: Translator) -> str:
    if invitee.kind is InvitationKind.INSTITUTION:
        return esc(invitee.name)
    return tr.gettext("Guardian {n}").format(n=invitee.number)


# Planning (the coordinator).


def _plan(context: Context) -> Plan | None:
    data = context.user_data.get(PLAN)  # type: ignore[union-attr]
    return Plan.from_data(data) if isinstance(data, dict) else None


def _keep(context: Context, plan: Plan) -> None:
    context.user_data[PLAN] = plan.to_data()  # type: ignore[index]


async def plan_conference(update: Update, context: Context) -> str | int:
    """ "Plan a conference" on a case: a plan with every default, one screen to adjust it."""
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "cf") or []
    case_id = parse_id(parts[1]) if len(parts) == 2 else None
    if case_id is None:
        await no_longer_active(update, context)
        return ConversationHandler.END
    runtime = context.runtime
    try:
        async with runtime.database.transaction() as session:
            plan = await planning.new_plan(
                session,
                context.require_actor(),
                runtime.cipher,
                case_id,
                now=runtime.clock.now(),
                defaults=defaults_of(context),
            )
    except PermissionDenied:
        await _refuse(update, context)
        return ConversationHandler.END
    except AlreadyPlanned as planned:
        await say_below(
            update,
            context,
            context.tr.gettext(
                "{code} already has a conference being planned or set. /cases shows it."
            ).format(code=planned.code),
        )
        return ConversationHandler.END
    _keep(context, plan)
    await _show_plan(update, context, plan, new_message=True)
    return PLANNING


async def _show_plan(update: Update, context: Context, plan: Plan, *, new_message: bool) -> None:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        view = await planning.plan_view(
            session,
            context.require_actor(),
            plan,
            now=runtime.clock.now(),
            defaults=defaults_of(context),
        )
    tr = context.tr
    _ = tr.gettext
    links = plan.guardians.count("link")
    offline = plan.guardians.count("offline")
    lines = [
        _("<b>Case conference for {code}</b>").format(code=view.case_code),
        _("Tap an institution to invite it or not, and ★/☆ to make it required or optional."),
        "",
        _("Invited: {count}").format(count=len(plan.invited) + len(plan.guardians)),
    ]
    if plan.guardians:
        lines.append(
            _("Guardians: {links} by a one-time link, {offline} without Telegram").format(
                links=links, offline=offline
            )
        )
    lines += [
        _("Length: {minutes} min · Place: {place}").format(
            minutes=plan.minutes, place=esc(plan.place)
        ),
        _("Window: {first} – {last}").format(
            first=tr.day(view.first_day), last=tr.day(view.last_day)
        ),
        _("Answers within {days} working days; I offer up to {slots} times.").format(
            days=runtime.settings.poll_deadline_days, slots=runtime.settings.poll_slots
        ),
    ]
    rows: list[list[tuple[str, str]]] = []
    for choice in view.choices:
        invited = choice.institution_id in plan.invited
        name = f"{'☑' if invited else '☐'} {choice.name}"
        row = [(name, f"pl:{plan.case_id}:i:{choice.institution_id}")]
        if invited:
            required = plan.invited[choice.institution_id]
            row.append(
                (
                    "★ " + _("required") if required else "☆ " + _("optional"),
                    f"pl:{plan.case_id}:r:{choice.institution_id}",
                )
            )
        rows.append(row)
    guardian_row = [
        ("+ " + _("Guardian, link"), f"pl:{plan.case_id}:g:link"),
        ("+ " + _("Guardian, offline"), f"pl:{plan.case_id}:g:offline"),
    ]
    if plan.guardians:
        guardian_row.append(("− " + _("Guardian"), f"pl:{plan.case_id}:g:x"))
    rows.append(guardian_row)
    rows.append(
        [
            ("⏱ " + _("{minutes} min").format(minutes=plan.minutes), f"pl:{plan.case_id}:d"),
            ("📅 " + _("Later"), f"pl:{plan.case_id}:w"),
            ("📍 " + _("Place"), f"pl:{plan.case_id}:p"),
        ]
    )
    rows.append(
        [("▶ " + _("Send the poll"), f"pl:{plan.case_id}:s"), (_("Cancel"), f"pl:{plan.case_id}:x")]
    )
    text = "\n".join(lines)
    if new_message or update.callback_query is None:
        if update.callback_query is not None:
            await acknowledge(update.callback_query)
        await context.bot.send_message(
            context.require_actor().chat_id, text, reply_markup=keyboard(rows)
        )
    else:
        await answer(update, text, keyboard(rows))


async def adjust_plan(update: Update, context: Context) -> str | int:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "pl") or []
    plan = _plan(context)
    if plan is None or len(parts) < 2 or parse_id(parts[0]) != plan.case_id:
        # A button of an earlier plan (another case): it must not change this one.
        await no_longer_active(update, context)
        return ConversationHandler.END if plan is None else PLANNING
    match parts[1:]:
        case ["i", raw] if (institution := parse_id(raw)) is not None:
            if institution in plan.invited:
                del plan.invited[institution]
            else:
                plan.invited[institution] = await _required_by_default(context, institution)
        case ["r", raw] if (institution := parse_id(raw)) in plan.invited:
            assert institution is not None
            plan.invited[institution] = not plan.invited[institution]
        case ["g", "link" | "offline" as kind] if len(plan.guardians) < planning.MAX_GUARDIANS:
            plan.guardians.append(kind)
        case ["g", "x"] if plan.guardians:
            plan.guardians.pop()
        case ["d"]:
            durations = planning.DURATIONS
            index = durations.index(plan.minutes) if plan.minutes in durations else 0
            plan.minutes = durations[(index + 1) % len(durations)]
        case ["w"]:
            index = (
                WINDOW_STARTS.index(plan.starts_after) if plan.starts_after in WINDOW_STARTS else 0
            )
            plan.starts_after = WINDOW_STARTS[(index + 1) % len(WINDOW_STARTS)]
        case ["p"]:
            assert query is not None
            await acknowledge(query)
            await context.bot.send_message(
                context.require_actor().chat_id,
                context.tr.gettext("Type the place (at most {limit} characters).").format(
                    limit=planning.MAX_PLACE
                ),
            )
            return PLACE
        case ["s"]:
            return await _send_poll(update, context, plan)
        case ["x"]:
            context.user_data.pop(PLAN, None)  # type: ignore[union-attr]
            await answer(update, context.tr.gettext("Cancelled. No poll was sent."))
            return ConversationHandler.END
        case _:
            await no_longer_active(update, context)
            return PLANNING
    _keep(context, plan)
    await _show_plan(update, context, plan, new_message=False)
    return PLANNING


async def _required_by_default(context: Context, institution_id: int) -> bool:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        return await planning.required_by_default(session, institution_id)


async def typed_place(update: Update, context: Context) -> str | int:
    message = update.effective_message
    plan = _plan(context)
    if plan is None or message is None:
        return ConversationHandler.END
    text = (message.text or "").strip()
    if not text or len(text) > planning.MAX_PLACE:
        await answer(
            update,
            context.tr.gettext(
                "Please type the place as text of at most {limit} characters."
            ).format(limit=planning.MAX_PLACE),
        )
        return PLACE
    plan.place = text
    _keep(context, plan)
    await _show_plan(update, context, plan, new_message=True)
    return PLANNING


async def _send_poll(update: Update, context: Context, plan: Plan) -> str | int:
    runtime = context.runtime
    actor = context.require_actor()
    _ = context.tr.gettext
    try:
        async with runtime.database.transaction() as session:
            started = await planning.start_poll(
                session, actor, plan, now=runtime.clock.now(), defaults=defaults_of(context)
            )
    except PermissionDenied:
        await _refuse(update, context)
        return ConversationHandler.END
    except AlreadyPlanned as planned:
        await answer(
            update,
            _("{code} already has a conference being planned or set. /cases shows it.").format(
                code=planned.code
            ),
        )
        return ConversationHandler.END
    except ConferenceError:
        assert update.callback_query is not None
        await acknowledge(
            update.callback_query, _("Invite at least one institution or guardian."), alert=True
        )
        return PLANNING
    if isinstance(started, NoCandidates):
        assert update.callback_query is not None
        await acknowledge(update.callback_query)
        await context.bot.send_message(
            actor.chat_id,
            _(
                "No time between {first} and {last} is free for you, the room and the invited. "
                "Tap 📅 Later to look further ahead, or change the length."
            ).format(
                first=context.tr.day(started.first_day), last=context.tr.day(started.last_day)
            ),
        )
        return PLANNING
    context.user_data.pop(PLAN, None)  # type: ignore[union-attr]
    await answer(
        update,
        _("The poll for {code} is on its way to the invited.").format(code=started.case_code),
    )
    await _deliver(context, started)
    return ConversationHandler.END


async def _deliver(context: Context, started: Started) -> None:
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
    await _tell_unreachable(context, started.conference_id, missed, everyone=True)
    async with runtime.database.transaction() as session:
        board = await decisions.board(
            session, actor, started.conference_id, now=runtime.clock.now()
        )
    message = await context.bot.send_message(
        actor.chat_id, board_text(board, tr), reply_markup=board_markup(board, tr)
    )
    async with runtime.database.transaction() as session:
        await decisions.set_board(session, board.conference_id, actor.chat_id, message.message_id)


async def _tell_unreachable(
    context: Context, conference_id: int, missed: list[Target], *, everyone: bool
) -> None:
    """The coordinator learns at once whom the poll could not reach (blocked the bot, gone).

    An institution none of whose members can be reached is named as such: every institution of
    the conference (``everyone``, when the poll starts) or those a failed send just emptied.
    Whether the bot already knew of a block or learnt it from this send makes no difference.
    """
    async with context.runtime.database.transaction() as session:
        coordinator = await coordinator_of(session, conference_id)
        empty = await planning.unreachable_institutions(session, conference_id)
    failed = {target.invitation_id for target in missed}
    institutions = [name for id_, name in empty.items() if everyone or id_ in failed]
    people = [target.recipient.name for target in missed if target.invitation_id not in empty]
    if not institutions and not people:
        return

    def text(tr: Translator) -> str:
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
        return "\n".join(lines)

    await notify(context, [coordinator], text)


async def send_polls(context: Context, targets: Sequence[Target]) -> list[Target]:
    """One poll message per target; returns the targets the bot could not reach."""
    runtime = context.runtime
    missed: list[Target] = []
    for target in targets:
        tr = runtime.translator(target.recipient.locale)
        async with runtime.database.transaction() as session:
            view = await polls.poll_of(session, target, now=runtime.clock.now())
        text = poll_text(view, tr)
        try:
            message = await context.bot.send_message(
                target.recipient.chat_id, text, reply_markup=poll_markup(view, tr)
            )
        except Forbidden:
            async with runtime.database.transaction() as session:
                await members.mark_unreachable(
                    session, target.recipient.chat_id, now=runtime.clock.now()
                )
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
    return missed


# The poll (participants).


def poll_text(view: PollView, tr: Translator) -> str:
    _ = tr.gettext
    invitee = view.invitation
    if invitee.kind is InvitationKind.INSTITUTION:
        who = _("When can {institution} come?").format(institution=esc(invitee.name))
    elif invitee.kind is InvitationKind.GUARDIAN:
        who = _("When can you come?")
    else:
        who = _("Enter the answers of guardian {n} (without Telegram).").format(n=invitee.number)
    lines = [
        _("<b>Case conference {code}</b>").format(code=view.case_code),
        _("Length {minutes} min · {place}").format(minutes=view.minutes, place=esc(view.place)),
        "",
        who,
    ]
    if view.open:
        lines.append(_("Tap a time to change it: ✅ yes → 🤷 if need be → ❌ no. Then Send."))
        lines.append(_("Answers until {deadline}.").format(deadline=tr.datetime(view.deadline)))
    else:
        lines.append(_("The poll is closed."))
    if invitee.answered_by and invitee.answered_at:
        lines.append(
            _("Answered by {name}, {when}.").format(
                name=esc(invitee.answered_by), when=tr.datetime(invitee.answered_at)
            )
        )
        if not view.open:  # no buttons any more: the answer as text
            lines += [
                f"{MARKS[view.sent.get(slot.id, Vote.NO)]} {tr.slot(slot.starts_at)}"
                for slot in view.slots
            ]
    elif view.open:
        lines.append(_("Nobody has answered yet."))
    return "\n".join(lines)


def poll_markup(view: PollView, tr: Translator) -> InlineKeyboardMarkup | None:
    if not view.open:
        return None
    invitation = view.invitation.id
    rows = [
        [(f"{MARKS[view.votes[slot.id]]} {tr.slot(slot.starts_at)}", f"pv:{invitation}:{slot.id}")]
        for slot in view.slots
    ]
    rows.append([("📨 " + tr.gettext("Send"), f"ps:{invitation}:{view.round}")])
    return keyboard(rows)


async def _carry_out(
    update: Update, context: Context, work: Callable[[AsyncSession, Actor, datetime], Awaitable[T]]
) -> T | None:
    """A service call in one transaction. A refusal, a time no longer in the poll and a closed
    poll are answered here, and give None."""
    runtime = context.runtime
    try:
        async with runtime.database.transaction() as session:
            return await work(session, context.require_actor(), runtime.clock.now())
    except PermissionDenied:
        await _refuse(update, context)
    except NotInPoll:
        await no_longer_active(update, context)
    except PollClosed:
        await _closed(update, context)
    return None


async def tap_time(update: Update, context: Context) -> None:
    ids = callback_ids(update, "pv", 2)
    if ids is None:
        await no_longer_active(update, context)
        return
    view = await _carry_out(
        update,
        context,
        lambda session, actor, now: polls.toggle(session, actor, ids[0], ids[1], now=now),
    )
    if view is None:
        return
    await answer(update, poll_text(view, context.tr), poll_markup(view, context.tr))


async def send_answer(update: Update, context: Context) -> None:
    ids = callback_ids(update, "ps", 2)
    if ids is None:
        await no_longer_active(update, context)
        return
    done = await _carry_out(
        update,
        context,
        lambda session, actor, now: polls.send_answer(session, actor, ids[0], ids[1], now=now),
    )
    if done is None:
        return
    tr = context.tr
    assert update.callback_query is not None
    await acknowledge(update.callback_query, tr.gettext("Thank you, your answer was sent."))
    await edit(update.callback_query, poll_text(done.view, tr), poll_markup(done.view, tr))
    for other in done.others:
        await _redraw_poll(context, other)
    await refresh_board(context, done.board)
    if done.offer is not None:
        await offer(context, done.offer, all_answered=True)


async def _redraw_poll(context: Context, view: PollView) -> None:
    """Another member's poll message of the same institution, showing who answered."""
    if view.message_id is None:
        return
    tr = context.runtime.translator(view.locale)
    with contextlib.suppress(TelegramError):
        await context.bot.edit_message_text(
            poll_text(view, tr),
            chat_id=view.chat_id,
            message_id=view.message_id,
            reply_markup=poll_markup(view, tr),
        )


# The coordinator's board and the decision.


def board_text(board: Board, tr: Translator) -> str:
    if board.status is not ConferenceStatus.POLLING:
        return attendance_text(board, tr)
    _ = tr.gettext
    lines = [_("<b>Poll for the case conference {code}</b>").format(code=board.case_code)]
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
        if invitee.answered_by and invitee.answered_at:
            if invitee.kind is InvitationKind.INSTITUTION:
                line = "✅ " + line + " – " + esc(invitee.answered_by)
            else:
                line = "✅ " + line
        elif invitee.kind is InvitationKind.OFFLINE:
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


RSVP_MARKS = {Rsvp.ACCEPTED: "✅", Rsvp.TENTATIVE: "🤔", Rsvp.DECLINED: "❌", Rsvp.PENDING: "⏳"}


def attendance_text(board: Board, tr: Translator) -> str:
    """The coordinator's live attendance message: who comes, per institution."""
    _ = tr.gettext
    lines = [_("<b>Case conference {code}</b>").format(code=board.case_code)]
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


def board_markup(board: Board, tr: Translator) -> InlineKeyboardMarkup | None:
    _ = tr.gettext
    conference = board.conference_id
    if board.status is ConferenceStatus.SCHEDULED:
        return keyboard(
            [
                [
                    ("🗓 " + _("New date"), f"ca:n:{conference}"),
                    ("📅 " + _("New poll"), f"cf:w:{conference}"),
                ],
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
    rows.append([("🗓 " + _("Decide now"), f"cf:o:{board.conference_id}")])
    return keyboard(rows)


async def refresh_board(context: Context, board: Board) -> None:
    if board.chat_id is None or board.message_id is None:
        return
    tr = context.runtime.translator(board.locale)
    lock = _BOARD_LOCKS.setdefault(board.conference_id, asyncio.Lock())
    async with lock:
        # Read again under the lock: the newest state is the one drawn.
        async with context.runtime.database.transaction() as session:
            board = await decisions.fresh_board(session, board.conference_id)
        assert board.chat_id is not None and board.message_id is not None
        try:
            await context.bot.edit_message_text(
                board_text(board, tr),
                chat_id=board.chat_id,
                message_id=board.message_id,
                reply_markup=board_markup(board, tr),
            )
        except BadRequest as error:
            if "not modified" not in error.message:
                logger.warning("could not update a poll board: %s", error.message)
        except TelegramError as error:
            logger.warning("could not update a poll board: %s", type(error).__name__)
    if board.status is not ConferenceStatus.POLLING:
        _BOARD_LOCKS.pop(board.conference_id, None)  # decided: no more edits to order


async def offer(context: Context, board: Board, *, all_answered: bool) -> None:
    """The coordinator is offered the best time in one tap, or the ways out when none suits."""
    async with context.runtime.database.transaction() as session:
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


async def decide_now(update: Update, context: Context) -> None:
    ids = callback_ids(update, "cf:o", 1)
    if ids is None:
        await no_longer_active(update, context)
        return
    try:
        async with context.runtime.database.transaction() as session:
            board = await decisions.board_to_decide(
                session, context.require_actor(), ids[0], now=context.runtime.clock.now()
            )
    except PermissionDenied:
        await alert(
            update,
            context.tr.gettext("Only the conference's coordinator can close its poll early."),
        )
        return
    assert update.callback_query is not None
    if board.status is not ConferenceStatus.POLLING:
        await _closed(update, context)
        return
    await acknowledge(update.callback_query)
    await offer(context, board, all_answered=all(i.answered_at for i in board.invitees))


async def choose_time(update: Update, context: Context) -> None:
    """Every candidate time as a button, to force one."""
    ids = callback_ids(update, "cf:a", 1)
    if ids is None:
        await no_longer_active(update, context)
        return
    board = await _board_or_refuse(update, context, ids[0])
    if board is None:
        return
    tr = context.tr
    if board.status is not ConferenceStatus.POLLING:
        await _closed(update, context)
        return
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
    ids = callback_ids(update, "cf:c", 2)
    if ids is None:
        await no_longer_active(update, context)
        return
    tr = context.tr
    result = await _carry_out(
        update,
        context,
        lambda session, actor, now: decisions.confirm(session, actor, ids[0], ids[1], now=now),
    )
    if result is None:
        return
    passed = tr.gettext("That time has passed. Choose another time or poll the next window.")
    if await time_refused(update, context, result, passed):
        return
    assert isinstance(result, Scheduled)
    await _scheduled(update, context, result)


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


async def _scheduled(update: Update, context: Context, done: Scheduled) -> None:
    tr = context.tr
    await answer(
        update,
        tr.gettext(
            "The case conference {code} is set for {when}, {place}. Everyone invited is told."
        ).format(code=done.case_code, when=tr.datetime(done.starts_at), place=esc(done.place)),
    )
    outbox.wake(context.application)  # the invitations were planned with the decision
    await refresh_board(context, done.board)


async def make_optional(update: Update, context: Context) -> None:
    ids = callback_ids(update, "cf:m", 1)
    if ids is None:
        await no_longer_active(update, context)
        return
    board = await _carry_out(
        update,
        context,
        lambda session, actor, now: decisions.make_optional(session, actor, ids[0], now=now),
    )
    if board is None:
        return
    tr = context.tr
    answered = all(invitee.answered_at for invitee in board.invitees if invitee.required)
    await answer(update, offer_text(board, tr, all_answered=answered), offer_markup(board, tr))
    await refresh_board(context, board)


async def poll_next_window(update: Update, context: Context) -> None:
    ids = callback_ids(update, "cf:w", 1)
    if ids is None:
        await no_longer_active(update, context)
        return
    tr = context.tr
    started = await _carry_out(
        update,
        context,
        lambda session, actor, now: decisions.next_window(
            session, actor, ids[0], now=now, defaults=defaults_of(context)
        ),
    )
    if started is None:
        return
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
    await _deliver(context, started)


async def enter_offline(update: Update, context: Context) -> None:
    """The coordinator answers for a guardian without Telegram: the poll comes to them."""
    ids = callback_ids(update, "pe", 1)
    if ids is None:
        await no_longer_active(update, context)
        return
    view = await _carry_out(
        update,
        context,
        lambda session, actor, now: polls.poll(session, actor, ids[0], now=now),
    )
    if view is None:
        return
    assert update.callback_query is not None
    await acknowledge(update.callback_query)
    message = await context.bot.send_message(
        context.require_actor().chat_id,
        poll_text(view, context.tr),
        reply_markup=poll_markup(view, context.tr),
    )
    async with context.runtime.database.transaction() as session:
        await polls.record_message(session, view.invitation.id, _me(context), message.message_id)


async def _board_or_refuse(update: Update, context: Context, conference_id: int) -> Board | None:
    return await _carry_out(
        update,
        context,
        lambda session, actor, now: decisions.board(session, actor, conference_id, now=now),
    )


async def show_board(update: Update, context: Context) -> None:
    """The board again, as a new live message (from /cases)."""
    ids = callback_ids(update, "cf:b", 1)
    if ids is None:
        await no_longer_active(update, context)
        return
    board = await _board_or_refuse(update, context, ids[0])
    if board is None:
        return
    assert update.callback_query is not None
    await acknowledge(update.callback_query)
    tr = context.tr
    actor = context.require_actor()
    message = await context.bot.send_message(
        actor.chat_id, board_text(board, tr), reply_markup=board_markup(board, tr)
    )
    if board.status is ConferenceStatus.POLLING and board.coordinator_id == actor.member_id:
        # The live board moves to this message; a colleague's look is a copy.
        async with context.runtime.database.transaction() as session:
            await decisions.set_board(
                session, board.conference_id, actor.chat_id, message.message_id
            )


# Shared answers.


def _me(context: Context) -> Recipient:
    actor = context.require_actor()
    return Recipient(actor.member_id, actor.chat_id, actor.locale, actor.display_name)


async def _refuse(update: Update, context: Context) -> None:
    await alert(update, context.tr.gettext("This is not yours to change."))


async def _closed(update: Update, context: Context) -> None:
    await alert(update, context.tr.gettext("This poll is over; answers are no longer taken."))


# Calendar files.


async def calendar_file(update: Update, context: Context) -> None:
    """An .ics export from Outlook or Google: its busy times, and nothing else, are kept."""
    message = update.effective_message
    if message is None or message.document is None:
        return
    document = message.document
    tr = context.tr
    _ = tr.gettext
    runtime = context.runtime
    actor = context.require_actor()
    if (document.file_size or 0) > MAX_BYTES:
        await answer(update, _too_big(tr))
        return
    try:
        data = await _download(context, document.file_id)
    except TooBig:
        await answer(update, _too_big(tr))
        return
    except TelegramError as error:
        logger.warning("could not download a calendar file: %s", type(error).__name__)
        await answer(update, _("I could not download that file. Please send it again."))
        return
    now = runtime.clock.now()
    until = now + BUSY_HORIZON
    try:
        read = await read_busy(
            data,
            start=now,
            end=until,
            zone=runtime.settings.zone,
            seconds=runtime.settings.calendar_seconds,
        )
    except BusyImportError as error:
        if error.reason == "too_big":
            text = _too_big(tr)
        elif error.reason == "too_many":
            text = _(
                "That calendar has too many events in the next four months for me to read. "
                "Export a shorter period, e.g. the next two months."
            )
        else:
            text = _(
                "That does not look like a calendar file. Export your calendar as .ics (in "
                "Outlook: File › Save Calendar; in Google Calendar: Settings › Export) and send it "
                "here."
            )
        await answer(update, text)
        return
    intervals = read.intervals
    async with runtime.database.transaction() as session:
        await polls.save_busy(session, actor, intervals, now=now, until=until)
        redraw = await polls.mark_busy_in_polls(session, actor, intervals, now=now)
    text = tr.ngettext(
        "I read {n} busy time from your calendar, up to {until}.",
        "I read {n} busy times from your calendar, up to {until}.",
        len(intervals),
    ).format(n=len(intervals), until=tr.date(until))
    if read.skipped:  # said, so that a file of broken events is not taken for a free calendar
        text += " " + tr.ngettext(
            "{n} event in the file could not be read and was left out.",
            "{n} events in the file could not be read and were left out.",
            read.skipped,
        ).format(n=read.skipped)
    text += "\n" + _(
        "I keep only when you are busy – no titles, places or people – and avoid those times "
        "when planning conferences {institution} is invited to."
    ).format(institution=esc(actor.institution_name))
    if redraw:
        text += "\n" + _(
            "In your open polls, the times you are busy are now ❌: check them and Send."
        )
    for view in redraw:
        await _redraw_poll(context, view)
    await answer(update, text, keyboard([[(_("Forget my busy times"), "bt:x")]]))


async def _download(context: Context, file_id: str) -> bytes:
    """An uploaded file, never more than MAX_BYTES of it: neither the size the upload claims
    nor the size getFile gives is taken on trust (`TooBig` past the limit)."""
    try:
        file = await context.bot.get_file(file_id)
    except BadRequest as error:
        if "too big" in error.message.lower():  # over the 20 MB Telegram lets bots download
            raise TooBig(MAX_BYTES) from error
        raise
    if (file.file_size or 0) > MAX_BYTES:
        raise TooBig(MAX_BYTES)
    request = context.bot.request
    if file.file_path is None or not isinstance(request, AiohttpRequest):
        data = bytes(await file.download_as_bytearray())  # the bot's own request class aside
    else:
        data = await request.retrieve_at_most(file.file_path, MAX_BYTES)
    if len(data) > MAX_BYTES:
        raise TooBig(MAX_BYTES)
    return data


def _too_big(tr: Translator) -> str:
    return tr.gettext(
        "That file is too big for me (over 2 MB). Export a shorter period of your calendar, e.g. "
        "the next three months."
    )


async def forget_busy(update: Update, context: Context) -> None:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        forgot = await polls.forget_busy(session, context.require_actor(), now=runtime.clock.now())
    _ = context.tr.gettext
    await answer(
        update,
        _("Your busy times are deleted.") if forgot else _("I hold no busy times of yours."),
    )


# A person who just joined (a guardian by link, a new member of an invited institution).


async def send_open_polls(context: Context) -> None:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        targets = await polls.open_polls(session, context.require_actor(), now=runtime.clock.now())
    await send_polls(context, targets)


def is_calendar(document: object) -> bool:
    name = (getattr(document, "file_name", None) or "").lower()
    mime = (getattr(document, "mime_type", None) or "").lower()
    return name.endswith((".ics", ".ical", ".ifb")) or mime in {"text/calendar", "application/ics"}


class _CalendarFilter(filters.MessageFilter):
    def filter(self, message: object) -> bool:
        return is_calendar(getattr(message, "document", None))


CALENDAR_FILE = _CalendarFilter(name="calendar file")


def handlers() -> HandlerList:
    dialog = Dialog("plan")
    return [
        ConversationHandler[Context](
            entry_points=[CallbackQueryHandler(dialog.entry(plan_conference), pattern=r"^cf:n:")],
            states={
                PLANNING: [CallbackQueryHandler(dialog.step(adjust_plan), pattern=r"^pl:")],
                PLACE: [
                    MessageHandler(
                        filters.UpdateType.MESSAGE & ~filters.COMMAND, dialog.step(typed_place)
                    ),
                    CallbackQueryHandler(dialog.step(adjust_plan), pattern=r"^pl:"),
                ],
            },
            fallbacks=[ends_on_other_commands()],
            allow_reentry=True,
            name="plan",
            persistent=True,
        )
    ]


def command_handlers() -> HandlerList:
    return [
        CallbackQueryHandler(consuming(tap_time), pattern=r"^pv:"),
        CallbackQueryHandler(consuming(send_answer), pattern=r"^ps:"),
        CallbackQueryHandler(consuming(enter_offline), pattern=r"^pe:"),
        CallbackQueryHandler(consuming(decide_now), pattern=r"^cf:o:"),
        CallbackQueryHandler(consuming(choose_time), pattern=r"^cf:a:"),
        CallbackQueryHandler(consuming(confirm_time), pattern=r"^cf:c:"),
        CallbackQueryHandler(consuming(make_optional), pattern=r"^cf:m:"),
        CallbackQueryHandler(consuming(poll_next_window), pattern=r"^cf:w:"),
        CallbackQueryHandler(consuming(show_board), pattern=r"^cf:b:"),
        CallbackQueryHandler(consuming(forget_busy), pattern=r"^bt:x$"),
        MessageHandler(filters.Document.ALL & CALENDAR_FILE, consuming(calendar_file)),
    ]


# The sweep: nudges a working day before the deadline, and the offer at the deadline.


async def sweep_polls(context: Context) -> None:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        work = await polls.due_polls(session, now=runtime.clock.now())
    for board in work.offers:
        await offer(context, board, all_answered=False)  # sent safely: one failure stops none
        await refresh_board(context, board)
    if work:
        logger.info("polls: %d nudges planned, %d offered", work.nudged, len(work.offers))


async def render_poll_nudge(context: Context, row: Notification) -> Outgoing | None:
    """The poll again, with a reminder on top; it replaces the old poll message."""
    runtime = context.runtime
    payload = row.payload
    async with runtime.database.transaction() as session:
        target = await polls.nudge_target(
            session,
            int(payload["invitation"]),
            row.member_id,
            int(payload["round"]),
            now=runtime.clock.now(),
        )
        if target is None:
            return None
        view = await polls.poll_of(session, target, now=runtime.clock.now())
    tr = runtime.translator(target.recipient.locale)
    text = (
        tr.gettext("Reminder: your answer is still missing. The poll closes {deadline}.").format(
            deadline=tr.datetime(view.deadline)
        )
        + "\n\n"
        + poll_text(view, tr)
    )

    async def replace_old(message: Message) -> None:
        async with runtime.database.transaction() as session:
            await polls.record_message(
                session, target.invitation_id, target.recipient, message.message_id
            )
        if view.message_id is not None:  # one live poll message per person
            with contextlib.suppress(TelegramError):
                await context.bot.delete_message(target.recipient.chat_id, view.message_id)

    return Outgoing(text, poll_markup(view, tr), after=replace_old)


async def _nudge_missed(context: Context, row: Notification) -> None:
    async with context.runtime.database.transaction() as session:
        recipient = await recipient_of(session, row.member_id)
    missed = [Target(int(row.payload["invitation"]), recipient)]
    await _tell_unreachable(context, int(row.payload["conference"]), missed, everyone=False)


def outbox_kinds() -> dict[str, Kind]:
    return {polls.POLL_NUDGE: Kind(render_poll_nudge, _nudge_missed)}
