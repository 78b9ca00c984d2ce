"""The record of a held conference: who came, the summary, the plan's tasks and their owners,
finishing it (the owners are then told their tasks) and the record as a document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.circulation_tables import Reply
from bot.core.crypto import Cipher
from bot.core.method_record import method_section
from bot.core.models import (
    Case,
    CaseStatus,
    Conference,
    ConferenceStatus,
    District,
    Institution,
    Invitation,
    InvitationKind,
    Member,
    RecordCirculation,
    RecordReply,
    Referral,
    Rsvp,
    Task,
    TaskParty,
    TaskStatus,
)
from bot.core.record import AttendanceLine, RecordDocument, ReplyLine, TaskLine
from bot.services import audit
from bot.services.board import (
    answerers,
    conference_subject,
    invitations_of,
    known_invitation,
    own_conference,
    today_in,
    zone_of,
)
from bot.services.members import Actor
from bot.services.tasks import (
    TaskError,
    TaskItem,
    check_due,
    clean_text,
    issue,
    task_items,
)
from scheduling import policy

TITLE_MAX = 120
SUMMARY_MAX = 2000


class NotHeldYet(TaskError):
    """The conference has not taken place yet (or was cancelled)."""


@dataclass(frozen=True)
class Attendance:
    invitation_id: int
    label: str  # the institution or guest, or "guardian N" (number > 0, label "")
    number: int
    kind: InvitationKind
    person: str | None  # who came
    attended: bool
    instead_of: str | None  # the invited person the attendee replaced


@dataclass(frozen=True)
class Circulated:
    """The draft sent for comments: until when, the answers so far, and the final's moment."""

    comments_until: datetime
    final_at: datetime | None
    commented: int
    no_comments: int
    unanswered: int


@dataclass(frozen=True)
class RecordView:
    conference_id: int
    case_id: int
    case_code: str
    starts_at: datetime
    duration_minutes: int
    place: str
    attendance: list[Attendance]
    summary: str | None
    tasks: list[TaskItem]
    review_by: date | None
    recorded_at: datetime | None
    review_id: int | None  # the review conference, once there is one
    review_at: datetime | None = None  # its time, once it is set
    review_polling: bool = False  # a poll for its date is running
    circulated: Circulated | None = None  # once the draft went out for comments


@dataclass(frozen=True)
class OwnerChoice:
    member_id: int
    name: str
    institution: str


# Helpers.


