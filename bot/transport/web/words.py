"""What the web pages say, in the reader's language: the values each template is given. The
templates hold the structure only, so every word is in the Babel catalogs with the chat's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.core.i18n import Translator
from bot.core.method_record import kind_label
from bot.core.method_tables import ConferenceKind
from bot.core.models import InvitationKind, Rsvp
from bot.services.board import Board, Invitee, Inviter, Slot
from bot.services.polls import PollView
from bot.services.web_links import REASON_MAX, BadLink, GuestInvitation, GuestPoll
from scheduling.finder import Vote

VOTE_NAMES = {Vote.YES: "yes", Vote.IF_NEED_BE: "maybe", Vote.NO: "no"}
# Drawn by any font (the chat's emoji are not, on every desktop); the words are there too.
MARKS = {Vote.YES: "✓", Vote.IF_NEED_BE: "(✓)", Vote.NO: "✗"}

Lines = tuple[str, list[str]]


def too_many(tr: Translator) -> Lines:
    _ = tr.gettext
    return _("Too many requests"), [_("Please wait a minute, then open the page again.")]


def bad_link(tr: Translator, error: BadLink) -> Lines:
    _ = tr.gettext
    if error.reason == "expired":
        assert error.until is not None
        return _("This link has expired"), [
            _("It was valid until {when}.").format(when=tr.datetime(error.until)),
            _("If you still need to answer, write to whoever invited you."),
        ]
    if error.reason == "cancelled":
        return _("This case conference was cancelled"), [
            _("There is nothing to answer any more."),
            _("If you have a question, write to whoever invited you."),
        ]
    if error.reason == "used":
        return _("This link is no longer valid"), [
            _(
                "The poll or the time has changed since this mail was sent. The newest mail "
                "from Round Table has a link that works."
            )
        ]
    return _("This link does not work"), [
        _(
            "Check that the whole address from the mail was opened. If it still does not work, "
            "write to whoever invited you."
        )
    ]


def refused_form(tr: Translator) -> Lines:
    _ = tr.gettext
    return _("The answer was not sent"), [
        _("This form is out of date. Open the link from the mail again and answer there.")
    ]


def poll_changed(tr: Translator, *, member: bool = False) -> Lines:
    """`member`: in the Mini App, whose poll is in the chat (a guest's is in the newest mail)."""
    _ = tr.gettext
    if member:
        return _("The answer was not sent"), [
            _(
                "The poll has closed or its times have changed. Close this page and open it "
                "again from the chat."
            )
        ]
    return _("The answer was not sent"), [
        _("The poll has closed or its times have changed. Open the newest link and look again.")
    ]


def boot(tr: Translator) -> tuple[str, str]:
    _ = tr.gettext
    return _("Opening…"), _("This page opens from its button in Telegram.")


def not_telegram(tr: Translator, reason: str) -> Lines:
    _ = tr.gettext
    if reason == "old":
        return _("Please open it again"), [
            _("This page was opened too long ago. Close it and open it again from the chat.")
        ]
    return _("This page could not be opened"), [
        _(
            "We could not confirm that it was opened from Telegram. Close it and open it again "
            "from the chat."
        )
    ]


def not_member(tr: Translator) -> Lines:
    _ = tr.gettext
    return _("This page could not be opened"), [_("Round Table does not know your account.")]


def confirm_first(tr: Translator) -> Lines:
    _ = tr.gettext
    return _("This page could not be opened"), [
        _("First confirm in the chat that what you learn about a case stays confidential.")
    ]


def not_yours(tr: Translator) -> Lines:
    _ = tr.gettext
    return _("This page could not be opened"), [_("It is not for you.")]


def invitee_name(invitee: Invitee, tr: Translator) -> str:
    if invitee.kind is InvitationKind.GUARDIAN or invitee.kind is InvitationKind.OFFLINE:
        return tr.gettext("Guardian {n}").format(n=invitee.number)
    if invitee.kind is InvitationKind.GUEST:
        return "✉ " + invitee.name
    return invitee.name


def _facts(
    tr: Translator, *, kind: ConferenceKind, minutes: int, place: str, inviter: Inviter
) -> list[str]:
    _ = tr.gettext
    return [
        _("Kind: {kind}").format(kind=kind_label(kind, tr)),
        _("Length {minutes} min · {place}").format(minutes=minutes, place=place),
        _("Invited by {name}, {institution}").format(
            name=inviter.name, institution=inviter.institution
        ),
    ]


def _choices(tr: Translator) -> list[tuple[str, str, str]]:
    _ = tr.gettext
    return [
        ("yes", _("Yes"), "yes"),
        ("maybe", _("If need be"), "maybe"),
        ("no", _("No"), "no"),
    ]


def _poll_values(
    tr: Translator,
    *,
    code: str,
    facts: list[str],
    deadline: datetime,
    slots: Sequence[Slot],
    votes: Mapping[int, Vote | None],
    notice: str | None,
    action: str,
    form_key: str,
    round_: int,
    init_data: str = "",
) -> dict[str, Any]:
    _ = tr.gettext
    return {
        "title": _("Case conference {code}").format(code=code),
        "notice": notice,
        "facts": [*facts, _("Answers until {deadline}.").format(deadline=tr.datetime(deadline))],
        "action": action,
        "form_key": form_key,
        "round": round_,
        "init_data": init_data,
        "times_heading": _("Which times suit you?"),
        "hint": _(
            "A time left unmarked counts as no. You can change your answer until the deadline."
        ),
        "slots": [
            {
                "id": slot.id,
                "label": tr.slot(slot.starts_at),
                "vote": VOTE_NAMES[vote] if (vote := votes.get(slot.id)) else "",
            }
            for slot in slots
        ],
        "choices": _choices(tr),
        "send": _("Send"),
    }


def guest_poll(poll: GuestPoll, tr: Translator, action: str, sent: bool) -> dict[str, Any]:
    _ = tr.gettext
    notice = None
    if poll.answered_at is not None and poll.answered_by is not None and not sent:
        notice = _("Answered by {name}, {when}.").format(  # entered for the guest in the chat
            name=poll.answered_by, when=tr.datetime(poll.answered_at)
        )
    elif sent or poll.answered_at is not None:
        notice = _("Thank you, your answer was sent. You can change it until {deadline}.").format(
            deadline=tr.datetime(poll.deadline)
        )
    facts = [
        _("For: {name}").format(name=poll.guest),
        *_facts(tr, kind=poll.kind, minutes=poll.minutes, place=poll.place, inviter=poll.inviter),
    ]
    return _poll_values(
        tr,
        code=poll.case_code,
        facts=facts,
        deadline=poll.deadline,
        slots=poll.slots,
        votes=poll.sent,
        notice=notice,
        action=action,
        form_key=poll.form_key,
        round_=poll.round,
    )


def member_poll(
    view: PollView, tr: Translator, action: str, sent: bool, init_data: str
) -> dict[str, Any]:
    _ = tr.gettext
    notice = None
    if sent:
        notice = _("Thank you, your answer was sent. You can change it until {deadline}.").format(
            deadline=tr.datetime(view.deadline)
        )
    elif view.invitation.answered_at is not None and view.invitation.answered_by:
        notice = _("Answered by {name}, {when}.").format(
            name=view.invitation.answered_by, when=tr.datetime(view.invitation.answered_at)
        )
    facts = (
        [invitee_name(view.invitation, tr)]
        if view.invitation.kind in (InvitationKind.INSTITUTION, InvitationKind.GUEST)
        else []
    )
    facts += _facts(
        tr, kind=view.method.kind, minutes=view.minutes, place=view.place, inviter=view.inviter
    )
    return _poll_values(
        tr,
        code=view.case_code,
        facts=facts,
        deadline=view.deadline,
        slots=view.slots if view.open else [],
        votes=view.votes,
        notice=notice if view.open else _("The poll is closed."),
        action=action,
        form_key="",
        round_=view.round,
        init_data=init_data,
    )


def guest_invitation(
    shown: GuestInvitation, tr: Translator, action: str, sent: bool
) -> dict[str, Any]:
    _ = tr.gettext
    answers = {
        Rsvp.ACCEPTED: _("Accepted"),
        Rsvp.TENTATIVE: _("Tentative"),
        Rsvp.DECLINED: _("Declined"),
    }
    notice = None
    if shown.rsvp in answers:
        if sent:
            notice = _("Thank you, your answer was sent: {answer}. You can change it.")
        else:
            notice = _("Your answer: {answer}. You can change it.")
        notice = notice.format(answer=answers[shown.rsvp])
    facts = [_("For: {name}").format(name=shown.guest)]
    facts.append(_("Kind: {kind}").format(kind=kind_label(shown.kind, tr)))
    facts += [
        _("{when} · {minutes} min").format(
            when=tr.datetime(shown.starts_at), minutes=shown.minutes
        ),
        _("Place: {place}").format(place=shown.place),
        _("Invited by {name}, {institution}").format(
            name=shown.inviter.name, institution=shown.inviter.institution
        ),
    ]
    return {
        "title": _("Case conference {code}").format(code=shown.case_code),
        "notice": notice,
        "facts": facts,
        "action": action,
        "form_key": shown.form_key,
        "sequence": shown.sequence,
        "question": _("Will you come?"),
        "reason_label": _("A reason, if you cannot come (optional; only the coordinator sees it)"),
        "reason_max": REASON_MAX,
        "reason": "",
        "answers": [
            ("accepted", _("Accept"), ""),
            ("tentative", _("Tentative"), "secondary"),
            ("declined", _("Decline"), "secondary"),
        ],
    }


def board_page(board: Board, tr: Translator) -> dict[str, Any]:
    _ = tr.gettext
    best = board.outcome.best
    text = {Vote.YES: _("Yes"), Vote.IF_NEED_BE: _("If need be"), Vote.NO: _("No")}
    rows = []
    for slot in board.slots:
        cells = []
        for invitee in board.invitees:
            vote = board.answers.get((invitee.id, slot.id))
            if invitee.answered_at is None or vote is None:
                cells.append({"css": "", "mark": "·", "text": _("no answer yet")})
            else:
                cells.append({"css": VOTE_NAMES[vote], "mark": MARKS[vote], "text": text[vote]})
        rows.append(
            {
                "label": tr.slot(slot.starts_at),
                "best": best is not None and best.id == slot.id,
                "cells": cells,
            }
        )
    answered = sum(1 for invitee in board.invitees if invitee.answered_at)
    facts = [
        _("Answered {answered} of {count}").format(answered=answered, count=len(board.invitees)),
        _("Answers until {deadline}.").format(deadline=tr.datetime(board.deadline)),
    ]
    if board.round > 1:
        facts.insert(0, _("Round {n}").format(n=board.round))
    outcome = []
    if best is not None:
        outcome.append(
            _("Best time so far: {when} ({yes} yes)").format(
                when=tr.slot(best.starts_at), yes=board.outcome.yes
            )
        )
        if board.outcome.if_need_be:
            outcome.append(
                _("If need be: {names}").format(
                    names=", ".join(invitee_name(i, tr) for i in board.outcome.if_need_be)
                )
            )
    else:
        outcome.append(_("No time suits every required invitee:"))
        for slot in board.slots:
            blockers = board.outcome.blockers.get(slot.id, ())
            if blockers:
                outcome.append(
                    f"{tr.slot(slot.starts_at)}: "
                    + ", ".join(invitee_name(i, tr) for i in blockers)
                )
    waiting = [invitee_name(i, tr) for i in board.invitees if i.answered_at is None]
    if waiting:
        outcome.append(_("No answer from: {names}").format(names=", ".join(waiting)))
    return {
        "title": _("Poll for the case conference {code}").format(code=board.case_code),
        "facts": facts,
        "caption": _("Everyone's answers for each time"),
        "time_heading": _("Time"),
        "invitees": [invitee_name(i, tr) for i in board.invitees],
        "rows": rows,
        "best_label": _("best"),
        "outcome": outcome,
    }
