"""The case-conference method's own parts of a conference: its kind (initial, review, before a
court petition, other) and its goal, and the child's voice (how the child takes part, and their
view in their own words).

The coordinator picks the kind and writes the goal when planning, and may change both, and
record the child's voice, until the record is final (finished, or, when its draft went out for
comments, until the final one is sent). The goal is stored encrypted;
invitations only say that it is in the bot, and a participant (a member who may answer for one
of the conference's invitations) reads it on request: every reading is audited, and so is every
refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.circulation_tables import RecordCirculation
from bot.core.crypto import Cipher
from bot.core.method_record import MethodSection, default_kind, section_of
from bot.core.method_tables import ChildPart, ConferenceKind, ConferenceMethod
from bot.core.models import Case, Conference, ConferenceStatus
from bot.services import audit, records
from bot.services.board import answerers, invitations_of, method_of, own_conference
from bot.services.errors import ServiceError
from bot.services.members import Actor
from bot.services.tasks import clean_text

GOAL_MAX = 500
SUPPORT_MAX = 120
REASON_MAX = 300
VIEW_MAX = 2000
# The typed fields: what the coordinator types, its column and its limit.
FIELDS: dict[str, tuple[str, int]] = {
    "goal": ("goal", GOAL_MAX),
    "support": ("support", SUPPORT_MAX),
    "reason": ("reason", REASON_MAX),
    "view": ("child_view", VIEW_MAX),
}


class MethodClosed(ServiceError):
    """The record is finished (or the conference cancelled): its method is no longer changed."""


class BadText(ServiceError):
    """Empty, or longer than its limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(str(limit))
        self.limit = limit


@dataclass(frozen=True)
class MethodView:
    """The coordinator's screen of a conference's kind, goal and child's voice."""

    conference_id: int
    case_code: str
    section: MethodSection
    open: bool  # may still be changed


@dataclass(frozen=True)
class GoalView:
    conference_id: int
    case_code: str
    kind: ConferenceKind
    goal: str  # "" if the coordinator has not written it yet


def check_text(text: str, limit: int) -> str:
    """The typed text, trimmed; refused if empty or over the limit (BadText)."""
    try:
        return clean_text(text, limit, one_line=False)
    except ValueError:
        raise BadText(limit) from None


async def start(
    session: AsyncSession,
    cipher: Cipher,
    conference_id: int,
    kind: ConferenceKind,
    goal: str,
    *,
    now: datetime,
) -> None:
    """The row of a conference whose poll just started, with the plan's kind and goal."""
    session.add(
        ConferenceMethod(
            conference_id=conference_id,
            kind=kind,
            goal=cipher.encrypt(goal.encode()) if goal else None,
            child_present=False,
            updated_at=now,
        )
    )
    await session.flush()


async def _row(session: AsyncSession, conference: Conference, *, now: datetime) -> ConferenceMethod:
    """The conference's row; one made now for a conference planned before there were any."""
    row = await session.get(ConferenceMethod, conference.id)
    if row is None:
        row = ConferenceMethod(
            conference_id=conference.id,
            kind=default_kind(conference),
            child_present=False,
            updated_at=now,
        )
        session.add(row)
        await session.flush()
    return row


async def _open(session: AsyncSession, conference: Conference) -> bool:
    """Changeable until the record is final: before it is finished, and while its draft is out
    for comments (the coordinator may edit the record before sending the final one)."""
    if conference.status is ConferenceStatus.CANCELLED:
        return False
    if conference.recorded_at is None:
        return True
    circulation = await session.get(RecordCirculation, conference.id)
    return circulation is not None and circulation.final_at is None


async def method_view(
    session: AsyncSession, actor: Actor, cipher: Cipher, conference_id: int, *, now: datetime
) -> MethodView:
    """The coordinator's screen (the goal and the child's voice in it: the reading is
    audited)."""
    conference = await own_conference(session, actor, conference_id, now=now)
    row = await _row(session, conference, now=now)
    case = await session.get_one(Case, conference.case_id)
    await audit.acted(session, actor, "conference.method_viewed", conference, at=now)
    section = section_of(conference, row, cipher)
    return MethodView(conference.id, case.code, section, await _open(session, conference))


