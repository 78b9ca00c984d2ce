"""Calendar invitations in Telegram: the message with its `.ics`, the answers, handing over to a
colleague, a decline's reason; the coordinator's new date and cancellation; and what the outbox
sends for conferences (invitations, cancellations, reminders, nudges, flags).

Rules live in `bot.services.invitations`; the calendar file is built by `scheduling.invites`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import CallbackQueryHandler, ConversationHandler, MessageHandler, filters

from bot.core import outbox
from bot.core.i18n import Translator
from bot.core.models import InvitationKind, Rsvp
from bot.core.outbox import Kind, Notification, Outgoing
from bot.services import decisions, invitations, replies
from bot.services.board import PollClosed, coordinator_of
from bot.services.decisions import Scheduled
from bot.services.errors import PermissionDenied
from bot.services.invitations import Attendee, InviteView, StaleInvitation
from bot.services.members import Actor
from bot.services.replies import NotYours
from handlers.common import (
    Context,
    Dialog,
    HandlerList,
    acknowledge,
    alert,
    answer,
    callback_ids,
    consuming,
    ends_on_other_commands,
    esc,
    keyboard,
    no_longer_active,
    paged_keyboard,
    paginate,
    parse_callback,
    parse_id,
    parse_number,
    say_below,
)
from handlers.conference import (
    defaults_of,
    invitee_name,
    refresh_board,
    time_refused,
)
from handlers.errors import send_safely
from handlers.referral import delete_typed
from scheduling import invites

logger = logging.getLogger(__name__)

T = TypeVar("T")
REASON = "reason"
WAITING_FOR = "decline"  # user_data: the invitation and sequence a reason is for
COLLEAGUES_PAGE = 8  # colleagues on one page of "Send a colleague", with ◀ ▶ below them
ANSWERS = {"a": Rsvp.ACCEPTED, "t": Rsvp.TENTATIVE, "d": Rsvp.DECLINED}
PARTSTAT = {
    Rsvp.ACCEPTED: "ACCEPTED",
    Rsvp.TENTATIVE: "TENTATIVE",
    Rsvp.DECLINED: "DECLINED",
    Rsvp.PENDING: "NEEDS-ACTION",
}


def rsvp_label(rsvp: Rsvp, tr: Translator) -> str:
    _ = tr.gettext
    return {
        Rsvp.ACCEPTED: _("accepted"),
        Rsvp.TENTATIVE: _("tentative"),
        Rsvp.DECLINED: _("declined"),
        Rsvp.PENDING: _("no answer yet"),
    }[rsvp]


def attendee_name(attendee: Attendee, tr: Translator) -> str:
    if attendee.kind is InvitationKind.INSTITUTION:
        return attendee.name
    return tr.gettext("Guardian {n}").format(n=attendee.number)


def _own(view: InviteView) -> Attendee | None:
    return next((a for a in view.attendees if a.invitation_id == view.invitation_id), None)


# The message and its calendar file.


def invite_text(view: InviteView, tr: Translator, *, head: str | None = None) -> str:
    _ = tr.gettext
    lines = [head] if head else []
    lines += [
        "<b>" + _("Case conference {code}").format(code=view.case_code) + "</b>",
        _("{when} · {minutes} min").format(when=tr.datetime(view.starts_at), minutes=view.minutes),
        _("Place: {place}").format(place=esc(view.place)),
    ]
    if view.previous_starts_at is not None and view.previous_starts_at != view.starts_at:
        lines.append(
            _("New time: it was {old}. Your answer is needed again.").format(
                old=tr.datetime(view.previous_starts_at)
            )
        )
    own = _own(view)
    if view.invitation_id is None:
        lines.append(_("You chair it. The participants' answers are on the attendance message."))
    elif own is not None and own.kind is InvitationKind.INSTITUTION:
        required = _("required") if own.required else _("optional")
        lines.append(
            _("You are invited for {institution} ({required}).").format(
                institution=esc(own.name), required=required
            )
        )
    else:
        lines.append(_("You are invited as a guardian of the child."))
    if view.invitation_id is not None:
        if view.rsvp is Rsvp.PENDING:
            lines.append(_("Will you come? The attached file puts it in your calendar."))
        else:
            lines.append(
                _("Answer: {answer} ({name}).").format(
                    answer=rsvp_label(view.rsvp, tr), name=esc(view.rsvp_by or "")
                )
            )
    return "\n".join(lines)


def invite_markup(view: InviteView, tr: Translator) -> InlineKeyboardMarkup | None:
    if view.invitation_id is None or view.cancelled:
        return None
    _ = tr.gettext
    base = f"iv:{view.invitation_id}:{view.sequence}"

    def label(rsvp: Rsvp, text: str) -> str:
        return ("• " + text + " •") if view.rsvp is rsvp else text

    rows = [
        [
            (label(Rsvp.ACCEPTED, "✅ " + _("Accept")), f"{base}:a"),
            (label(Rsvp.TENTATIVE, "🤔 " + _("Tentative")), f"{base}:t"),
            (label(Rsvp.DECLINED, "❌ " + _("Decline")), f"{base}:d"),
        ]
    ]
    if view.may_hand_over:
        rows.append([("👥 " + _("Send a colleague"), f"{base}:c")])
    return keyboard(rows)


def calendar_event(view: InviteView, tr: Translator) -> invites.Event:
    _ = tr.gettext
    chair = view.chair
    attendees = [
        invites.Attendee(
            address=chair.address,
            name=chair.person or "",
            role="CHAIR",
            partstat="ACCEPTED",
        )
    ]
    for attendee in view.attendees:
        name = attendee_name(attendee, tr)
        if attendee.person:
            name = f"{name} – {attendee.person}"
        address = attendee.address
        if attendee.invitation_id == view.invitation_id and view.reader_email:
            address = view.reader_email  # so the reader's calendar knows the invitation is theirs
        attendees.append(
            invites.Attendee(
                address=address,
                name=name,
                role="REQ-PARTICIPANT" if attendee.required else "OPT-PARTICIPANT",
                partstat=PARTSTAT[attendee.rsvp],
            )
        )
    return invites.Event(
        uid=view.uid,
        sequence=view.sequence,
        starts_at=view.starts_at,
        minutes=view.minutes,
        summary=_("Case conference {code}").format(code=view.case_code),
        description=_(
            "Case conference {code}. Answers, changes and reminders come in Round Table (Telegram)."
        ).format(code=view.case_code),
        location=view.place,
        organizer_address=view.organizer_address,
        organizer_name=view.organizer_name,
        attendees=tuple(attendees),
        zone=view.zone,
        stamp=view.stamp,
    )


def calendar_file(view: InviteView, tr: Translator) -> tuple[str, bytes, str]:
    event = calendar_event(view, tr)
    name = f"{view.case_code}.ics"
    if view.cancelled:
        return name, invites.cancel(event), invites.FILE_MIME_CANCEL
    return name, invites.request(event), invites.FILE_MIME_REQUEST


# What the outbox sends.


async def _view_for(
    context: Context, row: Notification, *, attendees: bool = True
) -> InviteView | None:
    """The invitation as it is now, or None when the row is for an earlier time."""
    payload = row.payload
    previous = payload.get("previous")
    async with context.runtime.database.transaction() as session:
        view = await invitations.invite_view(
            session,
            int(payload["conference"]),
            payload.get("invitation"),
            row.member_id,
            now=context.runtime.clock.now(),
            previous=datetime.fromisoformat(previous) if previous else None,
            attendees=attendees,
        )
    if view is None or view.sequence != payload.get("sequence", view.sequence):
        return None
    return view


async def render_invite(context: Context, row: Notification) -> Outgoing | None:
    view = await _view_for(context, row)
    if view is None or view.cancelled:
        return None
    tr = context.runtime.translator(view.locale)

    async def remember(message: Message) -> None:
        if view.invitation_id is None:
            return
        async with context.runtime.database.transaction() as session:
            await invitations.record_message(
                session,
                view.invitation_id,
                view.reader_id,
                sequence=view.sequence,
                chat_id=message.chat_id,
                message_id=message.message_id,
            )

    return Outgoing(
        invite_text(view, tr),
        invite_markup(view, tr),
        document=calendar_file(view, tr),
        after=remember,
    )


async def render_cancel(context: Context, row: Notification) -> Outgoing | None:
    async with context.runtime.database.transaction() as session:
        view = await invitations.invite_view(
            session,
            int(row.payload["conference"]),
            None,
            row.member_id,
            now=context.runtime.clock.now(),
        )
    if view is None or not view.cancelled:
        return None
    tr = context.runtime.translator(view.locale)
    text = tr.gettext(
        "❌ The case conference {code} on {when} is cancelled. The attached file removes it "
        "from your calendar."
    ).format(code=view.case_code, when=tr.datetime(view.starts_at))
    return Outgoing(text, document=calendar_file(view, tr))


async def render_reminder(context: Context, row: Notification) -> Outgoing | None:
    view = await _view_for(context, row, attendees=False)
    if view is None or view.cancelled or view.rsvp_by_id != row.member_id:
        return None
    if view.rsvp not in (Rsvp.ACCEPTED, Rsvp.TENTATIVE):
        return None
    tr = context.runtime.translator(view.locale)
    head = "⏰ " + tr.gettext("Reminder")
    markup = invite_markup(view, tr) if view.rsvp is Rsvp.TENTATIVE else None
    return Outgoing(invite_text(view, tr, head=head), markup)


async def render_rsvp_nudge(context: Context, row: Notification) -> Outgoing | None:
    view = await _view_for(context, row, attendees=False)
    if view is None or view.cancelled or view.rsvp is not Rsvp.PENDING:
        return None
    tr = context.runtime.translator(view.locale)
    head = "🔔 " + tr.gettext("Please answer the invitation:")
    return Outgoing(invite_text(view, tr, head=head), invite_markup(view, tr))


async def render_flag(context: Context, row: Notification) -> Outgoing | None:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        flag = await replies.flag_view(
            session,
            runtime.cipher,
            int(row.payload["conference"]),
            int(row.payload["invitation"]),
            str(row.payload["what"]),
        )
        locale = (await coordinator_of(session, int(row.payload["conference"]))).locale
    if flag is None or not flag.current:
        return None
    tr = runtime.translator(locale)
    _ = tr.gettext
    who = invitee_name(flag.invitee, tr)  # escaped
    if flag.invitee.rsvp_by:
        who = f"{who} ({esc(flag.invitee.rsvp_by)})"
    when = tr.datetime(flag.starts_at) if flag.starts_at else ""
    if flag.what == "reason":
        if not flag.reason:
            return None
        text = _("The reason {who} gave for declining {code}:\n{reason}").format(
            who=who, code=flag.case_code, reason=esc(flag.reason)
        )
        return Outgoing(text, protect=True)
    lines = [
        "❌ "
        + _("{who} declined the case conference {code} on {when}.").format(
            who=who, code=flag.case_code, when=when
        )
    ]
    if flag.invitee.required:
        lines.append("⚠️ " + _("They are required: without them the conference cannot decide."))
    markup = keyboard(
        [
            [("🗓 " + _("Find a new date"), f"ca:n:{flag.conference_id}")],
            [("📅 " + _("New poll"), f"cf:w:{flag.conference_id}")],
        ]
    )
    return Outgoing("\n".join(lines), markup)


async def tell_undelivered(context: Context, row: Notification) -> None:
    """A participant blocked the bot: the coordinator learns who missed what, once."""
    async with context.runtime.database.transaction() as session:
        gone = await invitations.undelivered(session, int(row.payload["conference"]), row.member_id)
    if gone.coordinator_chat_id == row.chat_id:
        return
    tr = context.runtime.translator(gone.coordinator_locale)
    text = tr.gettext(
        "{name} did not get a message about {code}: they have blocked the bot. Please tell them "
        "another way."
    ).format(name=esc(gone.name), code=gone.case_code)
    await send_safely(context, gone.coordinator_chat_id, text)


def outbox_kinds() -> dict[str, Kind]:
    return {
        invitations.INVITE: Kind(render_invite, tell_undelivered),
        invitations.CANCEL: Kind(render_cancel),
        invitations.REMINDER: Kind(render_reminder, tell_undelivered),
        invitations.RSVP_NUDGE: Kind(render_rsvp_nudge, tell_undelivered),
        invitations.FLAG: Kind(render_flag),
    }


# Participants: answering, handing over, the reason for a decline.


async def _carry_out(
    update: Update, context: Context, work: Callable[[AsyncSession, Actor, datetime], Awaitable[T]]
) -> T | None:
    runtime = context.runtime
    tr = context.tr
    try:
        async with runtime.database.transaction() as session:
            result = await work(session, context.require_actor(), runtime.clock.now())
    except PermissionDenied:
        await alert(update, tr.gettext("This is not yours to answer."))
    except NotYours as handed:
        await alert(
            update,
            tr.gettext("{name} answers this invitation now.").format(name=str(handed.args[0])),
        )
    except (StaleInvitation, PollClosed):
        if update.callback_query is not None:
            await no_longer_active(update, context)
        else:  # a reason typed after the invitation changed (a new poll or date meanwhile)
            await answer(
                update,
                tr.gettext(
                    "That invitation has changed since you declined it, so the reason was not kept."
                ),
            )
    else:
        outbox.wake(context.application)
        return result
    return None


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
    done = await _carry_out(
        update,
        context,
        lambda session, actor, now: replies.answer(
            session, actor, invitation_id, sequence, rsvp, now=now
        ),
    )
    if done is None:
        return ConversationHandler.END
    assert update.callback_query is not None
    tr = context.tr
    await acknowledge(
        update.callback_query,
        tr.gettext("Your answer: {answer}.").format(answer=rsvp_label(rsvp, tr)),
    )
    await _redraw_copies(update, context, done)
    await refresh_board(context, done.board)
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
        await _redraw(context, done.view, chat_id, message_id, locale)
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
        await _redraw(context, done.view, pressed.chat_id, pressed.message_id, locale)


async def _redraw(
    context: Context, view: InviteView, chat_id: int, message_id: int, locale: str
) -> None:
    tr = context.runtime.translator(locale)
    try:
        await context.bot.edit_message_caption(
            chat_id=chat_id,
            message_id=message_id,
            caption=invite_text(view, tr),
            reply_markup=invite_markup(view, tr),
        )
    except BadRequest as error:
        if "not modified" not in error.message:
            logger.warning("could not redraw an invitation: %s", error.message)
    except TelegramError as error:
        logger.warning("could not redraw an invitation: %s", type(error).__name__)


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
    runtime = context.runtime
    done = await _carry_out(
        update,
        context,
        lambda session, actor, now: replies.give_reason(
            session, actor, invitation_id, sequence, text, cipher=runtime.cipher, now=now
        ),
    )
    context.user_data.pop(WAITING_FOR, None)  # type: ignore[union-attr]
    if done is None:  # answered already (a stale invitation, say)
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
    people = await _carry_out(
        update,
        context,
        lambda session, actor, now: replies.colleagues(
            session, actor, invitation_id, sequence, now=now
        ),
    )
    if people is None:
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
    people = await _carry_out(
        update,
        context,
        lambda session, actor, now: replies.colleagues(
            session, actor, invitation_id, sequence, now=now
        ),
    )
    if not people:  # refused, stale, or nobody left to send
        if people is not None:
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
    done = await _carry_out(
        update,
        context,
        lambda session, actor, now: replies.hand_over(
            session, actor, invitation_id, sequence, colleague, now=now
        ),
    )
    if done is None:
        return
    view, name = done
    tr = context.tr
    await answer(
        update,
        tr.gettext(
            "The invitation to {code} is with {name} now; they answer it. You can delete the "
            "event from your calendar."
        ).format(code=view.case_code, name=esc(name)),
    )
    async with context.runtime.database.transaction() as session:
        board = await decisions.fresh_board(session, view.conference_id)
    await refresh_board(context, board)


# The coordinator: a new date directly, or cancelling.


async def offer_new_dates(update: Update, context: Context) -> None:
    ids = callback_ids(update, "ca:n", 1)
    if ids is None:
        await no_longer_active(update, context)
        return
    defaults = defaults_of(context)
    times = await _carry_out(
        update,
        context,
        lambda session, actor, now: decisions.new_times(
            session, actor, ids[0], now=now, defaults=defaults
        ),
    )
    if times is None:
        return
    tr = context.tr
    if not times:
        await say_below(
            update, context, tr.gettext("No free time in the next weeks. Try a new poll.")
        )
        return
    rows = [[(tr.slot(start), f"ca:t:{ids[0]}:{int(start.timestamp())}")] for start in times]
    rows.append([("📅 " + tr.gettext("New poll instead"), f"cf:w:{ids[0]}")])
    assert update.callback_query is not None
    await acknowledge(update.callback_query)
    await context.bot.send_message(
        context.require_actor().chat_id,
        tr.gettext(
            "Times when everyone invited is free as far as I know. Everyone gets the new time "
            "and answers again."
        ),
        reply_markup=keyboard(rows),
    )


async def set_new_date(update: Update, context: Context) -> None:
    ids = callback_ids(update, "ca:t", 2)
    if ids is None:
        await no_longer_active(update, context)
        return
    starts_at = datetime.fromtimestamp(ids[1], tz=UTC)
    result = await _carry_out(
        update,
        context,
        lambda session, actor, now: decisions.reschedule(
            session, actor, ids[0], starts_at, now=now
        ),
    )
    if result is None:
        return
    tr = context.tr
    if await time_refused(
        update, context, result, tr.gettext("That time has passed. Choose another time.")
    ):
        return
    assert isinstance(result, Scheduled)
    await answer(
        update,
        tr.gettext(
            "The case conference {code} moves to {when}. Everyone invited gets the new time."
        ).format(code=result.case_code, when=tr.datetime(result.starts_at)),
    )
    await refresh_board(context, result.board)


async def ask_cancel(update: Update, context: Context) -> None:
    ids = callback_ids(update, "ca:x", 1)
    if ids is None:
        await no_longer_active(update, context)
        return
    cancellable = await _carry_out(
        update,
        context,
        lambda session, actor, now: invitations.cancellable(session, actor, ids[0], now=now),
    )
    if cancellable is None:
        return
    tr = context.tr
    assert update.callback_query is not None
    await acknowledge(update.callback_query)
    await context.bot.send_message(
        context.require_actor().chat_id,
        tr.gettext("Cancel the conference? Everyone invited is told and their calendars updated."),
        reply_markup=keyboard(
            [
                [("❌ " + tr.gettext("Yes, cancel it"), f"ca:y:{ids[0]}")],
                [(tr.gettext("No, keep it"), "ca:k")],
            ]
        ),
    )


async def keep(update: Update, context: Context) -> None:
    await answer(update, context.tr.gettext("Nothing changed."))


async def do_cancel(update: Update, context: Context) -> None:
    ids = callback_ids(update, "ca:y", 1)
    if ids is None:
        await no_longer_active(update, context)
        return
    board = await _carry_out(
        update,
        context,
        lambda session, actor, now: invitations.cancel_conference(session, actor, ids[0], now=now),
    )
    if board is None:
        return
    await answer(
        update,
        context.tr.gettext("The case conference {code} is cancelled.").format(code=board.case_code),
    )
    await refresh_board(context, board)


def handlers() -> HandlerList:
    dialog = Dialog("decline")
    return [
        ConversationHandler[Context](
            entry_points=[
                CallbackQueryHandler(dialog.entry(answer_invitation), pattern=r"^iv:\d+:\d+:[atd]$")
            ],
            states={
                REASON: [
                    MessageHandler(
                        filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND,
                        dialog.step(typed_reason),
                    ),
                    CallbackQueryHandler(dialog.step(skip_reason), pattern=r"^ir:skip$"),
                ],
            },
            fallbacks=[ends_on_other_commands()],
            allow_reentry=True,
            name="decline",
            persistent=True,
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
