"""A task of a conference's plan: how people see it (TaskItem), the bounds of its due date,
what its owner and the coordinator are told and when, and the owner's work on it (my tasks,
done, notes, asking for more time).

Everything a task owner is told goes through the outbox, planned in the transaction of the
change (`_plan_task`); a change of owner or due date raises the task's version, cancels what was
pending and plans afresh, so a moved task is never nudged at its old date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.models import (
    Case,
    Conference,
    District,
    Member,
    Task,
    TaskNote,
    TaskParty,
    TaskStatus,
)
from bot.services import audit
from bot.services.board import district_calendar, zone_of
from bot.services.errors import ServiceError
from bot.services.members import Actor
from scheduling import policy

NOTE_MAX = 500

# Notification kinds (rendered by handlers.task_notices).
ASSIGNED = "task.assigned"
NUDGE = "task.nudge"
ALERT = "task.alert"  # to the coordinator: 7 days overdue
MORE_TIME = "task.more_time"  # to the coordinator: an owner asks for more time
DECIDED = "task.decided"  # to the owner: more time given or refused
DONE = "task.done"  # to the coordinator: a task is done
CHANGED = "task.changed"  # to the owner: the coordinator moved the due date
CANCELLED = "task.cancelled"  # to the owner: the task was cancelled (or its case closed)
RELEASED = "task.released"  # to the previous owner: the task was given to someone else


class TaskError(ServiceError):
    """A task or record action that no longer applies (done, cancelled, moved on)."""


class DueOutOfRange(ServiceError):
    """A due date in the past or further ahead than a plan reaches (policy.latest_due): the
    person types another; nothing was changed."""

    def __init__(self, earliest: date, latest: date) -> None:
        super().__init__(f"due between {earliest} and {latest}")
        self.earliest = earliest
        self.latest = latest


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


# Helpers.


def overdue(due_on: date, timezone: str, now: datetime) -> bool:
    """Past its due day, as the day goes in the task's district (`timezone`)."""
    return due_on < now.astimezone(ZoneInfo(timezone)).date()


def check_due(due_on: date, today: date) -> None:
    """Refuses a due date outside today .. policy.latest_due: before anything is computed from
    it, so that a "31.12.9999" never reaches the nudges' date arithmetic."""
    latest = policy.latest_due(today)
    if not today <= due_on <= latest:
        raise DueOutOfRange(today, latest)


async def district_of(session: AsyncSession, conference_id: int) -> District:
    """The district of a task's conference: its dates follow that district's calendar."""
    conference = await session.get_one(Conference, conference_id)
    return await session.get_one(District, conference.district_id)


def _subject(task_id: int) -> str:
    return f"task:{task_id}"


def clean_text(text: str, limit: int, *, one_line: bool = True) -> str:
    value = " ".join(text.split()) if one_line else text.strip()
    if not value:
        raise ValueError("empty")
    if len(value) > limit:
        raise ValueError(f"{len(value)} > {limit}")
    return value


# Telling owners and nudging them.


async def issue(session: AsyncSession, task: Task, district: District, *, now: datetime) -> None:
    """Given out (the record is finished): its owner is told, and nudged as it comes due."""
    task.issued_at = now
    await _plan_task(session, task, district, now=now, assigned=True)


def planned(
    task: Task, key: str, kind: str, member: Member, moment: policy.Moment, **extra: object
) -> outbox.Planned:
    """One row about a task for one member; the key carries the task's current version."""
    return outbox.about(
        _subject(task.id),
        f"v{task.version}:{key}",
        kind,
        member.id,
        due_at=moment.due,
        expires_at=moment.expires,
        payload={"task": task.id, "version": task.version, **extra},
    )


def at_once(now: datetime, *, days: int = 30) -> policy.Moment:
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
        items.append(planned(task, "assigned", ASSIGNED, owner, at_once(now)))
    zone = zone_of(district)
    for moment in policy.task_nudges(task.due_on, zone, now):
        items.append(planned(task, moment.name, NUDGE, owner, moment))
    alert = policy.task_alert(task.due_on, zone)
    if alert.due > now:
        items.append(planned(task, "alert", ALERT, await _coordinator(session, task), alert))
    await outbox.plan(session, items, now=now)


