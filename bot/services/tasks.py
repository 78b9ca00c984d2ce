"""After the table: the record of a held conference, the plan's tasks and their owners, the
coordinator's overview (digest, agenda, next steps) and closing a case.

Everything a task owner is told goes through the outbox, planned in the transaction of the
change (`_plan_task`); a change of owner or due date raises the task's version, cancels what was
pending and plans afresh, so a moved task is never nudged at its old date.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.crypto import Cipher
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
    Referral,
    ReferralStatus,
    Role,
    Rsvp,
    Task,
    TaskNote,
    TaskParty,
    TaskStatus,
)
from bot.core.record import AttendanceLine, RecordDocument, TaskLine
from bot.services import audit
from bot.services.board import ACTIVE, Recipient, district_calendar, recipient_of
from bot.services.board import own_conference as _own_conference
from bot.services.board import refused as _refused
from bot.services.errors import ServiceError
from bot.services.invitations import cancel_conference
from bot.services.members import Actor
from scheduling import policy

TITLE_MAX = 120
SUMMARY_MAX = 2000
NOTE_MAX = 500

# Notification kinds (rendered by handlers.tasks).
ASSIGNED = "task.assigned"
NUDGE = "task.nudge"
ALERT = "task.alert"  # to the coordinator: 7 days overdue
MORE_TIME = "task.more_time"  # to the coordinator: an owner asks for more time
DECIDED = "task.decided"  # to the owner: more time given or refused
DONE = "task.done"  # to the coordinator: a task is done
CHANGED = "task.changed"  # to the owner: the coordinator moved the due date
CANCELLED = "task.cancelled"  # to the owner: the task was cancelled (or its case closed)
RELEASED = "task.released"  # to the previous owner: the task was given to someone else
DIGEST = "digest.weekly"


class TaskError(ServiceError):
    """A task or record action that no longer applies (done, cancelled, moved on)."""


class NotHeldYet(TaskError):
    """The conference has not taken place yet (or was cancelled)."""


class DueOutOfRange(ServiceError):
    """A due date in the past or further ahead than a plan reaches (policy.latest_due): the
    person types another; nothing was changed."""

    def __init__(self, earliest: date, latest: date) -> None:
        super().__init__(f"due between {earliest} and {latest}")
        self.earliest = earliest
        self.latest = latest


class Outcome(enum.StrEnum):
    FULFILLED = "fulfilled"
    HANDED_OVER = "handed_over"
    OTHER = "other"


# What the handlers show.


@dataclass(frozen=True)
class Attendance:
    invitation_id: int
    label: str  # the institution, or "guardian N" (number > 0, label "")
    number: int
    kind: InvitationKind
    person: str | None  # who came
    attended: bool
    instead_of: str | None  # the invited person the attendee replaced


@dataclass(frozen=True)
class TaskItem:
    id: int
    conference_id: int
    owner_id: int
    case_code: str
    title: str
    owner: str  # the member who answers for it
    party: TaskParty
    due_on: date
    status: TaskStatus
    overdue: bool
    asked_due_on: date | None


@dataclass(frozen=True)
class NoteLine:
    author: str
    at: datetime
    kind: str  # note, done
    text: str


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


@dataclass(frozen=True)
class OwnerChoice:
    member_id: int
    name: str
    institution: str


@dataclass(frozen=True)
class CaseStep:
    """What comes next in a case, for /cases."""

    conference: Conference | None  # the active one, or the last held one
    to_record: bool  # held, the record not finished
    open_tasks: int
    overdue_tasks: int
    review_by: date | None
    recorded_id: int | None = None  # the last held conference whose record is finished


@dataclass(frozen=True)
class AgendaItem:
    case_code: str
    starts_at: datetime
    place: str


@dataclass(frozen=True)
class DigestItem:
    id: int  # referral, conference or task id
    code: str
    when: datetime | None
    title: str = ""


@dataclass(frozen=True)
class Digest:
    referrals: list[DigestItem]
    polls: list[DigestItem]
    this_week: list[DigestItem]
    next_week: list[DigestItem]
    overdue: list[DigestItem]
    due_this_week: list[DigestItem]
    to_record: list[DigestItem]

    def __bool__(self) -> bool:
        return any(
            (
                self.referrals,
                self.polls,
                self.this_week,
                self.next_week,
                self.overdue,
                self.due_this_week,
                self.to_record,
            )
        )


# Helpers.


def _zone(district: District) -> ZoneInfo:
    return ZoneInfo(district.timezone)


def _today(district: District, now: datetime) -> date:
    return now.astimezone(_zone(district)).date()


def check_due(due_on: date, today: date) -> None:
    """Refuses a due date outside today .. policy.latest_due: before anything is computed from
    it, so that a "31.12.9999" never reaches the nudges' date arithmetic."""
    latest = policy.latest_due(today)
    if not today <= due_on <= latest:
        raise DueOutOfRange(today, latest)


