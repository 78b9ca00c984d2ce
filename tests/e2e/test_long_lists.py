"""Long lists within Telegram's limits, end to end: a school of 120 people to choose an owner,
a new owner or a colleague from, a page at a time; eight long notes read in several messages;
a Monday digest of many long overdue tasks; /tasks of an owner of thirty long tasks. The
stand-in refuses what Telegram refuses (texts over 4,096 characters, keyboards over 100
buttons), so none of it passes by sending too much."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.core.clock import FakeClock
from bot.core.models import (
    AuditEntry,
    Case,
    Conference,
    Institution,
    InstitutionKind,
    Member,
    OutboxRow,
    OutboxStatus,
    Role,
    Task,
    TaskParty,
    TaskStatus,
)
from bot.sandbox import Person
from bot.sandbox.models import BotMessage
from bot.services import confidentiality, overview
from tests.e2e.conftest import RunningBot
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import until
from tests.e2e.test_invitations import scheduled, team
from tests.e2e.test_tasks import add_task, record_asked

PRAGUE = ZoneInfo("Europe/Prague")
LIMIT = 4096


async def crowd(
    bot: RunningBot, institution: str, count: int, first_user_id: int
) -> dict[str, Person]:
    """`count` more active members of an institution, as joining would leave them."""
    now = bot.runtime.clock.now()
    async with bot.runtime.database.transaction() as session:
        place = await session.scalars(select(Institution).where(Institution.name == institution))
        institution_id = place.one().id
        for number in range(1, count + 1):
            user_id = first_user_id + number
            session.add(
                Member(
                    telegram_user_id=user_id,
                    chat_id=user_id,
                    display_name=f"{institution} {number:03}",
                    institution_id=institution_id,
                    role=Role.PARTICIPANT,
                    locale="en",
                    active=True,
                    reachable=True,
                    joined_at=now,
                )
            )
        await session.flush()
        await confidentiality.record_seeded(session, now=now)  # as joining would ask them to
    names = [f"{institution} {number:03}" for number in range(1, count + 1)]
    return {
        name: bot.sandbox.person(first_user_id + number, name, language_code="en")
        for number, name in enumerate(names, start=1)
    }


def labels(message: BotMessage) -> list[str]:
    return [text for row in message.buttons() for text, _data in row]


def people_on(message: BotMessage, institution: str) -> list[str]:
    return [label for label in labels(message) if label.startswith(institution)]


async def page_two(person: Person, question: str, first: BotMessage, institution: str) -> str:
    """Page 1 has a ▶ and no ◀; ▶ shows the next people; the first of them, chosen."""
    assert "▶" in labels(first) and "◀" not in labels(first)
    assert len(labels(first)) <= 100 and all(len(row) <= 8 for row in first.buttons())
    await person.press("▶", message_id=first.message_id)
    second = await until(person, question)
    assert second.message_id == first.message_id  # the same message, its next page
    assert "◀" in labels(second) and "▶" in labels(second)
    chosen = people_on(second, institution)[0]
    assert chosen not in labels(first)
    return chosen


async def held_record(bot: RunningBot, clock: FakeClock) -> dict[str, Person]:
    """The team's conference has taken place; Hana has its record open."""
    people = await team(bot)
    starts = await scheduled(bot, people)
    for name in ("jana", "petr", "pavel"):
        await until(people[name], "Will you come?")
    await bot.settle()
    await record_asked(bot, clock, people["hana"], starts)
    return people