async def replan(session: AsyncSession, task: Task, *, now: datetime, assigned: bool) -> None:
    """Owner or due date changed: what was pending for the old one is cancelled. A task of a
    record not finished yet has nothing planned: its owner hears of it when it is finished."""
    await outbox.cancel(session, subject=_subject(task.id), kinds=[NUDGE, ALERT, ASSIGNED], now=now)
    task.version += 1
    if task.issued_at is None:
        return
    district = await district_of(session, task.conference_id)
    await _plan_task(session, task, district, now=now, assigned=assigned)


async def cancel(session: AsyncSession, task: Task, *, now: datetime) -> None:
    """Nothing more is sent about the task; an owner who has it is told it is not needed."""
    task.status = TaskStatus.CANCELLED
    task.done_at = now
    task.asked_due_on = None
    await outbox.cancel(session, subject=_subject(task.id), now=now)
    await tell_owner(session, task, CANCELLED, "cancelled", now=now)


async def tell_owner(
    session: AsyncSession, task: Task, kind: str, key: str, *, now: datetime
) -> None:
    """The owner is told of a change at once, if the task was given out (if not, they hear of
    it as it is when the record is finished)."""
    if task.issued_at is not None:
        owner = await session.get_one(Member, task.owner_id)
        await outbox.plan(session, [planned(task, key, kind, owner, at_once(now))], now=now)


# Tasks as people see them, and what their owners do.


async def task_items(
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
            task.status is TaskStatus.OPEN and overdue(task.due_on, zone, now),
            task.asked_due_on,
        )
        for task, code, owner, zone in rows
    ]


async def my_tasks(
    session: AsyncSession, actor: Actor, cipher: Cipher, *, now: datetime
) -> list[TaskItem]:
    """The owner's open tasks, soonest first."""
    return await task_items(
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
    items = await task_items(session, cipher, Task.id == task_id, now=now)
    return items[0] if items else None


async def own_task(
    session: AsyncSession, actor: Actor, cipher: Cipher, task_id: int, *, now: datetime
) -> TaskItem:
    """An open task of the actor's, to show them; anyone else's is refused (and audited)."""
    task = await allowed_task(session, actor, task_id, "task.view", now=now, owner=True)
    item = await task_item(session, cipher, task.id, now=now)
    assert item is not None
    return item


async def allowed_task(
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
        allowed = task.owner_id == actor.member_id if owner else actor.coordinates(case.district_id)
    if task is None or not allowed:
        raise audit.refused(actor, action, "task", task_id, at=now)
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
            body=cipher.encrypt(clean_text(text, NOTE_MAX, one_line=False).encode()),
            created_at=now,
        )
    )


async def _to_coordinator(
    session: AsyncSession, task: Task, kind: str, key: str, *, now: datetime
) -> None:
    coordinator = await _coordinator(session, task)
    await outbox.plan(session, [planned(task, key, kind, coordinator, at_once(now))], now=now)


async def complete(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    task_id: int,
    note: str | None,
    *,
    now: datetime,
) -> int:
    task = await allowed_task(session, actor, task_id, "task.done", now=now, owner=True)
    if note:
        await _note(session, cipher, task, actor, kind="done", text=note, now=now)
    task.status = TaskStatus.DONE
    task.done_at = now
    task.asked_due_on = None
    await outbox.cancel(session, subject=_subject(task.id), now=now)
    await _to_coordinator(session, task, DONE, "done", now=now)
    await audit.acted(session, actor, "task.done", task, at=now)
    return task.id


async def add_note(
    session: AsyncSession, actor: Actor, cipher: Cipher, task_id: int, text: str, *, now: datetime
) -> int:
    task = await allowed_task(session, actor, task_id, "task.note", now=now, owner=True)
    await _note(session, cipher, task, actor, kind="note", text=text, now=now)
    await audit.acted(session, actor, "task.note", task, at=now)
    return task.id


async def ask_more_time(
    session: AsyncSession, actor: Actor, task_id: int, more: timedelta, *, now: datetime
) -> date:
    """The owner asks to move the due date by `more`; the coordinator decides. Returns the date
    asked for."""
    task = await allowed_task(session, actor, task_id, "task.more_time", now=now, owner=True)
    if more <= timedelta(0):
        raise ValueError("not later")
    district = await district_of(session, task.conference_id)
    new_due = policy.working_due(task.due_on + more, district_calendar(district))
    task.asked_due_on = new_due
    await _to_coordinator(session, task, MORE_TIME, f"ask-{new_due.isoformat()}", now=now)
    await audit.acted(session, actor, "task.more_time_asked", task, at=now, due=new_due.isoformat())
    return new_due


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