def _subject(task_id: int) -> str:
    return f"task:{task_id}"


def _clean(text: str, limit: int, *, one_line: bool = True) -> str:
    value = " ".join(text.split()) if one_line else text.strip()
    if not value:
        raise ValueError("empty")
    if len(value) > limit:
        raise ValueError(f"{len(value)} > {limit}")
    return value


async def _held(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> Conference:
    """A conference of the actor's district that has taken place; marked held on first use."""
    conference = await _own_conference(session, actor, conference_id, now=now)
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
        await outbox.cancel(session, subject=f"conference:{conference.id}", now=now)
    if conference.status is not ConferenceStatus.HELD:
        raise NotHeldYet(conference.status.value)
    return conference


async def _prefill_attendance(session: AsyncSession, conference: Conference) -> None:
    """Who came, as far as the answers tell: accepted and tentative came, the others did not."""
    for invitation in await session.scalars(
        select(Invitation).where(Invitation.conference_id == conference.id)
    ):
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
                institutions.get(invitation.institution_id or 0, ""),
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
        await _items(
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
    )


async def toggle_attendance(
    session: AsyncSession, actor: Actor, invitation_id: int, *, now: datetime
) -> int:
    """One tap per participant: came → (a colleague came instead) → did not come → came."""
    invitation = await session.get(Invitation, invitation_id)
    if invitation is None:
        raise _refused(
            actor, "record.attendance", invitation_id, now=now, subject_type="invitation"
        )
    conference = await _held(session, actor, invitation.conference_id, now=now)
    expected = _expected(invitation)
    people: list[int | None] = [expected] if expected else []
    if invitation.kind is InvitationKind.INSTITUTION:
        people += [
            m
            for m in await session.scalars(
                select(Member.id)
                .where(
                    Member.institution_id == invitation.institution_id,
                    Member.active.is_(True),
                    Member.id != conference.coordinator_id,
                )
                .order_by(Member.id)
            )
            if m != expected
        ]
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
    conference.summary = cipher.encrypt(_clean(text, SUMMARY_MAX, one_line=False).encode())
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="record.summary",
        subject_type="conference",
        subject_id=conference.id,
    )
    return conference.id


async def owner_choices(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> list[OwnerChoice]:
    """Members of the participating institutions (those who came first), and the coordinator."""
    conference = await _held(session, actor, conference_id, now=now)
    invitations = list(
        await session.scalars(select(Invitation).where(Invitation.conference_id == conference.id))
    )
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
    if owner_id not in {
        c.member_id for c in await owner_choices(session, actor, conference.id, now=now)
    }:
        raise _refused(actor, "task.add", owner_id, now=now, subject_type="member")
    district = await session.get_one(District, conference.district_id)
    check_due(due_on, _today(district, now))
    task = Task(
        case_id=conference.case_id,
        conference_id=conference.id,
        title=cipher.encrypt(_clean(title, TITLE_MAX).encode()),
        party=party,
        owner_id=owner_id,
        due_on=due_on,
        status=TaskStatus.OPEN,
        version=1,
        created_at=now,
    )
    session.add(task)
    await session.flush()
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="task.added",
        subject_type="task",
        subject_id=task.id,
        owner=owner_id,
        due=due_on.isoformat(),
    )
    if conference.recorded_at is not None:
        await _issue(session, task, district, now=now)
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
            conference.starts_at.astimezone(_zone(district)).date()
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
        await _issue(session, task, district, now=now)
    if first:
        await audit.record(
            session,
            at=now,
            actor_id=actor.member_id,
            action="record.finished",
            subject_type="conference",
            subject_id=conference.id,
            tasks=len(tasks),
        )
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
    view = await _record_view(session, cipher, conference, now=now)
    coordinator = await session.get_one(Member, conference.coordinator_id)
    child = None
    if with_name:
        case = await session.get_one(Case, conference.case_id)
        referral = await session.get(Referral, case.referral_id) if case.referral_id else None
        if referral is not None:
            child = str(cipher.decrypt_json(referral.sealed).get("name") or "") or None
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="record.document",
        subject_type="conference",
        subject_id=conference.id,
        child_name=child is not None,
    )
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
                guardian=a.number if a.kind is not InvitationKind.INSTITUTION else 0,
            )
            for a in view.attendance
        ],
        summary=view.summary or "",
        tasks=[TaskLine(t.title, t.owner, t.due_on, t.party) for t in view.tasks],
        review_at=view.review_at,
        review_by=None if view.review_at else view.review_by,
        review_polling=view.review_polling,
        child_name=child,
    )


