"""After the table, end to end with the clock moved over weeks: the record (attendance corrected,
summary, three tasks for three owners, the document), owners who finish early, ask for more
time and let a task slip until the coordinator is alerted, the Monday digest, the review poll
started from the record, and closing the case, which stops every pending nudge."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import docx
from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.models import AuditEntry, Case, CaseStatus, OutboxRow, OutboxStatus, Task, TaskStatus
from bot.sandbox import Person
from bot.sandbox.models import BotMessage
from tests.e2e.conftest import RunningBot
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import until
from tests.e2e.test_invitations import each, scheduled, team

PRAGUE = ZoneInfo("Europe/Prague")


def at_nine(day: date) -> datetime:
    return datetime.combine(day, time(9, 0), tzinfo=PRAGUE).astimezone(UTC)


async def due_date_asked(hana: Person, title: str, owner: str) -> BotMessage:
    """The record's "Add a task" with its title and owner, up to the question "By when?"."""
    await hana.press("➕ Add a task")
    await until(hana, "What is the task?")
    await hana.send_text(title)
    await until(hana, "Who owns it?")
    await hana.press(owner)
    return await until(hana, "By when?")


async def add_task(hana: Person, title: str, owner: str, due: str) -> None:
    await due_date_asked(hana, title, owner)
    await hana.press(due)
    await until(hana, f"«{title}»")


async def summary_written(hana: Person, summary: str) -> None:
    """The record's summary typed, until the record says it is written."""
    await hana.press("✏️ Summary")
    await until(hana, "Type the summary")
    await hana.send_text(summary)
    await until(hana, "Summary: written.")


async def record_opened(bot: RunningBot, clock: FakeClock, people: dict[str, Person]) -> datetime:
    """Petr accepts the scheduled conference, it ends, and Hana opens its record (1 of 2
    came); the conference's start."""
    hana, petr = people["hana"], people["petr"]
    starts = await scheduled(bot, people)
    invites = await each(petr, "You are invited")
    await petr.press("✅ Accept", message_id=invites[0].message_id)
    await record_asked(bot, clock, hana, starts, "Attendance: 1 of 2 came.")
    return starts


async def record_asked(  # noqa: PLR0917 - the conference's and the screen's
    bot: RunningBot,
    clock: FakeClock,
    hana: Person,
    starts: datetime,
    shown: str = "Record of the case conference PK-2026-0001",
    ended: str = "has ended",
) -> BotMessage:
    """The conference that began at `starts` is over (the clock past its 90 minutes, the sweep
    run): Hana is told it `ended` and opens the record from the notice; returns the record's
    screen, which shows `shown`."""
    clock.set(starts + timedelta(minutes=91))
    await bot.sweep()
    await until(hana, ended)
    await hana.press("📝 Record the outcome")
    return await until(hana, shown)


async def button(person: Person, fragment: str) -> None:
    """Wait for the message (sent or edited) with a button holding `fragment`."""
    while True:
        message = await person.next_message()
        markup = message.reply_markup or {}
        labels = [b["text"] for row in markup.get("inline_keyboard", []) for b in row]
        if any(fragment in label for label in labels):
            return


async def press_shown(person: Person, label: str) -> None:
    """Wait for the message with the button `label`, then press it."""
    await button(person, label)
    await person.press(label)


async def from_the_record(hana: Person, label: str) -> None:
    """Hana opens the record of PK-2026-0001 from /cases and presses `label` on it."""
    await hana.send_text("/cases")
    await until(hana, "Open cases")
    await hana.press("📝 Record: PK-2026-0001")
    await press_shown(hana, label)


async def case_closed(
    hana: Person, closed: str = "The case PK-2026-0001 is closed: Handed to another authority."
) -> None:
    """Hana closes PK-2026-0001 from /cases, as handed to another authority, until she is told
    it is `closed`."""
    await hana.send_text("/cases")
    await until(hana, "Open cases")
    await hana.press("✖️ Close: PK-2026-0001")
    await until(hana, "Close the case?")
    await hana.press("Handed to another authority")
    await until(hana, closed)


def told(person: Person, fragment: str) -> int:
    return sum(fragment in (m.text or m.caption or "") for m in person.messages.values())