async def test_a_school_of_120_is_paged_for_who_owns_it_and_who_takes_it_over(
    bot: RunningBot, clock: FakeClock
) -> None:
    hana = (await held_record(bot, clock))["hana"]
    await crowd(bot, "ZŠ Hradební", 120, first_user_id=5000)

    await hana.press("➕ Add a task")
    await until(hana, "What is the task?")
    await hana.send_text("Talk to the class")
    first = await until(hana, "Who owns it?")
    assert len(people_on(first, "ZŠ Hradební")) <= 10
    for extra in ("🧒 The child", "👪 A guardian", "✖️ Cancel"):
        assert extra in labels(first)
    forged = await hana.press_data("rc:w:p:٣", message_id=first.message_id)
    assert forged.text == "This button is no longer active."  # and the dialog goes on
    chosen = await page_two(hana, "Who owns it?", first, "ZŠ Hradební")
    second = hana.last_bot_message()
    for extra in ("🧒 The child", "👪 A guardian", "✖️ Cancel"):
        assert extra in labels(second)  # kept on every page
    await hana.press("◀", message_id=second.message_id)
    back = await until(hana, "Who owns it?")
    assert labels(back) == labels(first)
    await hana.press("▶", message_id=back.message_id)
    await until(hana, "Who owns it?")
    await hana.press(chosen)
    await until(hana, "By when?")
    await hana.press("1 week")
    screen = await until(hana, "«Talk to the class»")
    assert chosen.split(" (")[0] in (screen.text or "")

    # Who takes it over: the same people but the owner, a page at a time.
    await hana.press("✏️ Talk to the class", message_id=screen.message_id)
    await until(hana, "Owner: ")
    await hana.press("👤 Another owner")
    first = await until(hana, "Who takes the task over?")
    assert chosen not in labels(first)
    other = await page_two(hana, "Who takes the task over?", first, "ZŠ Hradební")
    await hana.press(other)
    done = await until(hana, "The task has a new owner")
    async with bot.runtime.database.transaction() as session:
        owner, task_id = (
            await session.execute(
                select(Member.display_name, Task.id).join(Task, Task.owner_id == Member.id)
            )
        ).one()
    assert other == f"{owner} (ZŠ Hradební)"

    # A forged page number is a stale button; a page past the last shows the last.
    forged = await hana.press_data(f"tk:o:{task_id}:p:²", message_id=done.message_id)
    assert forged.text == "This button is no longer active."
    await hana.press_data(f"tk:o:{task_id}:p:999", message_id=done.message_id)
    last = await until(hana, "Who takes the task over?")
    assert "◀" in labels(last) and "▶" not in labels(last)
    assert people_on(last, "ZŠ Hradební")


async def test_send_a_colleague_pages_through_120_colleagues(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot)
    petr = people["petr"]
    await scheduled(bot, people)
    invite = await until(petr, "Will you come?")
    await bot.settle()
    police = await crowd(bot, "Policie Cheb", 120, first_user_id=6000)

    await petr.press("👥 Send a colleague", message_id=invite.message_id)
    first = await until(petr, "They get the invitation and answer it.")
    assert len(people_on(first, "Policie Cheb")) <= 10
    chosen = await page_two(petr, "They get the invitation and answer it.", first, "Policie Cheb")
    forward = next(data for label, data in first.buttons()[-1] if label == "▶")
    assert forward is not None
    stale = await petr.press_data(forward[:-1] + "٣", message_id=first.message_id)
    assert stale.text == "This button is no longer active."
    await petr.press(chosen)
    await until(petr, f"is with {chosen} now")
    await until(police[chosen], "Will you come?")


async def test_eight_long_notes_are_read_in_several_messages_and_audited_once(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await held_record(bot, clock)
    hana, petr = people["hana"], people["petr"]
    await add_task(hana, "Visit the family", "Petr (Policie Cheb)", "2 weeks")
    await hana.press("✅ Finish: send the tasks to their owners")
    assigned = await until(petr, "A task for you")

    notes = [(f"Note {n}: " + "the family was visited. " * 25)[:499] + "." for n in range(1, 9)]
    assert {len(note) for note in notes} == {500}
    await petr.press("📝 Note", message_id=assigned.message_id)
    for note in notes[:7]:
        await until(petr, "Type a short progress note")
        await petr.send_text(note)
        await until(petr, "The note is saved.")
        await petr.send_text("/tasks")  # the task's buttons again, for the next note
        await until(petr, "Your open tasks (1):")
        await petr.press("📌 PK-2026-0001 · Visit the family")
        await until(petr, "«Visit the family»")
        await petr.press("📝 Note" if note != notes[6] else "✅ Done")
    await until(petr, "Type a short note")
    await petr.send_text(notes[7])
    await until(petr, "Marked as done")

    done = await until(hana, "Petr has done PK-2026-0001 «Visit the family»")
    await hana.press("🗒 Read the notes", message_id=done.message_id)
    parts = [await until(hana, "Notes on PK-2026-0001 «Visit the family»")]
    while sum(note in "".join(p.text or "" for p in parts) for note in notes) < len(notes):
        parts.append(await hana.next_message())
    assert len(parts) > 1
    assert all(p.protect_content and len(p.text or "") <= LIMIT for p in parts)
    shown = "\n".join(p.text or "" for p in parts)
    for note in notes:
        assert note in shown
    async with bot.runtime.database.transaction() as session:
        reads = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "task.notes_read")
        )
    assert reads == 1


