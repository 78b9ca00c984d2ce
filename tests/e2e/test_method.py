"""The case-conference method's own parts, end to end: the conference's kind and goal (picked and
typed at planning, the kind on the poll, the board and the invitation, the goal read by a
participant on request and audited, refused and audited for a member of an institution that is
not invited), and the child's voice (how the child takes part, who supports them, their view)
with the child on the attendance sheet, all in the record document."""

from __future__ import annotations

import io

import docx
from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.method_tables import ChildPart, ConferenceKind, ConferenceMethod
from bot.core.models import (
    AuditEntry,
    Conference,
    InstitutionKind,
    Role,
    Rsvp,
)
from bot.sandbox import Person
from bot.sandbox.models import BotMessage
from tests.e2e.conftest import RunningBot
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import open_case, plan_shown, until
from tests.e2e.test_invitations import each, first_time_confirmed, scheduled, team
from tests.e2e.test_tasks import record_asked, record_opened
from tests.rows import invited_schools

GOAL = "Agree who supports the boy at school and at home before the court petition."
COURT = "Kind: conference before a court petition (§ 14(2)(b) of Act 359/1999)"
GOAL_NOTE = "The goal of the conference is in the bot: tap 🎯 Goal of the conference."
GOAL_BUTTON = "🎯 Goal of the conference"


def labels(message: BotMessage) -> list[str]:
    return [text for row in message.buttons() for text, _data in row]


async def audit(bot: RunningBot, action: str) -> list[AuditEntry]:
    async with bot.runtime.database.transaction() as session:
        return list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


async def the_conference(bot: RunningBot) -> tuple[Conference, ConferenceMethod | None]:
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
        return conference, await session.get(ConferenceMethod, conference.id)


async def test_the_kind_and_goal_from_the_plan_to_the_invitation_and_the_goal_read_on_request(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot)
    hana, jana, petr = people["hana"], people["jana"], people["petr"]
    # A counsellor of a centre that is not invited to this case's conference.
    olga = await bot.join(
        5, "Olga", Role.PARTICIPANT, institution="PPP Cheb", kind=InstitutionKind.PPP
    )
    await open_case(bot, "Hana", "Jana", ["crime"])
    screen = await plan_shown(hana)
    assert "Kind: initial conference" in (screen.text or "")
    assert "Goal: not written yet." in (screen.text or "")

    # The kind goes round with one button: initial → review → before a court petition.
    await hana.press("🏷 Kind")
    await until(hana, "Kind: review conference")
    await hana.press("🏷 Kind")
    await until(hana, COURT)

    # The goal: too long is refused with its length, and the goal stays unwritten.
    await hana.press("🎯 Goal")
    await until(hana, "Type the goal of the conference")
    await hana.send_text("x" * 501)
    assert (await until(hana, "characters")).text == (
        "That is 501 characters; at most 500 fit. Please shorten it and send it again."
    )
    await hana.send_text(GOAL)
    screen = await until(hana, "Case conference for PK-2026-0001")
    assert f"Goal: written ({len(GOAL)} characters)." in (screen.text or "")
    assert GOAL not in (screen.text or "")
    # What was typed may name the child: it goes from the chat once it is kept.
    typed = [m for m in hana.messages.values() if m.text == GOAL]
    assert typed and all(m.deleted for m in typed)
    await hana.press("Send the poll")

    # The poll says the kind, and only that the goal is in the bot.
    poll = await until(jana, "When can ZŠ Hradební come?")
    assert COURT in (poll.text or "") and GOAL_NOTE in (poll.text or "")
    assert GOAL not in (poll.text or "")
    assert GOAL_BUTTON in labels(poll)
    board = await until(hana, "Poll for the case conference PK-2026-0001")
    assert COURT in (board.text or "")
    assert "🧒 Goal and the child's voice" in labels(board)
    conference, method = await the_conference(bot)
    assert method is not None and method.kind is ConferenceKind.COURT
    assert method.goal is not None and GOAL.encode() not in method.goal  # encrypted

    # A participant reads the goal on request: protected, and the reading audited (no text).
    await jana.press(GOAL_BUTTON, message_id=poll.message_id)
    read = await until(jana, "Goal of the case conference PK-2026-0001")
    assert read.protect_content
    assert GOAL in (read.text or "") and COURT in (read.text or "")
    [reading] = await audit(bot, "conference.goal_read")
    assert reading.subject_id == str(conference.id)
    assert GOAL not in str(reading.details)
    # Pressed twice, it answers twice, and each reading is audited.
    await jana.press(GOAL_BUTTON, message_id=poll.message_id)
    await until(jana, "Goal of the case conference PK-2026-0001")
    assert len(await audit(bot, "conference.goal_read")) == 2

    # A member of an institution that is not invited is refused, and that is audited.
    await olga.send_text("/help")
    await olga.next_message()
    refused = await olga.press_data(f"mg:{conference.id}")
    assert refused.text == "Only the participants of this conference can read its goal."
    assert GOAL not in olga.transcript() and "PK-2026-0001" not in olga.transcript()
    [refusal] = await audit(bot, "conference.goal.refused")
    assert refusal.subject_id == str(conference.id)
    assert len(await audit(bot, "conference.goal_read")) == 2

    # The invitation says the kind and that the goal is in the bot, with the same button.
    police = await until(petr, "When can Policie Cheb come?")
    await first_time_confirmed(people, poll, police)
    invitation = (await each(petr, "You are invited"))[0]
    caption = invitation.caption or ""
    assert COURT in caption and GOAL_NOTE in caption and GOAL not in caption
    assert GOAL_BUTTON in labels(invitation)
    await petr.press(GOAL_BUTTON, message_id=invitation.message_id)
    assert GOAL in ((await until(petr, "Goal of the case conference")).text or "")