async def test_the_record_the_tasks_the_digest_the_review_and_closing(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot)
    hana, jana, petr, pavel = people["hana"], people["jana"], people["petr"], people["pavel"]
    starts = await scheduled(bot, people)
    invites = await each(petr, "You are invited")
    await petr.press("✅ Accept", message_id=invites[0].message_id)

    # The conference has taken place: the coordinator is asked for the record.
    screen = await record_asked(
        bot, clock, hana, starts, ended="The case conference PK-2026-0001 has ended"
    )
    assert "Attendance: 1 of 2 came." in (screen.text or "")  # Petr accepted, Jana did not

    # Attendance, one tap per participant: Pavel came instead of Petr; Jana came after all.
    await hana.press("👥 Attendance")
    await until(hana, "one tap per participant")
    await hana.press("✅ Policie Cheb: Petr")
    await button(hana, "Pavel instead of Petr")
    await hana.press("❌ ZŠ Hradební")
    await button(hana, "✅ ZŠ Hradební: Jana")
    await hana.press("⬅️ Back")
    await until(hana, "Attendance: 2 of 2 came.")

    # The summary is stored encrypted and does not stay in the chat.
    await summary_written(hana, "The boy misses school on Mondays; the family agreed to support.")

    # Three tasks for three owners.
    await add_task(hana, "Check attendance weekly", "Petr (Policie Cheb)", "1 week")
    await add_task(hana, "Arrange tutoring", "Jana (ZŠ Hradební)", "2 weeks")
    await add_task(hana, "Visit the family", "Pavel (Policie Cheb)", "1 week")
    recorded_on = clock.now().astimezone(PRAGUE).date()
    week, two_weeks = recorded_on + timedelta(days=7), recorded_on + timedelta(days=14)

    # Finishing tells every owner and gives the coordinator the record document.
    await hana.press("✅ Finish: send the tasks to their owners")
    document = await until(hana, "The record of PK-2026-0001")
    assert document.protect_content
    name, content, _mime = hana.document_of(document)
    assert name.startswith("PK-2026-0001") and name.endswith(".docx")
    record = docx.Document(io.BytesIO(content))
    cells = [c.text for t in record.tables for row in t.rows for c in row.cells]
    text = "\n".join([p.text for p in record.paragraphs] + cells)
    for expected in (
        "Pavel\nstands in for: Petr",
        "Jana",
        "Check attendance weekly",
        "Visit the family",
    ):
        assert expected in text
    assert "The boy misses school on Mondays" in text
    assert "Signature" in cells
    assert "At the latest by" in text and "A poll for the date is running" not in text
    assert "Child" not in text  # the child's name (open_case's referral) only when asked for
    # Asked for explicitly, the name is in the document, and that is audited.
    await hana.press("📄 The record with the child's name")
    named = await until(hana, "The record of PK-2026-0001")
    assert named.protect_content and named.message_id != document.message_id
    named_record = docx.Document(io.BytesIO(hana.document_of(named)[1]))
    assert "Child: Child" in [p.text for p in named_record.paragraphs]
    async with bot.runtime.database.transaction() as session:
        asked = list(
            await session.scalars(
                select(AuditEntry.details)
                .where(AuditEntry.action == "record.document")
                .order_by(AuditEntry.id)
            )
        )
    assert [entry["child_name"] for entry in asked] == [False, True]
    for person, title in (
        (petr, "Check attendance weekly"),
        (jana, "Arrange tutoring"),
        (pavel, "Visit the family"),
    ):
        assigned = await until(person, "A task for you")
        assert f"«{title}»" in (assigned.text or "")

    # Petr finishes early, with a note; the coordinator is told.
    await petr.press("✅ Done")
    await until(petr, "Type a short note")
    await petr.send_text("Talked to the class teacher.")
    await until(petr, "Marked as done")
    kept = [m for m in petr.messages.values() if m.text == "Talked to the class teacher."]
    assert kept and all(m.deleted for m in kept)  # a note may hold personal data
    done = await until(hana, "Petr has done PK-2026-0001 «Check attendance weekly»")
    # The note is read on request only: protected, and the reading is audited.
    assert "Talked to the class teacher" not in (done.text or "")
    await hana.press("🗒 Read the notes", message_id=done.message_id)
    notes = await until(hana, "Notes on PK-2026-0001 «Check attendance weekly»")
    assert notes.protect_content and "Petr, " in (notes.text or "")
    assert "Talked to the class teacher." in (notes.text or "")
    async with bot.runtime.database.transaction() as session:
        read = await session.scalar(
            select(AuditEntry.id).where(AuditEntry.action == "task.notes_read")
        )
    assert read is not None

    # Jana asks for more time and gets it.
    await jana.press("⏳ Need more time")
    await until(jana, "How much more time")
    await jana.press("+1 week")
    await until(jana, "Asked the coordinator")
    await until(hana, "Jana asks for more time")
    await hana.press("✅ Give it")
    await until(hana, "More time given to Jana")
    tr = bot.runtime.translator("en")
    await until(jana, f"is due {tr.day(two_weeks + timedelta(days=7))} now")

    # /tasks: Pavel's open task; Petr has none.
    await pavel.send_text("/tasks")
    listing = await until(pavel, "Your open tasks (1):")
    assert "«Visit the family»" in (listing.text or "")
    await petr.send_text("/tasks")
    await until(petr, "You have no open tasks.")

    # Pavel lets his task go: nudged 3 days before, on the day, a day after; Petr is not.
    for offset in (-3, 0, 1):
        clock.set(at_nine(week + timedelta(days=offset)))
        await bot.sweep()
        await until(pavel, "Reminder of your task")
    assert told(petr, "Reminder of your task") == 0

    # The Monday digest lists exactly what is overdue and due this week.
    monday = week + timedelta(days=(7 - week.weekday()) % 7 or 7)
    clock.set(datetime.combine(monday, time(8, 0), tzinfo=PRAGUE).astimezone(UTC))
    await bot.sweep()
    digest = await until(hana, "Your week")
    body = digest.text or ""
    assert "Tasks overdue (1):\n• PK-2026-0001 «Visit the family»" in body
    jana_due = two_weeks + timedelta(days=7)
    if jana_due <= monday + timedelta(days=6):
        assert "«Arrange tutoring»" in body.split("Tasks due this week")[1]
    else:
        assert "Arrange tutoring" not in body
    assert "Check attendance weekly" not in body

    # 7 days overdue: the coordinator is alerted with one-tap remind and reassign.
    clock.set(at_nine(week + timedelta(days=7)))
    await bot.sweep()
    alert = await until(hana, "A task is a week overdue")
    assert "«Visit the family»" in (alert.text or "")
    await hana.press("🔔 Remind again", message_id=alert.message_id)
    before = told(pavel, "Reminder of your task")
    await bot.settle()
    await until(pavel, "Reminder of your task")
    assert told(pavel, "Reminder of your task") == before + 1

    # The review poll starts from the record: the same institutions ticked.
    await hana.send_text("/cases")
    cases = await until(hana, "Open cases")
    assert "Tasks open: 2, overdue: 1." in (cases.text or "")
    assert "Review conference by" in (cases.text or "")
    await hana.press("📅 Plan: PK-2026-0001")
    plan = await until(hana, "Case conference for PK-2026-0001")
    labels = [b["text"] for row in plan.reply_markup["inline_keyboard"] for b in row]  # type: ignore[index]
    assert {label for label in labels if label.startswith("☑")} == {
        "☑ ZŠ Hradební",
        "☑ Policie Cheb",
    }
    # The window ends by the review date, three months after the conference, not in 3 weeks.
    review_by = bot.runtime.translator("en").day(date(2027, 2, 27))
    assert f"– {review_by}" in (plan.text or "") or "Feb" in (plan.text or "").split("Window:")[1]

    # Closing the case cancels everything pending for it; weeks later nobody is nudged.
    await hana.send_text("/cases")
    await until(hana, "Open cases")
    await hana.press("✖️ Close: PK-2026-0001")
    await until(hana, "Close the case?")
    await hana.press("Plan fulfilled")
    await until(hana, "The case PK-2026-0001 is closed: Plan fulfilled.")
    await each(pavel, "«Visit the family» is cancelled")  # owners hear they need not do it
    await each(jana, "«Arrange tutoring» is cancelled")
    await bot.settle()
    async with bot.runtime.database.transaction() as session:
        case = (await session.scalars(select(Case))).one()
        assert (case.status, case.outcome) == (CaseStatus.CLOSED, "fulfilled")
        statuses = {t.status for t in await session.scalars(select(Task))}
        assert statuses == {TaskStatus.DONE, TaskStatus.CANCELLED}
        pending = list(
            await session.scalars(
                select(OutboxRow.key).where(
                    OutboxRow.status == OutboxStatus.PENDING,
                    OutboxRow.subject.not_like("member:%"),
                )
            )
        )
    assert pending == []
    nudged = told(pavel, "Reminder of your task"), told(jana, "Reminder of your task")
    clock.advance(timedelta(weeks=3))
    await bot.sweep()
    assert (told(pavel, "Reminder of your task"), told(jana, "Reminder of your task")) == nudged


