"""A calendar invitation as Telegram shows it, shared by the answers to it and the outbox that
sends it: its text and its buttons (its calendar file: bot.services.calendar_files)."""

from __future__ import annotations

import logging
from dataclasses import replace

from telegram import InlineKeyboardMarkup
from telegram.error import BadRequest, TelegramError

from bot.core.i18n import Translator
from bot.core.models import InvitationKind, Rsvp
from bot.services.invitation_views import Attendee, InviteView
from handlers.common import MAX_CAPTION, Context, clip, esc, keyboard
from handlers.method_texts import goal_button, goal_note, kind_line

logger = logging.getLogger(__name__)


def rsvp_label(rsvp: Rsvp, tr: Translator) -> str:
    _ = tr.gettext
    return {
        Rsvp.ACCEPTED: _("accepted"),
        Rsvp.TENTATIVE: _("tentative"),
        Rsvp.DECLINED: _("declined"),
        Rsvp.PENDING: _("no answer yet"),
    }[rsvp]


def _own(view: InviteView) -> Attendee | None:
    return next((a for a in view.attendees if a.invitation_id == view.invitation_id), None)


# The message and its calendar file.


def said_yes_in_poll(view: InviteView) -> bool:
    """An invitation, as first sent, already accepted by its reader: their "yes" to the time
    in the poll counted (nobody answers an invitation before it reaches them)."""
    return (
        view.invitation_id is not None
        and view.rsvp is Rsvp.ACCEPTED
        and view.reader_id is not None
        and view.rsvp_by_id == view.reader_id
    )


def invite_text(
    view: InviteView, tr: Translator, *, head: str | None = None, said_yes: bool = False
) -> str:
    """`said_yes`: the first message of an invitation its reader's poll answer accepted."""
    _ = tr.gettext
    lines = [head] if head else []
    lines += [
        "<b>" + _("Case conference {code}").format(code=view.case_code) + "</b>",
        kind_line(view.method.kind, tr),
        _("{when} · {minutes} min").format(when=tr.datetime(view.starts_at), minutes=view.minutes),
        _("Place: {place}").format(place=esc(view.place)),
    ]
    if view.invitation_id is not None:
        lines.append(
            _("Invited by {name}, {institution}").format(
                name=esc(view.inviter.name), institution=esc(view.inviter.institution)
            )
        )
    if view.previous_starts_at is not None and view.previous_starts_at != view.starts_at:
        changed = _("The time has changed: now {new}, before {old}.").format(
            new=tr.datetime(view.starts_at), old=tr.datetime(view.previous_starts_at)
        )
        if view.invitation_id is not None:
            changed += " " + _("Your answer is needed again.")
        lines.append(changed)
    if view.method.has_goal and view.invitation_id is not None:
        lines.append(goal_note(tr))
    own = _own(view)
    if view.invitation_id is None:
        lines.append(_("You chair it. The participants' answers are on the attendance message."))
    elif own is not None and own.kind in (InvitationKind.INSTITUTION, InvitationKind.GUEST):
        required = _("required") if own.required else _("optional")
        lines.append(
            _("You are invited for {institution} ({required}).").format(
                institution=esc(own.name), required=required
            )
        )
    else:
        lines.append(_("You are invited as a guardian of the child."))
    if view.invitation_id is not None:
        if said_yes and view.rsvp is Rsvp.ACCEPTED:
            lines.append(
                _(
                    "You said yes to this time in the poll, so you are marked as coming; you can "
                    "still change it."
                )
            )
        elif view.rsvp is Rsvp.PENDING:
            lines.append(_("Will you come? The attached file puts it in your calendar."))
        else:
            lines.append(
                _("Answer: {answer} ({name}).").format(
                    answer=rsvp_label(view.rsvp, tr), name=esc(view.rsvp_by or "")
                )
            )
    return "\n".join(lines)


def invite_caption(view: InviteView, tr: Translator, *, said_yes: bool = False) -> str:
    """The invitation as its calendar file's caption, within Telegram's 1,024 characters: a
    place, names and the conference's kind and goal lines at their longest do not fit, so an
    overlong place is shortened first, then the whole is cut (with "…"), never refused."""
    text = invite_text(view, tr, said_yes=said_yes)
    over = len(text) - MAX_CAPTION  # the raw HTML: never shorter than what Telegram counts
    if over > 0 and view.place:
        place = view.place[: max(len(view.place) - over - 1, 0)].rstrip() + "…"
        text = invite_text(replace(view, place=place), tr, said_yes=said_yes)
    return clip(text, MAX_CAPTION)


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
    if view.method.has_goal:
        rows.append([goal_button(view.conference_id, tr)])
    return keyboard(rows)


async def redraw_invitation(
    context: Context, view: InviteView, chat_id: int, message_id: int, locale: str
) -> None:
    """One copy of an invitation shows what is true now (after an answer, in the chat or from a
    calendar), in its reader's language."""
    tr = context.runtime.translator(locale)
    try:
        await context.bot.edit_message_caption(
            chat_id=chat_id,
            message_id=message_id,
            caption=invite_caption(view, tr),
            reply_markup=invite_markup(view, tr),
        )
    except BadRequest as error:
        if "not modified" not in error.message:
            logger.warning("could not redraw an invitation: %s", error.message)
    except TelegramError as error:
        logger.warning("could not redraw an invitation: %s", type(error).__name__)