# Tasks: telling owners, nudging them, and what they do.


async def _issue(session: AsyncSession, task: Task, district: District, *, now: datetime) -> None:
    task.issued_at = now
    await _plan_task(session, task, district, now=now, assigned=True)


def _planned(
    task: Task, key: str, kind: str, member: Member, moment: policy.Moment, **extra: object
) -> outbox.Planned:
    """One row about a task for one member; the key carries the task's current version."""
    return outbox.Planned(
        key=f"task:{task.id}:v{task.version}:{key}",
        kind=kind,
        subject=_subject(task.id),
        member_id=member.id,
        chat_id=member.chat_id,
        due_at=moment.due,
        expires_at=moment.expires,
        payload={"task": task.id, "version": task.version, **extra},
    )


def _at_once(now: datetime, *, days: int = 30) -> policy.Moment:
    """Now, and still worth sending for a while if the bot is down."""
    return policy.Moment("now", now, now + timedelta(days=days))


async def _coordinator(session: AsyncSession, task: Task) -> Member:
    conference = await session.get_one(Conference, task.conference_id)
    return await session.get_one(Member, conference.coordinator_id)


async def _plan_task(
    session: AsyncSession, task: Task, district: District, *, now: datetime, assigned: bool
) -> None:
    owner = await session.get_one(Member, task.owner_id)
    items: list[outbox.Planned] = []
    if assigned:
        items.append(_planned(task, "assigned", ASSIGNED, owner, _at_once(now)))
    zone = _zone(district)
    for moment in policy.task_nudges(task.due_on, zone, now):
        items.append(_planned(task, moment.name, NUDGE, owner, moment))
    alert = policy.task_alert(task.due_on, zone)
    if alert.due > now:
        items.append(_planned(task, "alert", ALERT, await _coordinator(session, task), alert))
    await outbox.plan(session, items, now=now)


async def _replan(session: AsyncSession, task: Task, *, now: datetime, assigned: bool) -> None:
    """Owner or due date changed: what was pending for the old one is cancelled. A task of a
    record not finished yet has nothing planned: its owner hears of it when it is finished."""
    await outbox.cancel(session, subject=_subject(task.id), kinds=[NUDGE, ALERT, ASSIGNED], now=now)
    task.version += 1
    if task.issued_at is None:
        return
    conference = await session.get_one(Conference, task.conference_id)
    district = await session.get_one(District, conference.district_id)
    await _plan_task(session, task, district, now=now, assigned=assigned)


async def _items(
    session: AsyncSession, cipher: Cipher, *where: ColumnElement[bool], now: datetime
) -> list[TaskItem]:
    """Tasks as people see them, soonest first; overdue by the task's district's calendar."""
    rows = await session.execute(
        select(Task, Case.code, Member.display_name, District.timezone)
        .join(Case, Task.case_id == Case.id)
        .join(District, Case.district_id == District.id)
        .join(Member, Task.owner_id == Member.id)
        .where(*where)
        .order_by(Task.due_on, Task.id)
    )
    return [
        TaskItem(
            task.id,
            task.conference_id,
            task.owner_id,
            code,
            cipher.decrypt(task.title).decode(),
            owner,
            task.party,
            task.due_on,
            task.status,
            task.status is TaskStatus.OPEN and task.due_on < now.astimezone(ZoneInfo(zone)).date(),
            task.asked_due_on,
        )
        for task, code, owner, zone in rows
    ]