async def _held(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> Conference:
    """A conference of the actor's district that has taken place; marked held on first use."""
    conference = await own_conference(session, actor, conference_id, now=now)
    if conference.status is ConferenceStatus.SCHEDULED:
        if conference.starts_at is None or conference.starts_at > now:
            raise NotHeldYet("not yet")
        await session.execute(
            update(Conference)
            .where(Conference.id == conference.id, Conference.status == ConferenceStatus.SCHEDULED)
            .values(status=ConferenceStatus.HELD)
        )
        await session.refresh(conference)
        await _prefill_attendance(session, conference)
        await outbox.cancel(session, subject=conference_subject(conference.id), now=now)
    if conference.status is not ConferenceStatus.HELD:
        raise NotHeldYet(conference.status.value)
    return conference


async def _prefill_attendance(session: AsyncSession, conference: Conference) -> None:
    """Who came, as far as the answers tell: accepted and tentative came, the others did not."""
    for invitation in await invitations_of(session, conference.id):
        if invitation.attended is None:
            invitation.attended = invitation.rsvp in (Rsvp.ACCEPTED, Rsvp.TENTATIVE) or (
                invitation.kind is InvitationKind.OFFLINE
            )
            invitation.attendee_id = _expected(invitation)


def _expected(invitation: Invitation) -> int | None:
    return invitation.delegate_id or invitation.rsvp_by_id or invitation.member_id


async def _names(session: AsyncSession, ids: Sequence[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(
        select(Member.id, Member.display_name).where(Member.id.in_(wanted))
    )
    return {member_id: name for member_id, name in rows}


# The record.


async def record_view(
    session: AsyncSession, actor: Actor, cipher: Cipher, conference_id: int, *, now: datetime
) -> RecordView:
    conference = await _held(session, actor, conference_id, now=now)
    return await _record_view(session, cipher, conference, now=now)


async def recordable(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> int:
    """A held conference the actor may write the record of (before asking them to type a part
    of it); anyone else is refused, audited."""
    return (await _held(session, actor, conference_id, now=now)).id


async def _record_view(
    session: AsyncSession, cipher: Cipher, conference: Conference, *, now: datetime
) -> RecordView:
    case = await session.get_one(Case, conference.case_id)
    invitations = list(
        await session.scalars(
            select(Invitation)
            .where(Invitation.conference_id == conference.id)
            .order_by(Invitation.kind, Invitation.number, Invitation.id)
        )
    )
    rows = await session.execute(
        select(Institution.id, Institution.name).where(
            Institution.id.in_([i.institution_id for i in invitations if i.institution_id])
        )
    )
    institutions = {institution_id: name for institution_id, name in rows}
    names = await _names(
        session, [i.attendee_id for i in invitations] + [_expected(i) for i in invitations]
    )
    attendance = []
    for invitation in invitations:
        expected = _expected(invitation)
        person = names.get(invitation.attendee_id) if invitation.attendee_id else None
        instead = (
            names.get(expected)
            if invitation.attended and expected and invitation.attendee_id != expected
            else None
        )
        attendance.append(
            Attendance(
                invitation.id,
                invitation.guest_name or institutions.get(invitation.institution_id or 0, ""),
                invitation.number,
                invitation.kind,
                person if invitation.attended else None,
                bool(invitation.attended),
                instead,
            )
        )
    review = (
        await session.execute(
            select(Conference.id, Conference.starts_at, Conference.status).where(
                Conference.review_of_id == conference.id,
                Conference.status != ConferenceStatus.CANCELLED,
            )
        )
    ).first()
    review_id, review_at = (None, None) if review is None else (review.id, review.starts_at)
    polling = review is not None and review.status is ConferenceStatus.POLLING
    if polling:
        review_at = None  # a new poll: the old time no longer holds
    assert conference.starts_at is not None
    return RecordView(
        conference.id,
        case.id,
        case.code,
        conference.starts_at,
        conference.duration_minutes,
        conference.place,
        attendance,
        cipher.decrypt(conference.summary).decode() if conference.summary else None,
        await task_items(
            session,
            cipher,
            Task.conference_id == conference.id,
            Task.status != TaskStatus.CANCELLED,  # a cancelled task is no longer in the plan
            now=now,
        ),
        conference.review_by,
        conference.recorded_at,
        review_id,
        review_at,
        polling,
        await circulated(session, conference.id),
    )


async def circulated(session: AsyncSession, conference_id: int) -> Circulated | None:
    """The draft's round for comments and its answers so far; None before it went out."""
    circulation = await session.get(RecordCirculation, conference_id)
    if circulation is None:
        return None
    answers = list(
        await session.scalars(
            select(RecordReply.reply).where(RecordReply.conference_id == conference_id)
        )
    )
    return Circulated(
        circulation.comments_until,
        circulation.final_at,
        answers.count(Reply.COMMENTED),
        answers.count(Reply.NO_COMMENTS),
        answers.count(Reply.NONE),
    )


async def toggle_attendance(
    session: AsyncSession, actor: Actor, invitation_id: int, *, now: datetime
) -> int:
    """One tap per participant: came → (a colleague came instead) → did not come → came."""
    invitation = await known_invitation(
        session, actor, invitation_id, action="record.attendance", now=now
    )
    conference = await _held(session, actor, invitation.conference_id, now=now)
    expected = _expected(invitation)
    people: list[int | None] = [expected] if expected else []
    if invitation.kind is InvitationKind.INSTITUTION:
        # Whoever may answer for the invitation may have come in the expected one's place.
        others = await answerers(session, invitation, conference)
        people += [m.id for m in others if m.id != expected]
    if not people:
        people = [None]
    states: list[tuple[bool, int | None]] = [(True, p) for p in people] + [(False, expected)]
    current = (
        bool(invitation.attended),
        invitation.attendee_id if invitation.attended else expected,
    )
    position = states.index(current) if current in states else len(states) - 1
    invitation.attended, invitation.attendee_id = states[(position + 1) % len(states)]
    return conference.id


async def set_summary(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    conference_id: int,
    text: str,
    *,
    now: datetime,
) -> int:
    conference = await _held(session, actor, conference_id, now=now)
    conference.summary = cipher.encrypt(clean_text(text, SUMMARY_MAX, one_line=False).encode())
    await audit.acted(session, actor, "record.summary", conference, at=now)
    return conference.id


async def owner_choices(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> list[OwnerChoice]:
    """Members of the participating institutions (those who came first), and the coordinator."""
    conference = await _held(session, actor, conference_id, now=now)
    invitations = await invitations_of(session, conference.id)
    came = {i.attendee_id for i in invitations if i.attended and i.attendee_id}
    institution_ids = [i.institution_id for i in invitations if i.institution_id]
    guardian_ids = [i.member_id for i in invitations if i.member_id]
    rows = await session.execute(
        select(Member.id, Member.display_name, Institution.name)
        .join(Institution, Member.institution_id == Institution.id)
        .where(
            Member.active.is_(True),
            or_(
                Member.institution_id.in_(institution_ids),
                Member.id.in_(guardian_ids),
                Member.id == conference.coordinator_id,
            ),
        )
        .order_by(Member.display_name, Member.id)
    )
    choices = [OwnerChoice(mid, name, inst) for mid, name, inst in rows]
    return sorted(choices, key=lambda c: (c.member_id not in came, c.name))


async def check_owner(
    session: AsyncSession,
    actor: Actor,
    conference_id: int,
    owner_id: int,
    action: str,
    *,
    now: datetime,
) -> None:
    """A task's owner is one of the conference's owner choices; anyone else is a forged
    button, refused (audited)."""
    choices = await owner_choices(session, actor, conference_id, now=now)
    if owner_id not in {c.member_id for c in choices}:
        raise audit.refused(actor, action, "member", owner_id, at=now)


async def add_task(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    conference_id: int,
    *,
    title: str,
    owner_id: int,
    due_on: date,
    party: TaskParty = TaskParty.MEMBER,
    now: datetime,
) -> int:
    """A task of the plan. Its owner is told once the record is finished (at once if it is)."""
    conference = await _held(session, actor, conference_id, now=now)
    await check_owner(session, actor, conference.id, owner_id, "task.add", now=now)
    district = await session.get_one(District, conference.district_id)
    check_due(due_on, today_in(district, now))
    task = Task(
        case_id=conference.case_id,
        conference_id=conference.id,
        title=cipher.encrypt(clean_text(title, TITLE_MAX).encode()),
        party=party,
        owner_id=owner_id,
        due_on=due_on,
        status=TaskStatus.OPEN,
        version=1,
        created_at=now,
    )
    session.add(task)
    await session.flush()
    await audit.acted(
        session, actor, "task.added", task, at=now, owner=owner_id, due=due_on.isoformat()
    )
    if conference.recorded_at is not None:
        await issue(session, task, district, now=now)
    return task.id


async def finish_record(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> int:
    """The record is done: every owner is told their tasks; the review is due in 3 months.
    Returns how many owners were told."""
    conference = await _held(session, actor, conference_id, now=now)
    district = await session.get_one(District, conference.district_id)
    assert conference.starts_at is not None
    if conference.review_by is None:
        conference.review_by = policy.review_by(
            conference.starts_at.astimezone(zone_of(district)).date()
        )
    first = conference.recorded_at is None
    conference.recorded_at = conference.recorded_at or now
    tasks = list(
        await session.scalars(
            select(Task).where(
                Task.conference_id == conference.id,
                Task.status == TaskStatus.OPEN,
                Task.issued_at.is_(None),
            )
        )
    )
    for task in tasks:
        await issue(session, task, district, now=now)
    if first:
        await audit.acted(session, actor, "record.finished", conference, at=now, tasks=len(tasks))
    return len({task.owner_id for task in tasks})


async def record_document(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    conference_id: int,
    *,
    with_name: bool,
    now: datetime,
) -> RecordDocument:
    """The record as a document; the child's name only when asked for, and that is audited."""
    conference = await _held(session, actor, conference_id, now=now)
    child = None
    if with_name:
        case = await session.get_one(Case, conference.case_id)
        referral = await session.get(Referral, case.referral_id) if case.referral_id else None
        if referral is not None:
            child = str(cipher.decrypt_json(referral.sealed).get("name") or "") or None
    await audit.acted(
        session, actor, "record.document", conference, at=now, child_name=child is not None
    )
    return await document_of(session, cipher, conference, child=child, now=now)


async def document_of(
    session: AsyncSession,
    cipher: Cipher,
    conference: Conference,
    *,
    child: str | None = None,
    now: datetime,
) -> RecordDocument:
    """A held conference's record as a document, for whoever the caller has allowed it to: a
    draft while it is circulated for comments, the final with the answers once sent."""
    view = await _record_view(session, cipher, conference, now=now)
    coordinator = await session.get_one(Member, conference.coordinator_id)
    district = await session.get_one(District, conference.district_id)
    circulated = view.circulated
    return RecordDocument(
        code=view.case_code,
        starts_at=view.starts_at,
        duration_minutes=view.duration_minutes,
        place=view.place,
        coordinator=coordinator.display_name,
        attendance=[
            AttendanceLine(
                a.label,
                a.person,
                a.attended,
                a.instead_of,
                guardian=_guardian_number(a.kind, a.number),
            )
            for a in view.attendance
        ],
        summary=view.summary or "",
        tasks=[TaskLine(t.title, t.owner, t.due_on, t.party) for t in view.tasks],
        review_at=view.review_at,
        review_by=None if view.review_at else view.review_by,
        review_polling=view.review_polling,
        child_name=child,
        method=await method_section(session, cipher, conference),
        district=district.name,
        draft=circulated is not None and circulated.final_at is None,
        comments_until=None if circulated is None else circulated.comments_until,
        replies=None if circulated is None else await _reply_lines(session, view),
    )


def _guardian_number(kind: InvitationKind, number: int) -> int:
    return number if kind in (InvitationKind.GUARDIAN, InvitationKind.OFFLINE) else 0


async def _reply_lines(session: AsyncSession, view: RecordView) -> list[ReplyLine]:
    """Each circulated invitation's answer, in the attendance's order."""
    rows = await session.execute(
        select(RecordReply).where(RecordReply.conference_id == view.conference_id)
    )
    replies = {reply.invitation_id: reply for reply in rows.scalars()}
    return [
        ReplyLine(
            a.label,
            replies[a.invitation_id].reply,
            replies[a.invitation_id].late,
            guardian=_guardian_number(a.kind, a.number),
        )
        for a in view.attendance
        if a.invitation_id in replies
    ]


async def still_to_record(
    session: AsyncSession, conference_id: int, sequence: int | None
) -> str | None:
    """The case code of a conference that has ended and whose record is not finished."""
    conference = await session.get(Conference, conference_id)
    if conference is None or conference.recorded_at is not None:
        return None
    if conference.status not in (ConferenceStatus.SCHEDULED, ConferenceStatus.HELD):
        return None
    if sequence is not None and conference.sequence != sequence:
        return None
    case = await session.get_one(Case, conference.case_id)
    return case.code if case.status is CaseStatus.OPEN else None
