"""What Round Table sends of its own accord about conferences: the outbox's kinds (a poll's
nudge; invitations, cancellations, reminders, answer nudges and the coordinator's flags) and, at
a poll's deadline, the sweep's offer of the best time.

Rules live in `bot.services.polls`, `bot.services.invitations` and `bot.services.replies`; the
calendar file is built by `scheduling.invites`.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from telegram import Message
from telegram.error import TelegramError

from bot.core.models import Rsvp
from bot.core.outbox import Notification
from bot.services import invitation_views, invitations, polls, replies
from bot.services.board import Target, coordinator_of, recipient_of
from bot.services.calendar_files import calendar_file
from bot.services.invitation_views import InviteView
from bot.transport.telegram.delivery import Kind, Outgoing
from handlers.board_text import invitee_name, numbered, offer, refresh_board
from handlers.common import Context, esc, keyboard
from handlers.errors import send_safely
from handlers.invitation_text import (
    invite_caption,
    invite_markup,
    invite_text,
    said_yes_in_poll,
)
from handlers.poll_messages import poll_markup, poll_text, tell_unreachable

logger = logging.getLogger(__name__)


def outbox_kinds() -> dict[str, Kind]:
    return {
        polls.POLL_NUDGE: Kind(render_poll_nudge, _nudge_missed),
        invitations.INVITE: Kind(render_invite, tell_undelivered),
        invitations.CANCEL: Kind(render_cancel),
        invitations.REMINDER: Kind(render_reminder, tell_undelivered),
        invitations.RSVP_NUDGE: Kind(render_rsvp_nudge, tell_undelivered),
        invitations.FLAG: Kind(render_flag),
    }


# The sweep: nudges a working day before the deadline, and the offer at the deadline.


async def sweep_polls(context: Context) -> None:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        work = await polls.due_polls(session, now=runtime.clock.now())
        offers = [numbered(board) for board in work.offers]
    for live in offers:
        await offer(context, live.board, all_answered=False)  # sent safely: one failure stops none
        await refresh_board(context, live)
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

    return Outgoing(text, poll_markup(view, tr, runtime.settings), after=replace_old)


async def _nudge_missed(context: Context, row: Notification) -> None:
    async with context.runtime.database.reading() as session:
        recipient = await recipient_of(session, row.member_id)
    missed = [Target(int(row.payload["invitation"]), recipient)]
    await tell_unreachable(context, int(row.payload["conference"]), missed, everyone=False)


# Invitations and what follows them.


async def _view_for(
    context: Context, row: Notification, *, attendees: bool = True
) -> InviteView | None:
    """The invitation as it is now, or None when the row is for an earlier time."""
    payload = row.payload
    previous = payload.get("previous")
    async with context.runtime.database.reading() as session:
        view = await invitation_views.invite_view(
            session,
            int(payload["conference"]),
            payload.get("invitation"),
            row.member_id,
            now=context.runtime.clock.now(),
            previous=datetime.fromisoformat(previous) if previous else None,
            attendees=attendees,
            mailbox=context.runtime.settings.mail_address,
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
        if view.invitation_id is None or view.reader_id is None:
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
        invite_caption(view, tr, said_yes=said_yes_in_poll(view)),
        invite_markup(view, tr),
        document=calendar_file(view, tr),
        after=remember,
    )


async def render_cancel(context: Context, row: Notification) -> Outgoing | None:
    async with context.runtime.database.reading() as session:
        view = await invitation_views.invite_view(
            session,
            int(row.payload["conference"]),
            None,
            row.member_id,
            now=context.runtime.clock.now(),
            mailbox=context.runtime.settings.mail_address,
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
    async with runtime.database.reading() as session:
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
    async with context.runtime.database.reading() as session:
        gone = await invitation_views.undelivered(
            session, int(row.payload["conference"]), row.member_id
        )
    if gone.coordinator_chat_id == row.chat_id:
        return
    tr = context.runtime.translator(gone.coordinator_locale)
    text = tr.gettext(
        "{name} did not get a message about {code}: they have blocked the bot. Please tell them "
        "another way."
    ).format(name=esc(gone.name), code=gone.case_code)
    await send_safely(context, gone.coordinator_chat_id, text)