async def long_tasks(bot: RunningBot, owner: str, count: int, due_on: date) -> list[str]:
    """`count` open tasks of the team's case, issued to `owner`, with 110-character titles."""
    runtime = bot.runtime
    now = runtime.clock.now()
    filler = "check the attendance and talk to the class teacher " * 3
    titles = [(f"Task {n:02} " + filler)[:109] + "." for n in range(count)]
    async with runtime.database.transaction() as session:
        case = (await session.scalars(select(Case))).one()
        conference = (await session.scalars(select(Conference))).one()
        member = (await session.scalars(select(Member).where(Member.display_name == owner))).one()
        for title in titles:
            session.add(
                Task(
                    case_id=case.id,
                    conference_id=conference.id,
                    title=runtime.cipher.encrypt(title.encode()),
                    party=TaskParty.MEMBER,
                    owner_id=member.id,
                    due_on=due_on,
                    status=TaskStatus.OPEN,
                    created_at=now,
                    issued_at=now,
                )
            )
    return titles


async def test_a_digest_of_many_long_overdue_tasks_reaches_every_coordinator(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot)
    coordinators = [people["hana"]] + [
        await bot.join(
            user_id, name, Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
        )
        for user_id, name in ((7, "Eva"), (8, "Olga"))
    ]
    await scheduled(bot, people)
    today = clock.now().astimezone(PRAGUE).date()
    titles = await long_tasks(bot, "Petr", 40, due_on=today - timedelta(days=1))
    assert len("\n".join(f"• PK-2026-0001 «{title}»" for title in titles)) > LIMIT

    await bot.sweep()  # the digests are planned ahead, for the coming Monday
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    clock.set(datetime.combine(monday, time(8, 0), tzinfo=PRAGUE).astimezone(UTC))
    await bot.sweep()
    for coordinator in coordinators:
        digest = await until(coordinator, "Your week")
        body = digest.text or ""
        assert len(body) <= LIMIT
        assert "Tasks overdue (40):" in body and f"«{titles[0]}»" in body
        shown = sum(f"«{title}»" in body for title in titles)
        assert f"… and {40 - shown} more" in body
    async with bot.runtime.database.transaction() as session:
        outcomes = list(
            await session.scalars(select(OutboxRow.status).where(OutboxRow.kind == overview.DIGEST))
        )
    assert [s for s in outcomes if s is not OutboxStatus.PENDING] == [OutboxStatus.SENT] * 3


async def test_tasks_of_an_owner_of_thirty_long_tasks_are_paged(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot)
    petr, hana = people["petr"], people["hana"]
    await scheduled(bot, people)
    today = clock.now().astimezone(PRAGUE).date()
    titles = await long_tasks(bot, "Petr", 30, due_on=today + timedelta(days=10))

    await petr.send_text("/tasks")
    page = await until(petr, "Your open tasks (30), page 1 of 3:")
    seen = [page]
    while "▶" in labels(page):
        await petr.press("▶", message_id=page.message_id)
        page = await until(petr, "Your open tasks (30)")
        seen.append(page)
    assert [p.text.split("\n")[0] for p in seen if p.text] == [
        f"Your open tasks (30), page {n} of 3:" for n in (1, 2, 3)
    ]
    shown = "\n".join(p.text or "" for p in seen)
    for title in titles:
        assert f"«{title}»" in shown
    assert all(len(p.text or "") <= LIMIT for p in seen)
    assert not any("went wrong" in (m.text or "") for m in petr.messages.values())
    assert not any("hit an error" in (m.text or "") for m in hana.messages.values())
    await petr.press("◀", message_id=page.message_id)
    await until(petr, "page 2 of 3")
    await petr.press(f"📌 PK-2026-0001 · {titles[10][:29]}…")
    opened = await until(petr, f"«{titles[10]}»")
    assert "✅ Done" in labels(opened)
