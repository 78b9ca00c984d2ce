"""The method's parts of a conference as the record receives them: its kind and goal, and the
child's voice (how the child takes part, and their view in their own words); their section of
the record document, and the child's line on the attendance sheet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.crypto import Cipher
from bot.core.i18n import Translator
from bot.core.method_tables import ChildPart, ConferenceKind, ConferenceMethod
from bot.core.models import Conference

if TYPE_CHECKING:
    from collections.abc import Callable

    from docx.document import Document as DocumentObject


@dataclass(frozen=True)
class MethodSection:
    """What the record says of the conference's kind and goal and of the child's voice."""

    kind: ConferenceKind = ConferenceKind.INITIAL
    goal: str = ""
    child_part: ChildPart | None = None
    support: str = ""  # the support person
    reason: str = ""  # why the child does not take part
    child_view: str = ""  # the child's view, in their words
    child_present: bool = False  # the child came (on the attendance sheet)


def _plain(cipher: Cipher, token: bytes | None) -> str:
    return cipher.decrypt(token).decode() if token else ""


def default_kind(conference: Conference) -> ConferenceKind:
    """A conference's kind until the coordinator picks one: a review's is review."""
    return ConferenceKind.REVIEW if conference.review_of_id is not None else ConferenceKind.INITIAL


def section_of(
    conference: Conference, row: ConferenceMethod | None, cipher: Cipher
) -> MethodSection:
    """The conference's row decrypted (one from before the method's row: its default kind,
    nothing written)."""
    if row is None:
        return MethodSection(kind=default_kind(conference))
    return MethodSection(
        kind=row.kind,
        goal=_plain(cipher, row.goal),
        child_part=row.child_part,
        support=_plain(cipher, row.support),
        reason=_plain(cipher, row.reason),
        child_view=_plain(cipher, row.child_view),
        child_present=row.child_present,
    )


async def method_section(
    session: AsyncSession, cipher: Cipher, conference: Conference
) -> MethodSection:
    return section_of(conference, await session.get(ConferenceMethod, conference.id), cipher)


def kind_label(kind: ConferenceKind, tr: Translator) -> str:
    """The conference's kind, as every message and the record name it."""
    _ = tr.gettext
    return {
        ConferenceKind.INITIAL: _("initial conference"),
        ConferenceKind.REVIEW: _("review conference"),
        ConferenceKind.COURT: _("conference before a court petition (§ 14(2)(b) of Act 359/1999)"),
        ConferenceKind.OTHER: _("other conference"),
    }[kind]


def part_label(part: ChildPart | None, tr: Translator) -> str:
    """How the child takes part, as the coordinator's screen and the record say it."""
    _ = tr.gettext
    if part is None:
        return _("not recorded yet")
    return {
        ChildPart.PRESENT: _("present at the conference"),
        ChildPart.SUPPORTED: _("present with a support person"),
        ChildPart.VIEW: _("through a written or reported view"),
        ChildPart.ABSENT: _("does not take part"),
    }[part]


def add_method_section(
    document: DocumentObject,
    section: MethodSection,
    tr: Translator,
    paragraphs: Callable[[str], list[str]],
) -> None:
    """The kind and goal, then the child's voice, each under its own heading; `paragraphs`
    cleans a free text into the document's paragraphs."""
    _ = tr.gettext
    document.add_heading(_("Kind and goal of the conference"), level=1)
    document.add_paragraph(_("Kind: {kind}").format(kind=kind_label(section.kind, tr)))
    goal = paragraphs(section.goal)
    document.add_paragraph(_("Goal: {goal}").format(goal=goal[0] if goal else _("not written")))
    for line in goal[1:]:
        document.add_paragraph(line)

    document.add_heading(_("The child's voice"), level=1)
    document.add_paragraph(
        _("How the child takes part: {part}").format(part=part_label(section.child_part, tr))
    )
    if section.child_part is ChildPart.SUPPORTED:
        support = " ".join(paragraphs(section.support)) or _("not written")
        document.add_paragraph(_("Support person: {name}").format(name=support))
    if section.child_part is ChildPart.ABSENT:
        reason = " ".join(paragraphs(section.reason)) or _("not written")
        document.add_paragraph(_("Reason: {reason}").format(reason=reason))
    document.add_paragraph(_("The child's view in their own words:"))
    for line in paragraphs(section.child_view) or [_("Not recorded.")]:
        document.add_paragraph(line)


def child_attendance(
    section: MethodSection | None, child_name: str | None, tr: Translator
) -> list[tuple[str, str, str, str]]:
    """The child's row on the attendance sheet when they came: named only when the coordinator
    asked for the child's name in the document."""
    if section is None or not section.child_present:
        return []
    return [(tr.gettext("The child"), child_name or "", tr.gettext("yes"), "")]