async def my_tasks(
    session: AsyncSession, actor: Actor, cipher: Cipher, *, now: datetime
) -> list[TaskItem]:
    """The owner's open tasks, soonest first."""
    return await _items(
        session,
        cipher,
        Task.owner_id == actor.member_id,
        Task.status == TaskStatus.OPEN,
        Task.issued_at.is_not(None),
        now=now,
    )


async def task_item(
    session: AsyncSession, cipher: Cipher, task_id: int, *, now: datetime
) -> TaskItem | None:
    items = await _items(session, cipher, Task.id == task_id, now=now)
    return items[0] if items else None


async def own_task(
    session: AsyncSession, actor: Actor, cipher: Cipher, task_id: int, *, now: datetime
) -> TaskItem:
    """An open task of the actor's, to show them; anyone else's is refused (and audited)."""
    task = await _task(session, actor, task_id, "task.view", now=now, owner=True)
    item = await task_item(session, cipher, task.id, now=now)
    assert item is not None
    return item


async def _task(
    session: AsyncSession,
    actor: Actor,
    task_id: int,
    action: str,
    *,
    now: datetime,
    owner: bool,
    open_only: bool = True,
) -> Task:
    """A task the actor may act on: its owner (owner=True), or the coordinator of its district;
    still open unless `open_only` is false."""
    task = await session.get(Task, task_id)
    allowed = False
    if task is not None:
        case = await session.get_one(Case, task.case_id)
        if owner:
            allowed = task.owner_id == actor.member_id
        else:
            allowed = actor.role is Role.COORDINATOR and case.district_id == actor.district_id
    if task is None or not allowed:
        raise _refused(actor, action, task_id, now=now, subject_type="task")
    await session.refresh(task, with_for_update=True)
    if open_only and task.status is not TaskStatus.OPEN:
        raise TaskError(task.status.value)
    return task


async def _note(
    session: AsyncSession,
    cipher: Cipher,
    task: Task,
    actor: Actor,
    *,
    kind: str,
    text: str,
    now: datetime,
) -> None:
    session.add(
        TaskNote(
            task_id=task.id,
            member_id=actor.member_id,
            kind=kind,
            body=cipher.encrypt(_clean(text, NOTE_MAX, one_line=False).encode()),
            created_at=now,
        )
    )


async def _to_coordinator(
    session: AsyncSession, task: Task, kind: str, key: str, *, now: datetime
) -> None:
    coordinator = await _coordinator(session, task)
    await outbox.plan(session, [_planned(task, key, kind, coordinator, _at_once(now))], now=now)


async def complete(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    task_id: int,
    note: str | None,
    *,
    now: datetime,
) -> int:
    task = await _task(session, actor, task_id, "task.done", now=now, owner=True)
    if note:
        await _note(session, cipher, task, actor, kind="done", text=note, now=now)
    task.status = TaskStatus.DONE
    task.done_at = now
    task.asked_due_on = None
    await outbox.cancel(session, subject=_subject(task.id), now=now)
    await _to_coordinator(session, task, DONE, "done", now=now)
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="task.done",
        subject_type="task",
        subject_id=task.id,
    )
    return task.id


async def add_note(
    session: AsyncSession, actor: Actor, cipher: Cipher, task_id: int, text: str, *, now: datetime
) -> int:
    task = await _task(session, actor, task_id, "task.note", now=now, owner=True)
    await _note(session, cipher, task, actor, kind="note", text=text, now=now)
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="task.note",
        subject_type="task",
        subject_id=task.id,
    )
    return task.id


async def ask_more_time(
    session: AsyncSession, actor: Actor, task_id: int, more: timedelta, *, now: datetime
) -> date:
    """The owner asks to move the due date by `more`; the coordinator decides. Returns the date
    asked for."""
    task = await _task(session, actor, task_id, "task.more_time", now=now, owner=True)
    if more <= timedelta(0):
        raise ValueError("not later")
    conference = await session.get_one(Conference, task.conference_id)
    district = await session.get_one(District, conference.district_id)
    new_due = policy.working_due(task.due_on + more, district_calendar(district))
    task.asked_due_on = new_due
    await _to_coordinator(session, task, MORE_TIME, f"ask-{new_due.isoformat()}", now=now)
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="task.more_time_asked",
        subject_type="task",
        subject_id=task.id,
        due=new_due.isoformat(),
    )
    return new_due