async def method_screen(hana: Person) -> BotMessage:
    return await until(hana, "Goal and the child's voice: PK-2026-0001")


async def test_the_childs_voice_and_the_child_on_the_attendance_sheet_are_in_the_record(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot)
    hana, petr = people["hana"], people["petr"]
    starts = await scheduled(bot, people)  # planned with the defaults: no goal
    invites = await each(petr, "You are invited")
    assert GOAL_BUTTON not in labels(invites[0])  # no goal written: nothing to read
    await petr.press("✅ Accept", message_id=invites[0].message_id)

    # From the board: the coordinator's screen of the goal and the child's voice (protected).
    board = await until(hana, "Set for")
    assert "Kind: initial conference" in (board.text or "")
    await hana.press("🧒 Goal and the child's voice", message_id=board.message_id)
    screen = await method_screen(hana)
    assert screen.protect_content
    assert "How the child takes part: not recorded yet" in (screen.text or "")

    # The kind changes here too, and the live board says so at once.
    await hana.press("🏷 Kind", message_id=screen.message_id)
    board = await until(hana, "Kind: review conference")
    assert "Set for" in (board.text or "")
    screen = await method_screen(hana)

    # With a support person: who is a typed field; the same button twice changes nothing.
    await hana.press("With a support person")
    await until(hana, "How the child takes part: present with a support person")
    await hana.press("• With a support person •")
    async with bot.runtime.database.transaction() as session:
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "conference.child_part")
        )
        assert len(list(entries)) == 1
    await hana.press("✍ Who supports the child")
    await until(hana, "Type who supports the child")
    await hana.send_text("Eva Malá, school counsellor")
    screen = await method_screen(hana)
    assert "Support person: Eva Malá, school counsellor" in (screen.text or "")

    # The child's view in their words: too long is refused, then stored and gone from the chat.
    await hana.press("✍ The child's view")
    await until(hana, "Type the child's view")
    await hana.send_text("y" * 2001)
    await until(hana, "That is 2001 characters; at most 2000 fit.")
    typed = await hana.send_text("I want to stay at my school and see my dad on Sundays.")
    screen = await method_screen(hana)
    assert "I want to stay at my school" in (screen.text or "")
    assert hana.messages[typed].deleted  # what was typed left the chat once stored
    _conference, method = await the_conference(bot)
    assert method is not None and method.child_part is ChildPart.SUPPORTED
    assert method.child_view is not None and b"my school" not in method.child_view

    # The conference is held: the child came, marked on the attendance sheet.
    await record_asked(bot, clock, hana, starts)
    await hana.press("👥 Attendance")
    await until(hana, "one tap per participant")
    await hana.press("❌ The child did not come")
    await until(hana, "one tap per participant")
    attendance = hana.last_bot_message()
    assert "✅ The child came" in labels(attendance)
    await hana.press("⬅️ Back")
    await until(hana, "Record of the case conference PK-2026-0001")

    await hana.press("✅ Finish: send the tasks to their owners")
    document = await until(hana, "The record of PK-2026-0001")
    record = docx.Document(io.BytesIO(hana.document_of(document)[1]))
    paragraphs = [p.text for p in record.paragraphs]
    for expected in (
        "Kind and goal of the conference",
        "Kind: review conference",
        "Goal: not written",
        "The child's voice",
        "How the child takes part: present with a support person",
        "Support person: Eva Malá, school counsellor",
        "I want to stay at my school and see my dad on Sundays.",
    ):
        assert expected in paragraphs, expected
    rows = [[c.text for c in row.cells] for table in record.tables for row in table.rows]
    assert ["The child", "", "yes", ""] in rows  # on the sheet, without a name
    await hana.press("📄 The record with the child's name")
    named = await until(hana, "The record of PK-2026-0001")
    named_rows = [
        [c.text for c in row.cells]
        for table in docx.Document(io.BytesIO(hana.document_of(named)[1])).tables
        for row in table.rows
    ]
    assert ["The child", "Child", "yes", ""] in named_rows

    # The draft is out for comments: a comment may correct the child's view, so it still
    # changes, from the record's screen, and the final record has it.
    await hana.press_data(f"rc:o:{_conference.id}")
    record_screen = await until(hana, "Draft sent for comments until")
    await hana.press("🧒 Goal and the child's voice", message_id=record_screen.message_id)
    screen = await method_screen(hana)
    await hana.press("✍ The child's view", message_id=screen.message_id)
    await until(hana, "Type the child's view")
    await hana.send_text("I want to stay at my school and see my dad on Saturdays.")
    assert "on Saturdays" in ((await method_screen(hana)).text or "")
    await hana.press_data(f"rc:o:{_conference.id}")
    await until(hana, "Draft sent for comments until")
    await hana.press("📤 Send the final record")
    final = await until(hana, "The final record of PK-2026-0001: only you have it.")
    paragraphs = [p.text for p in docx.Document(io.BytesIO(hana.document_of(final)[1])).paragraphs]
    assert "I want to stay at my school and see my dad on Saturdays." in paragraphs

    # The record is final: the stale screen's buttons change nothing any more.
    answer = await hana.press("Not taking part", message_id=screen.message_id)
    assert answer.text is not None and "can no longer change" in answer.text
    _conference, method = await the_conference(bot)
    assert method is not None and method.child_part is ChildPart.SUPPORTED


