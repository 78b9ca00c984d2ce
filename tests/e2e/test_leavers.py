"""Leaving ends access: a deactivated participant gets no more reminders of their tasks or
their conference, not even from a row that reaches the outbox anyway; the coordinator learns
what they held (case code and task title) and hands each task on with one tap; and a leaver who
joins again elsewhere gets none of their old tasks, which stay with the old institution."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.models import InstitutionKind, Member, OutboxRow, OutboxStatus, Role, Task, TaskStatus
from bot.sandbox import Person
from bot.services import members, tasks
from tests.e2e.conftest import RunningBot, confirm_confidentiality
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import until
from tests.e2e.test_invitations import each, scheduled, team
from tests.e2e.test_tasks import add_task, at_nine, record_opened, summary_written, told


async def _rows(bot: RunningBot, member_id: int) -> dict[OutboxStatus, int]:
    async with bot.runtime.database.transaction() as session:
        rows = await session.execute(
            select(OutboxRow.status, func.count())
            .where(OutboxRow.member_id == member_id)
            .group_by(OutboxRow.status)
        )
        return {status: count for status, count in rows}


async def _member_id(bot: RunningBot, telegram_user_id: int) -> int:
    async with bot.runtime.database.transaction() as session:
        found = await session.scalar(
            select(Member.id)
            .where(Member.telegram_user_id == telegram_user_id)
            .order_by(Member.id.desc())
        )
    assert found is not None
    return found


async def team_and_admin(bot: RunningBot) -> tuple[dict[str, Person], Person]:
    """The team joins (test_invitations.team), then Alena: the administrator at the town hall,
    who takes leavers out (`_deactivate`)."""
    people = await team(bot)
    return people, await bot.join(9, "Alena", Role.ADMIN, institution="Městský úřad Cheb")


async def _deactivate(admin: Person, name: str) -> None:
    await admin.send_text("/members")
    await until(admin, "Members (")
    await admin.press(f"Deactivate {name}")
    await until(admin, f"Deactivate {name}?")
    await admin.press("Yes, deactivate")
    await until(admin, f"{name} has been deactivated.")


async def test_a_leaver_with_tasks_gets_nothing_more_and_the_coordinator_hands_them_on(
    bot: RunningBot, clock: FakeClock
) -> None:
    people, admin = await team_and_admin(bot)
    hana, petr, pavel = people["hana"], people["petr"], people["pavel"]
    await record_opened(bot, clock, people)
    await summary_written(hana, "The plan was agreed.")
    await add_task(hana, "Check attendance weekly", "Petr (Policie Cheb)", "1 week")
    await add_task(hana, "Call the class teacher", "Petr (Policie Cheb)", "2 weeks")
    recorded_on = clock.now().date()
    await hana.press("✅ Finish: send the tasks to their owners")
    await until(hana, "The record of PK-2026-0001")
    await each(petr, "«Check attendance weekly»", "«Call the class teacher»")
    leaver = await _member_id(bot, petr.user_id)
    assert (await _rows(bot, leaver)).get(OutboxStatus.PENDING, 0) > 0  # nudges planned

    # The admin takes Petr out: every pending row for him is cancelled at once.
    await _deactivate(admin, "Petr")
    rows = await _rows(bot, leaver)
    assert rows.get(OutboxStatus.PENDING, 0) == 0 and rows.get(OutboxStatus.CANCELLED, 0) > 0
    sent = rows.get(OutboxStatus.SENT, 0)

    # Hana learns what he held, by case code and task title, with a button per task.
    first, second = await each(
        hana, "PK-2026-0001 «Check attendance weekly»", "PK-2026-0001 «Call the class teacher»"
    )
    for notice, title in ((first, "Check attendance weekly"), (second, "Call the class teacher")):
        assert (notice.text or "").startswith("👤 Petr has been deactivated")
        assert [label for row in notice.buttons() for label, _ in row] == [
            f"👤 PK-2026-0001 · {title}"
        ]
    await hana.press("👤 PK-2026-0001 · Check attendance weekly", message_id=first.message_id)
    await until(hana, "Who takes the task over?")
    await hana.press("Pavel (Policie Cheb)")
    await until(hana, "The task has a new owner, who is told now.")
    assert "«Check attendance weekly»" in ((await until(pavel, "A task for you")).text or "")

    # A row for Petr planned anyway (racing with the deactivation) reaches the dispatcher:
    # it is not sent.
    async with bot.runtime.database.transaction() as session:
        task_id = await session.scalar(
            select(Task.id).where(Task.owner_id == leaver, Task.status == TaskStatus.OPEN)
        )
        assert task_id is not None
        await outbox.plan(
            session,
            [
                outbox.Planned(
                    key="late-for-a-leaver",
                    kind=tasks.NUDGE,
                    subject=f"task:{task_id}",
                    member_id=leaver,
                    due_at=clock.now(),
                    payload={"task": task_id},
                )
            ],
            now=clock.now(),
        )
    before = len(petr.messages)
    await bot.sweep()
    async with bot.runtime.database.transaction() as session:
        late = await session.scalar(select(OutboxRow).where(OutboxRow.key == "late-for-a-leaver"))
    assert late is not None and (late.status, late.outcome) == (OutboxStatus.SKIPPED, "left")

    # Weeks go by: nudges go to Pavel; Petr hears nothing more.
    week = recorded_on + timedelta(days=7)
    for offset in (-3, 0, 1, 8, 15):
        clock.set(at_nine(week + timedelta(days=offset)))
        await bot.sweep()
    assert told(pavel, "Reminder of your task") >= 3
    assert len(petr.messages) == before
    assert (await _rows(bot, leaver)).get(OutboxStatus.SENT, 0) == sent

    # Petr joins again, with a fresh code, as a school's referrer: a new membership, with none
    # of the police's tasks; a forged button for an old one is refused.
    code = await bot.invite_code(Role.REFERRER, "ZŠ Hradební", InstitutionKind.SCHOOL)
    await petr.send_text(f"/start {code}")
    await until(petr, "Round Table")
    await petr.press("English")
    await petr.next_message()
    await confirm_confidentiality(petr)  # a new membership confirms anew
    rejoined = await _member_id(bot, petr.user_id)
    assert rejoined != leaver
    await petr.send_text("/tasks")
    await until(petr, "You have no open tasks.")
    forged = await petr.press_data(f"tk:v:{task_id}", message_id=petr.last_bot_message().message_id)
    assert forged.text == "This is not yours to change."

    # The old task is still the police's (Petr's old, inactive membership), for Hana to hand
    # on with the notice's other button.
    async with bot.runtime.database.transaction() as session:
        old = await session.get_one(Task, task_id)
        owner = await session.get_one(Member, old.owner_id)
        actor = await members.find_actor(session, petr.user_id)
    assert old.owner_id == leaver and not owner.active and old.status is TaskStatus.OPEN
    assert actor is not None and actor.member_id == rejoined and actor.role is Role.REFERRER
    await hana.press("👤 PK-2026-0001 · Call the class teacher", message_id=second.message_id)
    await until(hana, "Who takes the task over?")
    await hana.press("Pavel (Policie Cheb)")
    await until(hana, "The task has a new owner, who is told now.")
    await until(pavel, "«Call the class teacher»")


async def test_a_leaver_invited_to_a_conference_is_not_reminded_and_colleagues_are_asked(
    bot: RunningBot, clock: FakeClock
) -> None:
    people, admin = await team_and_admin(bot)
    hana, petr, pavel = people["hana"], people["petr"], people["pavel"]
    starts = await scheduled(bot, people)
    invites = await each(petr, "You are invited")
    await petr.press("✅ Accept", message_id=invites[0].message_id)
    await until(hana, "Petr")
    leaver = await _member_id(bot, petr.user_id)
    reminders = await _rows(bot, leaver)
    assert reminders.get(OutboxStatus.PENDING, 0) > 0  # 2 days and 2 hours before

    await _deactivate(admin, "Petr")
    assert (await _rows(bot, leaver)).get(OutboxStatus.PENDING, 0) == 0
    notice = await until(hana, "Petr has been deactivated")
    assert "PK-2026-0001, the case conference" in (notice.text or "")
    assert "Policie Cheb is still invited; its other members have been asked to answer" in (
        notice.text or ""
    )
    again = await until(pavel, "You are invited")
    assert "PK-2026-0001" in (again.text or again.caption or "")

    before = len(petr.messages)
    for moment in (starts - timedelta(days=2), starts - timedelta(hours=2), starts):
        clock.set(moment + timedelta(minutes=1))
        await bot.sweep()
    assert len(petr.messages) == before
    assert (await _rows(bot, leaver)).get(OutboxStatus.PENDING, 0) == 0