async def decide_more_time(
    session: AsyncSession, actor: Actor, task_id: int, asked: date, approve: bool, *, now: datetime
) -> Recipient:
    """The coordinator's one tap; the owner is told. Returns the owner."""
    task = await _task(session, actor, task_id, "task.decide", now=now, owner=False)
    if task.asked_due_on != asked:
        raise TaskError("decided")
    owner = await session.get_one(Member, task.owner_id)
    task.asked_due_on = None
    if approve:
        task.due_on = asked
        await _replan(session, task, now=now, assigned=False)
    told = _planned(
        task, f"decided-{asked.isoformat()}", DECIDED, owner, _at_once(now), approved=approve
    )
    await outbox.plan(session, [told], now=now)
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="task.more_time_given" if approve else "task.more_time_refused",
        subject_type="task",
        subject_id=task.id,
        due=asked.isoformat(),
    )
    return await recipient_of(session, owner.id)


async def remind_again(session: AsyncSession, actor: Actor, task_id: int, *, now: datetime) -> int:
    task = await _task(session, actor, task_id, "task.remind", now=now, owner=False)
    owner = await session.get_one(Member, task.owner_id)
    again = _planned(
        task, f"again-{int(now.timestamp())}", NUDGE, owner, _at_once(now, days=7), again=True
    )
    await outbox.plan(session, [again], now=now)
    return task.id


async def reassign_choices(
    session: AsyncSession, actor: Actor, task_id: int, *, now: datetime
) -> list[OwnerChoice]:
    task = await _task(session, actor, task_id, "task.reassign", now=now, owner=False)
    return [
        c
        for c in await owner_choices(session, actor, task.conference_id, now=now)
        if c.member_id != task.owner_id
    ]


async def reassign(
    session: AsyncSession, actor: Actor, task_id: int, owner_id: int, *, now: datetime
) -> int:
    task = await _task(session, actor, task_id, "task.reassign", now=now, owner=False)
    choices = await owner_choices(session, actor, task.conference_id, now=now)
    if owner_id not in {c.member_id for c in choices}:
        raise _refused(actor, "task.reassign", owner_id, now=now, subject_type="member")
    previous = task.owner_id
    if owner_id == previous:
        return task.id
    task.owner_id = owner_id
    task.asked_due_on = None
    await _replan(session, task, now=now, assigned=True)
    before = await session.get_one(Member, previous)
    if task.issued_at is not None and before.active:  # a leaver is told nothing more
        await outbox.plan(
            session,
            [_planned(task, f"released-{previous}", RELEASED, before, _at_once(now))],
            now=now,
        )
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="task.reassigned",
        subject_type="task",
        subject_id=task.id,
        owner=owner_id,
        previous=previous,
    )
    return task.id


async def coordinator_task(
    session: AsyncSession, actor: Actor, cipher: Cipher, task_id: int, *, now: datetime
) -> tuple[TaskItem, int]:
    """An open task of the coordinator's district to edit, and how many notes its owner wrote;
    anyone else is refused (audited)."""
    task = await _task(session, actor, task_id, "task.edit", now=now, owner=False)
    item = await task_item(session, cipher, task.id, now=now)
    assert item is not None
    return item, await note_count(session, task.id)


async def note_count(session: AsyncSession, task_id: int) -> int:
    count = await session.scalar(
        select(func.count()).select_from(TaskNote).where(TaskNote.task_id == task_id)
    )
    return int(count or 0)