async def _changeable(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> tuple[Conference, ConferenceMethod]:
    conference = await own_conference(session, actor, conference_id, now=now)
    if not await _open(session, conference):
        raise MethodClosed(str(conference_id))
    return conference, await _row(session, conference, now=now)


async def set_kind(
    session: AsyncSession, actor: Actor, conference_id: int, kind: ConferenceKind, *, now: datetime
) -> None:
    conference, row = await _changeable(session, actor, conference_id, now=now)
    if row.kind is not kind:
        row.kind = kind
        row.updated_at = now
        await audit.acted(session, actor, "conference.kind", conference, at=now, kind=kind.value)


async def set_child_part(
    session: AsyncSession, actor: Actor, conference_id: int, part: ChildPart, *, now: datetime
) -> None:
    conference, row = await _changeable(session, actor, conference_id, now=now)
    if row.child_part is not part:
        row.child_part = part
        row.updated_at = now
        await audit.acted(
            session, actor, "conference.child_part", conference, at=now, part=part.value
        )


async def set_text(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    conference_id: int,
    field: str,
    *,
    text: str,
    now: datetime,
) -> None:
    """A typed field (`FIELDS`: the goal, the support person, the reason, the child's view),
    encrypted; the audit entry names the field, never its text."""
    column, limit = FIELDS[field]
    value = check_text(text, limit)
    conference, row = await _changeable(session, actor, conference_id, now=now)
    setattr(row, column, cipher.encrypt(value.encode()))
    row.updated_at = now
    await audit.acted(session, actor, "conference.method_text", conference, at=now, field=field)


async def changeable(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> int:
    """A conference whose method the actor may still change (before they type a part of it)."""
    conference, _ = await _changeable(session, actor, conference_id, now=now)
    return conference.id


async def toggle_child_present(
    session: AsyncSession,
    actor: Actor,
    conference_id: int,
    *,
    now: datetime,
    present: bool | None = None,
) -> bool:
    """On the attendance sheet of a held conference: the child came, or not (`present`; None
    turns it over). The same button twice (a double tap) changes nothing the second time.
    Returns whether they now are marked present."""
    await records.recordable(session, actor, conference_id, now=now)
    conference = await session.get_one(Conference, conference_id)
    row = await _row(session, conference, now=now)
    wanted = not row.child_present if present is None else present
    if row.child_present is not wanted:
        row.child_present = wanted
        row.updated_at = now
        await audit.acted(
            session, actor, "record.child_present", conference, at=now, present=wanted
        )
    return row.child_present


async def child_present(session: AsyncSession, conference_id: int) -> bool:
    """Whether the child is marked present (whoever calls has checked the reader may see it)."""
    row = await session.get(ConferenceMethod, conference_id)
    return row is not None and row.child_present


async def kind_of(session: AsyncSession, conference_id: int) -> ConferenceKind:
    return (await method_of(session, conference_id)).kind


async def _participates(session: AsyncSession, actor: Actor, conference: Conference) -> bool:
    """The coordinators of the district, and whoever may answer for one of its invitations
    (a member of an invited institution, the guardian who joined by the link)."""
    if actor.coordinates(conference.district_id):
        return True
    for invitation in await invitations_of(session, conference.id):
        people = await answerers(session, invitation, conference)  # none for other kinds
        if any(person.id == actor.member_id for person in people):
            return True
    return False


async def read_goal(
    session: AsyncSession, actor: Actor, cipher: Cipher, conference_id: int, *, now: datetime
) -> GoalView:
    """The goal, on a participant's request: the reading is audited (who, when; never the
    text); anyone else is refused, audited."""
    conference = await session.get(Conference, conference_id)
    if conference is None or not await _participates(session, actor, conference):
        raise audit.refused(actor, "conference.goal", "conference", conference_id, at=now)
    row = await session.get(ConferenceMethod, conference.id)
    case = await session.get_one(Case, conference.case_id)
    await audit.acted(session, actor, "conference.goal_read", conference, at=now, case=case.code)
    section = section_of(conference, row, cipher)
    return GoalView(conference.id, case.code, section.kind, section.goal)