async def test_the_attendance_of_150_institutions_is_paged_with_the_child_on_every_page(
    bot: RunningBot, clock: FakeClock
) -> None:
    """150 institutions were invited: one button each would be more than the 100 a message may
    carry, so the attendance screen shows 20 a page (◀ ▶), with the child's row and Back on
    every page; a tap, on the child too, keeps the page it was made on, and a double tap on the
    child's row does not undo the first."""
    people = await team(bot)
    hana = people["hana"]
    await record_opened(bot, clock, people)
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
        names = [f"ZŠ Cheb {number:03}" for number in range(1, 151)]
        await invited_schools(session, conference, names, now=clock.now(), rsvp=Rsvp.ACCEPTED)
    await hana.press("👥 Attendance")
    screen = await until(hana, "one tap per participant")
    assert len(labels(screen)) <= 100
    assert "▶" in labels(screen) and "❌ The child did not come" in labels(screen)
    for _ in range(3):
        await hana.press("▶", message_id=screen.message_id)
        screen = await until(hana, "one tap per participant")
    page = labels(screen)
    assert "❌ ZŠ Cheb 059" in page and "❌ ZŠ Cheb 058" not in page  # the 4th page
    assert "◀" in page and "⬅️ Back" in page
    await hana.press("❌ ZŠ Cheb 070", message_id=screen.message_id)
    screen = await until(hana, "one tap per participant")
    assert "❌ ZŠ Cheb 059" in labels(screen)  # the same page
    assert "✅ ZŠ Cheb 070: —" in labels(screen)
    # A double tap on the child's row: the second press, with the data of the message as it
    # was, does not undo the first.
    child = next(data for row in screen.buttons() for text, data in row if "The child" in text)
    await hana.press_data(child, message_id=screen.message_id)
    screen = await until(hana, "one tap per participant")
    assert "✅ The child came" in labels(screen) and "❌ ZŠ Cheb 059" in labels(screen)
    await hana.press_data(child, message_id=screen.message_id)
    _conference, method = await the_conference(bot)
    assert method is not None and method.child_present
    assert len(await audit(bot, "record.child_present")) == 1