async def read_notes(
    session: AsyncSession, actor: Actor, cipher: Cipher, task_id: int, *, now: datetime
) -> tuple[TaskItem, list[NoteLine]]:
    """The owner's notes on a task, oldest first, for the coordinator; they may hold personal
    data, so reading them is audited (and the handler sends them protected)."""
    task = await _task(session, actor, task_id, "task.notes", now=now, owner=False, open_only=False)
    rows = await session.execute(
        select(TaskNote, Member.display_name)
        .join(Member, TaskNote.member_id == Member.id)
        .where(TaskNote.task_id == task.id)
        .order_by(TaskNote.created_at, TaskNote.id)
    )
    notes = [
        NoteLine(name, note.created_at, note.kind, cipher.decrypt(note.body).decode())
        for note, name in rows
    ]
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="task.notes_read",
        subject_type="task",
        subject_id=task.id,
        notes=len(notes),
    )
    item = await task_item(session, cipher, task.id, now=now)
    assert item is not None
    return item, notes


async def movable_task(session: AsyncSession, actor: Actor, task_id: int, *, now: datetime) -> int:
    """An open task the coordinator may move (before asking for the date); audited refusal."""
    return (await _task(session, actor, task_id, "task.move", now=now, owner=False)).id


async def cancellable_task(
    session: AsyncSession, actor: Actor, task_id: int, *, now: datetime
) -> int:
    """An open task the coordinator may cancel (before asking to confirm); audited refusal."""
    return (await _task(session, actor, task_id, "task.cancel", now=now, owner=False)).id


async def quick_due(session: AsyncSession, conference_id: int, days: int, *, now: datetime) -> date:
    """A quick pick ("in 1 week") as a due date: from the district's today, on a working day."""
    conference = await session.get_one(Conference, conference_id)
    district = await session.get_one(District, conference.district_id)
    return policy.working_due(
        _today(district, now) + timedelta(days=days), district_calendar(district)
    )


async def move_due(
    session: AsyncSession, actor: Actor, task_id: int, due_on: date, *, now: datetime
) -> int:
    """The coordinator moves the due date; the owner is told and nudged for the new one.
    Returns the task's conference."""
    task = await _task(session, actor, task_id, "task.move", now=now, owner=False)
    conference = await session.get_one(Conference, task.conference_id)
    district = await session.get_one(District, conference.district_id)
    check_due(due_on, _today(district, now))
    if due_on == task.due_on:
        return task.conference_id
    previous = task.due_on
    task.due_on = due_on
    task.asked_due_on = None
    await _replan(session, task, now=now, assigned=False)
    if task.issued_at is not None:
        owner = await session.get_one(Member, task.owner_id)
        await outbox.plan(
            session, [_planned(task, "moved", CHANGED, owner, _at_once(now))], now=now
        )
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="task.moved",
        subject_type="task",
        subject_id=task.id,
        due=due_on.isoformat(),
        previous=previous.isoformat(),
    )
    return task.conference_id


async def move_due_in(
    session: AsyncSession, actor: Actor, task_id: int, days: int, *, now: datetime
) -> int:
    """A quick pick on the edit screen: due in `days` from today, on a working day."""
    task = await _task(session, actor, task_id, "task.move", now=now, owner=False)
    due_on = await quick_due(session, task.conference_id, days, now=now)
    return await move_due(session, actor, task_id, due_on, now=now)


async def cancel_task(session: AsyncSession, actor: Actor, task_id: int, *, now: datetime) -> int:
    """The coordinator cancels a task of the plan; its owner is told. Returns its conference."""
    task = await _task(session, actor, task_id, "task.cancel", now=now, owner=False)
    await _cancel(session, task, now=now)
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="task.cancelled",
        subject_type="task",
        subject_id=task.id,
    )
    return task.conference_id


async def _cancel(session: AsyncSession, task: Task, *, now: datetime) -> None:
    """Nothing more is sent about the task; an owner who has it is told it is not needed."""
    task.status = TaskStatus.CANCELLED
    task.done_at = now
    task.asked_due_on = None
    await outbox.cancel(session, subject=_subject(task.id), now=now)
    if task.issued_at is not None:
        owner = await session.get_one(Member, task.owner_id)
        await outbox.plan(
            session, [_planned(task, "cancelled", CANCELLED, owner, _at_once(now))], now=now
        )


async def notification_task(
    session: AsyncSession, task_id: int, version: int | None
) -> Task | None:
    """The task a notification is about, if it still applies (open, same version)."""
    task = await session.get(Task, task_id)
    if task is None or task.status is not TaskStatus.OPEN:
        return None
    if version is not None and task.version != version:
        return None
    return task


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


# The coordinator's overview.