async def test_the_plan_changes_and_wrong_input_gets_an_answer(
    bot: RunningBot, clock: FakeClock
) -> None:
    """Attendance 'did not come', overlong and wrong typed input, the coordinator editing the
    plan (a new due date, a new owner, a cancelled task), more time refused, the review's date
    typed, and old buttons after the case is closed."""
    people = await team(bot)
    hana, jana, petr, pavel = people["hana"], people["jana"], people["petr"], people["pavel"]
    await record_opened(bot, clock, people)

    # The police came after all? No: two taps, a colleague instead, then did not come.
    await hana.press("👥 Attendance")
    await until(hana, "one tap per participant")
    await hana.press("✅ Policie Cheb: Petr")
    await button(hana, "Pavel instead of Petr")
    await hana.press("✅ Policie Cheb: Pavel instead of Petr")
    await button(hana, "❌ Policie Cheb")
    await hana.press("⬅️ Back")
    await until(hana, "Attendance: 0 of 2 came.")

    # Too long, then right: nothing typed is lost, the length is said.
    await hana.press("✏️ Summary")
    await until(hana, "Type the summary")
    await hana.send_text("x" * 2001)
    await until(hana, "That is 2001 characters; the summary takes 1 to 2000.")
    await hana.send_text("Nobody came; the plan was agreed by phone.")
    await until(hana, "Summary: written.")
    await hana.press("➕ Add a task")
    await until(hana, "What is the task?")
    await hana.send_text("y" * 121)
    await until(hana, "That is 121 characters; a title takes 1 to 120.")
    await hana.send_text("Join a football club")
    await until(hana, "Who owns it?")
    await hana.press("🧒 The child")
    await until(hana, "Who follows it up")
    await hana.press("Petr (Policie Cheb)")
    await until(hana, "By when?")
    await hana.press("📅 A date…")
    await until(hana, "Type the due date")
    for wrong in ("next Friday", "1.1.2020", "31.2.2027"):
        await hana.send_text(wrong)
        await until(hana, "That is not a date from today on.")
    await hana.send_text("15.1.2027")
    await until(hana, "«Join a football club»")
    await add_task(hana, "Visit the family", "Pavel (Policie Cheb)", "1 week")
    await add_task(hana, "Arrange tutoring", "Jana (ZŠ Hradební)", "2 weeks")
    await hana.press("✅ Finish: send the tasks to their owners")
    document = await until(hana, "The record of PK-2026-0001")
    record = docx.Document(io.BytesIO(hana.document_of(document)[1]))
    rows = [[c.text for c in row.cells] for t in record.tables for row in t.rows]
    assert ["Policie Cheb", "", "no", ""] in rows
    assert ["Join a football club", "the child, followed up by Petr", "Jan 15, 2027"] in rows
    club = await until(petr, "A task for you")
    assert "You follow it up: the child, followed up by Petr." in (club.text or "")
    visit = await until(pavel, "A task for you")
    tutoring = await until(jana, "A task for you")

    # A participant cannot open the coordinator's edit screen with a forged button.
    async with bot.runtime.database.transaction() as session:
        task_id = await session.scalar(select(Task.id).limit(1))
    forged = await jana.press_data(f"tk:e:{task_id}", message_id=tutoring.message_id)
    assert forged.text == "This is not yours to change."

    # The coordinator moves the visit to a typed date; Pavel is told and nudged for it.
    await from_the_record(hana, "✏️ Visit the family")
    await until(hana, "Owner: Pavel")
    await hana.press("📅 Another due date…")
    await until(hana, "Type the due date")
    await hana.send_text("20.1.2027")
    moved = await until(hana, "Owner: Pavel")
    assert "Due Wed, Jan 20, 2027" in (moved.text or "")
    told_moved = await until(pavel, "The coordinator moved the due date of your task")
    assert "Due Wed, Jan 20, 2027" in (told_moved.text or "")

    # Tutoring goes to Petr: he gets it, Jana is told she need not do it; her old button is dead.
    await hana.press("⬅️ Back to the record")
    await press_shown(hana, "✏️ Arrange tutoring")
    await until(hana, "Owner: Jana")
    await hana.press("👤 Another owner")
    await until(hana, "Who takes the task over?")
    await hana.press("Petr (Policie Cheb)")
    await until(hana, "The task has a new owner")
    given = await until(petr, "A task for you")
    assert "«Arrange tutoring»" in (given.text or "")
    await until(jana, "«Arrange tutoring» is Petr's task now")
    stale = await jana.press("✅ Done", message_id=tutoring.message_id)
    assert stale.text == "This is not yours to change."

    # The child's task is cancelled; Petr is told.
    await from_the_record(hana, "✏️ Join a football club")
    await until(hana, "Owner: the child")
    await hana.press("🗑 Cancel the task")
    await until(hana, "Cancel this task?")
    await hana.press("🗑 Yes, cancel the task")
    screen = await until(hana, "Plan: 2 tasks.")
    assert "Join a football club" not in (screen.text or "")
    await until(petr, "«Join a football club» is cancelled")

    # Pavel asks for more time and is refused: the due date stays.
    await pavel.press("⏳ Need more time", message_id=told_moved.message_id)
    await until(pavel, "How much more time")
    await pavel.press("+1 month")
    await until(hana, "Pavel asks for more time")
    await hana.press("❌ Refuse")
    await until(hana, "More time refused to Pavel")
    await until(pavel, "No more time: «Visit the family» stays due Wed, Jan 20, 2027.")

    # The review's date, typed: wrong, past, then right; everyone invited last time is invited.
    await from_the_record(hana, "🗓 Review: fix the date")
    await until(hana, "Type the date and time of the review conference")
    await hana.send_text("soon")
    await until(hana, "Please type a date and a time, like 15.3.2027 10:00.")
    today = clock.now().astimezone(PRAGUE)
    await hana.send_text(f"{today.day}.{today.month}.{today.year} 00:01")
    await until(hana, "That time has passed. Type a later one.")
    await hana.send_text("16.2.2027 10:00")
    await until(hana, "The review conference PK-2026-0001 is set")
    board = await until(hana, "no answer 2")  # the live attendance message, as after a poll
    assert any("New date" in label for row in board.buttons() for label, _d in row)
    await until(hana, "Review conference: Feb 16, 2027, 10:00")  # and the record below
    await until(petr, "You are invited")
    await until(jana, "You are invited")

    # Closed: the owners' buttons are dead, and the review is cancelled in their calendars.
    await case_closed(hana)
    await until(pavel, "«Visit the family» is cancelled")
    stale = await pavel.press("✅ Done", message_id=visit.message_id)
    assert stale.text == "This button is no longer active."
    cancel, _ = await each(petr, "removes it from your calendar", "«Arrange tutoring» is cancelled")
    assert b"METHOD:CANCEL" in petr.document_of(cancel)[1]
    async with bot.runtime.database.transaction() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    for action in ("task.moved", "task.reassigned", "task.cancelled", "task.more_time_refused"):
        assert action in actions
    assert "task.edit.refused" in actions  # Jana's forged button
    assert "task.view.refused" in actions  # Jana's Done on a task no longer hers
