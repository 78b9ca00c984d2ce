"""What the messages about a conference say of its kind and goal, shared by the plan, the poll,
the invitation, the board and the method's own dialog (`handlers.method`)."""

from __future__ import annotations

from bot.core.i18n import N_, Translator
from bot.core.method_record import kind_label
from bot.core.method_tables import ConferenceKind

# The order "🏷 Kind" goes round on the coordinator's screens.
KINDS = tuple(ConferenceKind)
GOAL = "mg"  # a participant's "Goal of the conference": mg:<conference id>
METHOD = "mt"  # the coordinator's screen of the kind, goal and child's voice: mt:o:<id>
# Asked when the coordinator writes the goal: in the plan, and on the method's screen.
GOAL_PROMPT = N_(
    "Type the goal of the conference in one message (at most {limit} characters): what the "
    "conference should agree on. It is stored encrypted; the invited read it in the bot on "
    "request."
)


def next_kind(kind: ConferenceKind) -> ConferenceKind:
    return KINDS[(KINDS.index(kind) + 1) % len(KINDS)]


def kind_line(kind: ConferenceKind, tr: Translator) -> str:
    return tr.gettext("Kind: {kind}").format(kind=kind_label(kind, tr))


def goal_note(tr: Translator) -> str:
    """What an invitation says of the goal: only that it is in the bot."""
    return tr.gettext("The goal of the conference is in the bot: tap 🎯 Goal of the conference.")


def goal_button(conference_id: int, tr: Translator) -> tuple[str, str]:
    return ("🎯 " + tr.gettext("Goal of the conference"), f"{GOAL}:{conference_id}")


def method_button(conference_id: int, tr: Translator) -> tuple[str, str]:
    """The coordinator's way to the kind, the goal and the child's voice."""
    return ("🧒 " + tr.gettext("Goal and the child's voice"), f"{METHOD}:o:{conference_id}")


def too_long(tr: Translator, limit: int, count: int) -> str:
    """A typed text refused: empty (not text at all), or `count` characters over `limit`."""
    if not count:
        return tr.gettext("Please type it as text.")
    return tr.gettext(
        "That is {count} characters; at most {limit} fit. Please shorten it and send it again."
    ).format(count=count, limit=limit)