async def case_steps(
    session: AsyncSession, case_ids: Sequence[int], *, now: datetime
) -> dict[int, CaseStep]:
    if not case_ids:
        return {}
    conferences = list(
        await session.scalars(
            select(Conference)
            .where(
                Conference.case_id.in_(case_ids), Conference.status != ConferenceStatus.CANCELLED
            )
            .order_by(Conference.created_at, Conference.id)
        )
    )
    tasks = list(
        await session.execute(
            select(Task.case_id, Task.due_on, District.timezone)
            .join(Case, Task.case_id == Case.id)
            .join(District, Case.district_id == District.id)
            .where(Task.case_id.in_(case_ids), Task.status == TaskStatus.OPEN)
        )
    )
    steps: dict[int, CaseStep] = {}
    for case_id in case_ids:
        mine = [c for c in conferences if c.case_id == case_id]
        active = [c for c in mine if c.status in ACTIVE]
        held = [c for c in mine if c.status is ConferenceStatus.HELD]
        due_scheduled = [
            c
            for c in active
            if c.status is ConferenceStatus.SCHEDULED and c.starts_at and c.starts_at <= now
        ]
        latest = due_scheduled or active or held
        current = latest[-1] if latest else None
        to_record = bool(due_scheduled) or any(c.recorded_at is None for c in held)
        open_due = [(due, zone) for cid, due, zone in tasks if cid == case_id]
        overdue = sum(1 for due, zone in open_due if due < now.astimezone(ZoneInfo(zone)).date())
        steps[case_id] = CaseStep(
            current,
            to_record,
            len(open_due),
            overdue,
            held[-1].review_by if held and not active else None,
            next((c.id for c in reversed(held) if c.recorded_at is not None), None),
        )
    return steps


async def closable_case(session: AsyncSession, actor: Actor, case_id: int, *, now: datetime) -> str:
    """The code of an open case of the actor's district (before asking for the outcome);
    anyone else is refused, audited."""
    return (await _closable(session, actor, case_id, now=now)).code


async def _closable(session: AsyncSession, actor: Actor, case_id: int, *, now: datetime) -> Case:
    case = await session.get(Case, case_id)
    if case is None or actor.role is not Role.COORDINATOR or case.district_id != actor.district_id:
        raise _refused(actor, "case.close", case_id, now=now, subject_type="case")
    await session.refresh(case, with_for_update=True)
    if case.status is not CaseStatus.OPEN:
        raise TaskError("closed")
    return case


async def close_case(
    session: AsyncSession, actor: Actor, case_id: int, outcome: Outcome, *, now: datetime
) -> str:
    """Closed with an outcome: open tasks cancelled, every pending notification of the case
    cancelled, an active conference cancelled (participants get the calendar CANCEL)."""
    case = await _closable(session, actor, case_id, now=now)
    for conference_id in list(
        await session.scalars(
            select(Conference.id).where(
                Conference.case_id == case.id, Conference.status.in_(ACTIVE)
            )
        )
    ):
        await cancel_conference(session, actor, conference_id, now=now)
    for task in list(
        await session.scalars(
            select(Task).where(Task.case_id == case.id, Task.status == TaskStatus.OPEN)
        )
    ):
        await _cancel(session, task, now=now)
    case.status = CaseStatus.CLOSED
    case.closed_at = now
    case.outcome = outcome.value
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="case.closed",
        subject_type="case",
        subject_id=case.id,
        case=case.code,
        outcome=outcome.value,
    )
    return case.code


async def agenda(
    session: AsyncSession, actor: Actor, *, now: datetime, weeks: int = 4
) -> list[AgendaItem]:
    """The coordinator's conferences from today for the next weeks."""
    if actor.role is not Role.COORDINATOR:
        raise audit.refusal(
            "agenda",
            at=now,
            actor_id=actor.member_id,
            subject_type="member",
            subject_id=actor.member_id,
        )
    district = await session.get_one(District, actor.district_id)
    start = datetime.combine(_today(district, now), datetime.min.time(), tzinfo=_zone(district))
    rows = await session.execute(
        select(Conference, Case.code)
        .join(Case, Conference.case_id == Case.id)
        .where(
            Conference.coordinator_id == actor.member_id,
            Conference.status.in_([ConferenceStatus.SCHEDULED, ConferenceStatus.HELD]),
            Conference.starts_at >= start.astimezone(UTC),
            Conference.starts_at < (start + timedelta(weeks=weeks)).astimezone(UTC),
        )
        .order_by(Conference.starts_at)
    )
    return [
        AgendaItem(code, c.starts_at, c.place)  # type: ignore[arg-type]
        for c, code in rows
    ]


