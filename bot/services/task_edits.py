"""The coordinator's work on the plan's tasks once they are given out: deciding on more time,
reminding an owner again, giving a task to someone else, moving its due date, cancelling it,
and reading the notes its owner wrote."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.models import Member, Task, TaskNote
from bot.services import audit
from bot.services.board import Recipient, district_calendar, recipient_of, today_in
from bot.services.members import Actor
from bot.services.records import OwnerChoice, check_owner, owner_choices
from bot.services.tasks import (
    CHANGED,
    DECIDED,
    NUDGE,
    RELEASED,
    TaskError,
    TaskItem,
    allowed_task,
    at_once,
    cancel,
    check_due,
    district_of,
    planned,
    replan,
    task_item,
    tell_owner,
)
from scheduling import policy


@dataclass(frozen=True)
class NoteLine:
    author: str
    at: datetime
    kind: str  # note, done
    text: str


async def decide_more_time(
    session: AsyncSession, actor: Actor, task_id: int, asked: date, approve: bool, *, now: datetime
) -> Recipient:
    """The coordinator's one tap; the owner is told. Returns the owner."""
    task = await allowed_task(session, actor, task_id, "task.decide", now=now, owner=False)
    if task.asked_due_on != asked:
        raise TaskError("decided")
    owner = await session.get_one(Member, task.owner_id)
    task.asked_due_on = None
    if approve:
        task.due_on = asked
        await replan(session, task, now=now, assigned=False)
    told = planned(
        task, f"decided-{asked.isoformat()}", DECIDED, owner, at_once(now), approved=approve
    )
    await outbox.plan(session, [told], now=now)
    await audit.acted(
        session,
        actor,
        "task.more_time_given" if approve else "task.more_time_refused",
        task,
        at=now,
        due=asked.isoformat(),
    )
    return await recipient_of(session, owner.id)


async def remind_again(session: AsyncSession, actor: Actor, task_id: int, *, now: datetime) -> int:
    task = await allowed_task(session, actor, task_id, "task.remind", now=now, owner=False)
    owner = await session.get_one(Member, task.owner_id)
    again = planned(
        task, f"again-{int(now.timestamp())}", NUDGE, owner, at_once(now, days=7), again=True
    )
    await outbox.plan(session, [again], now=now)
    return task.id


async def reassign_choices(
    session: AsyncSession, actor: Actor, task_id: int, *, now: datetime
) -> list[OwnerChoice]:
    task = await allowed_task(session, actor, task_id, "task.reassign", now=now, owner=False)
    return [
        c
        for c in await owner_choices(session, actor, task.conference_id, now=now)
        if c.member_id != task.owner_id
    ]


async def reassign(
    session: AsyncSession, actor: Actor, task_id: int, owner_id: int, *, now: datetime
) -> int:
    task = await allowed_task(session, actor, task_id, "task.reassign", now=now, owner=False)
    await check_owner(session, actor, task.conference_id, owner_id, "task.reassign", now=now)
    previous = task.owner_id
    if owner_id == previous:
        return task.id
    task.owner_id = owner_id
    task.asked_due_on = None
    await replan(session, task, now=now, assigned=True)
    before = await session.get_one(Member, previous)
    if task.issued_at is not None and before.active:  # a leaver is told nothing more
        await outbox.plan(
            session,
            [planned(task, f"released-{previous}", RELEASED, before, at_once(now))],
            now=now,
        )
    await audit.acted(
        session, actor, "task.reassigned", task, at=now, owner=owner_id, previous=previous
    )
    return task.id


async def coordinator_task(
    session: AsyncSession, actor: Actor, cipher: Cipher, task_id: int, *, now: datetime
) -> tuple[TaskItem, int]:
    """An open task of the coordinator's district to edit, and how many notes its owner wrote;
    anyone else is refused (audited)."""
    task = await allowed_task(session, actor, task_id, "task.edit", now=now, owner=False)
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
    task = await allowed_task(
        session, actor, task_id, "task.notes", now=now, owner=False, open_only=False
    )
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
    await audit.acted(session, actor, "task.notes_read", task, at=now, notes=len(notes))
    item = await task_item(session, cipher, task.id, now=now)
    assert item is not None
    return item, notes


async def movable_task(session: AsyncSession, actor: Actor, task_id: int, *, now: datetime) -> int:
    """An open task the coordinator may move (before asking for the date); audited refusal."""
    return (await allowed_task(session, actor, task_id, "task.move", now=now, owner=False)).id


async def cancellable_task(
    session: AsyncSession, actor: Actor, task_id: int, *, now: datetime
) -> int:
    """An open task the coordinator may cancel (before asking to confirm); audited refusal."""
    return (await allowed_task(session, actor, task_id, "task.cancel", now=now, owner=False)).id


async def quick_due(session: AsyncSession, conference_id: int, days: int, *, now: datetime) -> date:
    """A quick pick ("in 1 week") as a due date: from the district's today, on a working day."""
    district = await district_of(session, conference_id)
    return policy.working_due(
        today_in(district, now) + timedelta(days=days), district_calendar(district)
    )


async def move_due(
    session: AsyncSession, actor: Actor, task_id: int, due_on: date, *, now: datetime
) -> int:
    """The coordinator moves the due date; the owner is told and nudged for the new one.
    Returns the task's conference."""
    task = await allowed_task(session, actor, task_id, "task.move", now=now, owner=False)
    return await _move(session, actor, task, due_on, now=now)


async def move_due_in(
    session: AsyncSession, actor: Actor, task_id: int, days: int, *, now: datetime
) -> int:
    """A quick pick on the edit screen: due in `days` from today, on a working day."""
    task = await allowed_task(session, actor, task_id, "task.move", now=now, owner=False)
    due_on = await quick_due(session, task.conference_id, days, now=now)
    return await _move(session, actor, task, due_on, now=now)


async def _move(
    session: AsyncSession, actor: Actor, task: Task, due_on: date, *, now: datetime
) -> int:
    """Move a task already checked and locked (one check and one lock per press)."""
    district = await district_of(session, task.conference_id)
    check_due(due_on, today_in(district, now))
    if due_on == task.due_on:
        return task.conference_id
    previous = task.due_on
    task.due_on = due_on
    task.asked_due_on = None
    await replan(session, task, now=now, assigned=False)
    await tell_owner(session, task, CHANGED, "moved", now=now)
    await audit.acted(
        session,
        actor,
        "task.moved",
        task,
        at=now,
        due=due_on.isoformat(),
        previous=previous.isoformat(),
    )
    return task.conference_id


async def cancel_task(session: AsyncSession, actor: Actor, task_id: int, *, now: datetime) -> int:
    """The coordinator cancels a task of the plan; its owner is told. Returns its conference."""
    task = await allowed_task(session, actor, task_id, "task.cancel", now=now, owner=False)
    await cancel(session, task, now=now)
    await audit.acted(session, actor, "task.cancelled", task, at=now)
    return task.conference_id