async def digest(
    session: AsyncSession, cipher: Cipher, member_id: int, *, now: datetime
) -> Digest | None:
    """The Monday digest of one coordinator: what waits in their district this week."""
    member = await session.get(Member, member_id)
    if member is None or not member.active or member.role is not Role.COORDINATOR:
        return None
    institution = await session.get_one(Institution, member.institution_id)
    district = await session.get_one(District, institution.district_id)
    zone = _zone(district)
    today = _today(district, now)
    monday = today - timedelta(days=today.weekday())
    week = datetime.combine(monday, datetime.min.time(), tzinfo=zone)
    bounds = [(week + timedelta(weeks=n)).astimezone(UTC) for n in range(3)]
    referrals = [
        DigestItem(r.id, r.code or "", r.submitted_at)
        for r in await session.scalars(
            select(Referral)
            .where(
                Referral.district_id == district.id,
                Referral.status.in_([ReferralStatus.SUBMITTED, ReferralStatus.NEEDS_INFO]),
            )
            .order_by(Referral.submitted_at)
        )
    ]
    conferences = list(
        await session.execute(
            select(Conference, Case.code)
            .join(Case, Conference.case_id == Case.id)
            .where(
                Conference.district_id == district.id,
                Conference.status.in_([*ACTIVE, ConferenceStatus.HELD]),
            )
            .order_by(Conference.starts_at, Conference.deadline)
        )
    )
    polls = [
        DigestItem(c.id, code, c.deadline)
        for c, code in conferences
        if c.status is ConferenceStatus.POLLING
    ]
    this_week = [
        DigestItem(c.id, code, c.starts_at)
        for c, code in conferences
        if c.status is ConferenceStatus.SCHEDULED
        and c.starts_at
        and bounds[0] <= c.starts_at < bounds[1]
    ]
    next_week = [
        DigestItem(c.id, code, c.starts_at)
        for c, code in conferences
        if c.status is ConferenceStatus.SCHEDULED
        and c.starts_at
        and bounds[1] <= c.starts_at < bounds[2]
    ]
    to_record = [
        DigestItem(c.id, code, c.starts_at)
        for c, code in conferences
        if c.recorded_at is None
        and c.starts_at is not None
        and c.starts_at < now
        and c.status in (ConferenceStatus.SCHEDULED, ConferenceStatus.HELD)
    ]
    tasks = await _items(
        session,
        cipher,
        Task.status == TaskStatus.OPEN,
        Task.issued_at.is_not(None),
        Case.district_id == district.id,
        now=now,
    )
    sunday = monday + timedelta(days=6)
    return Digest(
        referrals,
        polls,
        this_week,
        next_week,
        [DigestItem(t.id, t.case_code, None, t.title) for t in tasks if t.overdue],
        [
            DigestItem(t.id, t.case_code, None, t.title)
            for t in tasks
            if not t.overdue and t.due_on <= sunday
        ],
        to_record,
    )


async def plan_digests(session: AsyncSession, *, now: datetime) -> None:
    """Each active coordinator's next Monday digest, planned ahead (once per week by its key)."""
    rows = await session.execute(
        select(Member, District)
        .join(Institution, Member.institution_id == Institution.id)
        .join(District, Institution.district_id == District.id)
        .where(Member.role == Role.COORDINATOR, Member.active.is_(True))
    )
    items = []
    for member, district in rows:
        moment = policy.weekly_digest(now, _zone(district))
        items.append(
            outbox.Planned(
                key=f"digest:m{member.id}:{moment.name}",
                kind=DIGEST,
                subject=f"member:{member.id}",
                member_id=member.id,
                chat_id=member.chat_id,
                due_at=moment.due,
                expires_at=moment.expires,
                payload={"week": moment.name},
            )
        )
    await outbox.plan(session, items, now=now)
