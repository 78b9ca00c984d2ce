"""The record circulated for comments, end to end with the clock moved: finishing the record
sends the draft (protected, audited per recipient) to everyone who came, with a deadline of 3
working days; one institution has no comments in time (and presses it twice), one is reminded
the day before and comments after the deadline (the coordinator still gets it, marked late, and
reads it on request), one never answers; the coordinator hears when the time is over, edits the
record and sends the final one to all, which says who commented and who did not answer."""

from __future__ import annotations

import io
from datetime import timedelta

import docx
from sqlalchemy import func, select

from bot.core.clock import FakeClock
from bot.core.models import (
    AuditEntry,
    Conference,
    InstitutionKind,
    Member,
    OutboxRow,
    RecordCirculation,
    RecordComment,
    Role,
    Rsvp,
)
from bot.sandbox import Person
from bot.sandbox.models import BotMessage
from bot.services import privacy, retention
from bot.services.privacy import Operator
from tests.e2e.conftest import RunningBot
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import until
from tests.e2e.test_invitations import each, scheduled, team
from tests.e2e.test_leavers import _deactivate, team_and_admin
from tests.e2e.test_tasks import (
    button,
    case_closed,
    record_asked,
    record_opened,
    summary_written,
)
from tests.rows import optional_invitation

COMMENT = "The boy's attendance is 60 %, not 80 %."


def text_of(person: Person, message: BotMessage) -> str:
    record = docx.Document(io.BytesIO(person.document_of(message)[1]))
    cells = [c.text for t in record.tables for row in t.rows for c in row.cells]
    return "\n".join([p.text for p in record.paragraphs] + cells)


def rows_of(person: Person, message: BotMessage, header: str) -> list[list[str]]:
    record = docx.Document(io.BytesIO(person.document_of(message)[1]))
    table = next(t for t in record.tables if t.rows[0].cells[-1].text == header)
    return [[c.text for c in row.cells] for row in table.rows]


async def reminders_due(bot: RunningBot, clock: FakeClock) -> None:
    """The clock a minute past the comments reminder's time (the working day before the
    deadline), and the sweep run."""
    async with bot.runtime.database.transaction() as session:
        remind_at = await session.scalar(
            select(OutboxRow.due_at).where(OutboxRow.kind == "record.remind").limit(1)
        )
    assert remind_at is not None
    clock.set(remind_at + timedelta(minutes=1))
    await bot.sweep()


async def a_third_institution_came(bot: RunningBot, lucie: Person) -> None:
    """PPP Cheb was invited too and Lucie came (as the plan dialog and the attendance leave
    it; those are tested elsewhere)."""
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
        member = await session.scalar(select(Member).where(Member.display_name == "Lucie"))
        assert member is not None
        session.add(
            optional_invitation(
                conference,
                member.institution_id,
                rsvp=Rsvp.ACCEPTED,
                rsvp_by_id=member.id,
                attended=True,
                attendee_id=member.id,
            )
        )


async def test_the_comment_round_with_a_late_and_a_missing_reply_and_the_final_to_all(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot)
    hana, jana, petr, pavel = people["hana"], people["jana"], people["petr"], people["pavel"]
    lucie = await bot.join(
        5, "Lucie", Role.PARTICIPANT, institution="PPP Cheb", kind=InstitutionKind.PPP
    )
    starts = await scheduled(bot, people)
    invites = await each(petr, "You are invited")
    await petr.press("✅ Accept", message_id=invites[0].message_id)
    jana_invite = await until(jana, "You are invited")
    await jana.press("✅ Accept", message_id=jana_invite.message_id)
    await a_third_institution_came(bot, lucie)
    await record_asked(bot, clock, hana, starts, "Attendance: 3 of 3 came.")
    await summary_written(hana, "The boy misses school on Mondays.")

    # Finishing: the coordinator's copy is the draft, and the draft goes to the three who came.
    await hana.press("✅ Finish: send the tasks to their owners")
    screen = await until(hana, "Draft sent for comments until")
    assert "Commented: 0; no comments: 0; no answer: 3." in (screen.text or "")
    own = await until(hana, "The record of PK-2026-0001")
    assert text_of(hana, own).startswith("DRAFT\nFor comments until")
    await bot.settle()
    drafts = {
        name: await until(people[name] if name != "lucie" else lucie, "The draft record of")
        for name in ("petr", "jana", "lucie")
    }
    for name, draft in drafts.items():
        person = people.get(name, lucie)
        assert draft.protect_content, name
        assert person.document_of(draft)[0].endswith("-draft.docx")
        assert "DRAFT" in text_of(person, draft)
        assert "The boy misses school on Mondays." in text_of(person, draft)
    assert not [m for m in pavel.messages.values() if "draft record" in (m.caption or "")]
    async with bot.runtime.database.transaction() as session:
        circulation = (await session.scalars(select(RecordCirculation))).one()
        sent = list(
            await session.scalars(
                select(AuditEntry.details).where(AuditEntry.action == "record.draft_sent")
            )
        )
    assert len(sent) == 3  # audited per recipient
    tr = bot.runtime.translator("en")
    # 3 working days, at the end of the working day.
    assert f"until {tr.datetime(circulation.comments_until)}" in (drafts["petr"].caption or "")
    assert circulation.comments_until.astimezone(tr.zone).hour == 16

    # Jana: no comments, in time; the same button again changes nothing.
    await jana.press("👍 No comments", message_id=drafts["jana"].message_id)
    await until(jana, "Noted: no comments on the draft record of PK-2026-0001.")
    await jana.press("👍 No comments", message_id=drafts["jana"].message_id)
    await until(jana, "Noted already")

    # The working day before the deadline: those who have not answered are reminded.
    await reminders_due(bot, clock)
    reminder = await until(petr, "Reminder: comments on the draft record of PK-2026-0001")
    await until(lucie, "Reminder: comments on the draft record of PK-2026-0001")
    assert not [m for m in jana.messages.values() if "Reminder: comments" in (m.text or "")]

    # The deadline passes: the coordinator hears where the comments stand.
    clock.set(circulation.comments_until + timedelta(minutes=1))
    await bot.sweep()
    closed = await until(hana, "The time for comments on the draft record of PK-2026-0001")
    assert "Commented: 0; no comments: 1; no answer: 2." in (closed.text or "")

    # Petr comments late, from the reminder: it reaches the coordinator, marked late.
    await petr.press("💬 Comment", message_id=reminder.message_id)
    await until(petr, "Type your comment")
    await petr.send_text("x" * 1001)
    await until(petr, "That is 1001 characters; a comment takes 1 to 1000.")
    await petr.send_text(COMMENT)
    said = await until(petr, "Your comment on the draft record of PK-2026-0001 went to")
    assert "after the deadline" in (said.text or "")
    typed = [m for m in petr.messages.values() if m.text == COMMENT]
    assert typed and all(m.deleted for m in typed)  # it may hold personal data
    notice = await until(hana, "A comment on the draft record of PK-2026-0001")
    assert "Policie Cheb, Petr" in (notice.text or "") and "(after the deadline)" in (
        notice.text or ""
    )
    assert COMMENT not in (notice.text or "")  # read on request only
    await hana.press("🗒 Read the comment", message_id=notice.message_id)
    read = await until(hana, "Comment on the draft record of PK-2026-0001")
    assert read.protect_content and COMMENT.replace("%", "%") in (read.text or "")
    async with bot.runtime.database.transaction() as session:
        stored = (await session.scalars(select(RecordComment))).one()
        readings = await session.scalar(
            select(AuditEntry.id).where(AuditEntry.action == "record.comment_read")
        )
    assert COMMENT.encode() not in stored.text and stored.late  # encrypted
    assert readings is not None

    # Pavel (not the one who came) may not answer for Policie Cheb; Lucie never answers.
    answer = await pavel.press_data(f"rk:n:{drafts_invitation(drafts['petr'])}")
    assert answer.text == "This is not yours to answer."

    # The coordinator edits the record and sends the final one to all; pressing again is
    # harmless.
    await hana.press("📝 The record", message_id=closed.message_id)
    await until(hana, "Record of the case conference PK-2026-0001")
    await hana.press("✏️ Summary")
    await until(hana, "Type the summary")
    await hana.send_text("The boy misses school on Mondays; attendance is 60 %.")
    await button(hana, "📤 Send the final record")
    await hana.press("📤 Send the final record")
    await until(hana, "The final record of PK-2026-0001 goes to 3 participants.")
    final_own = await until(hana, "The final record of PK-2026-0001: only you have it.")
    assert "DRAFT" not in text_of(hana, final_own)
    documents = await _documents_made(bot)
    await hana.press("📤 Send the final record")  # the screen above, pressed again
    await until(hana, "The final record of PK-2026-0001 went out")
    assert await _documents_made(bot) == documents  # no second copy, none audited as made
    caption = "The final record of PK-2026-0001: only you have it."
    own = [m.message_id for m in hana.messages.values() if m.caption == caption]
    assert own == [final_own.message_id]
    await bot.settle()
    for person in (petr, jana, lucie):
        final = await until(person, "The final record of the case conference PK-2026-0001")
        assert final.protect_content
        text = text_of(person, final)
        assert "DRAFT" not in text and "attendance is 60 %" in text
        answers = rows_of(person, final, "Answer")
        assert answers[0] == ["Institution", "Answer"]
        assert sorted(answers[1:]) == [
            ["PPP Cheb", "did not answer"],
            ["Policie Cheb", "commented (after the deadline)"],
            ["ZŠ Hradební", "no comments"],
        ]
    finals = [
        m for m in petr.messages.values() if "The final record of the case" in (m.caption or "")
    ]
    assert len(finals) == 1  # the second press sent nothing again
    async with bot.runtime.database.transaction() as session:
        audited = list(
            await session.scalars(
                select(AuditEntry.details).where(AuditEntry.action == "record.final_sent")
            )
        )
    assert len(audited) == 3

    # After the final: a late "No comments" says so; a reminder row left does not go out.
    await lucie.press("👍 No comments", message_id=drafts["lucie"].message_id)
    await until(lucie, "The final record of PK-2026-0001 has gone out already.")


async def _documents_made(bot: RunningBot) -> int:
    """How many record documents the audit log says were made for someone."""
    async with bot.runtime.database.reading() as session:
        made = select(func.count()).where(AuditEntry.action == "record.document")
        return int(await session.scalar(made) or 0)


def drafts_invitation(draft: BotMessage) -> int:
    """The invitation id in a draft's Comment button."""
    markup = draft.reply_markup or {}
    for row in markup.get("inline_keyboard", []):
        for item in row:
            data = item.get("callback_data", "")
            if data.startswith("rk:n:"):
                return int(data.split(":")[2])
    raise AssertionError("no answer buttons")


async def test_a_leavers_draft_goes_to_a_colleague_and_a_closed_case_asks_no_more(
    bot: RunningBot, clock: FakeClock
) -> None:
    """Petr came for the police and has left before the record is finished: the draft goes to
    Pavel, who may answer for the police, and comments. Closing the case stops the reminder and
    the notice of the deadline; a forged button changes nothing; purging the case years later
    wipes the comment."""
    people, admin = await team_and_admin(bot)
    hana, petr, pavel = people["hana"], people["petr"], people["pavel"]
    await record_opened(bot, clock, people)
    await _deactivate(admin, "Petr")
    await hana.press("✅ Finish: send the tasks to their owners")
    await until(hana, "Draft sent for comments until")
    await bot.settle()
    draft = await until(pavel, "The draft record of the case conference PK-2026-0001")
    assert draft.protect_content
    assert not [m for m in petr.messages.values() if "draft record" in (m.caption or "")]
    # A forged id (another invitation, or none) is refused; the real one answers.
    refused = await pavel.press_data("rk:n:999", message_id=draft.message_id)
    assert refused.text == "This is not yours to answer."
    await pavel.press("💬 Comment", message_id=draft.message_id)
    await until(pavel, "Type your comment")
    await pavel.send_text(COMMENT)
    await until(pavel, "went to the coordinator.")
    # No comments after a comment does not undo it.
    await pavel.press("👍 No comments", message_id=draft.message_id)
    await until(pavel, "You have commented on the draft record of PK-2026-0001")

    # The case is closed before the deadline: nobody is reminded, the coordinator is not asked.
    await case_closed(hana, "The case PK-2026-0001 is closed")
    async with bot.runtime.database.transaction() as session:
        circulation = (await session.scalars(select(RecordCirculation))).one()
    clock.set(circulation.comments_until + timedelta(hours=1))
    await bot.sweep()
    async with bot.runtime.database.transaction() as session:
        kinds = list(
            await session.scalars(
                select(OutboxRow.kind).where(
                    OutboxRow.kind.in_(("record.remind", "record.closed")),
                    OutboxRow.status == "sent",
                )
            )
        )
    assert kinds == []
    assert not [m for m in hana.messages.values() if "The time for comments" in (m.text or "")]

    # The case's export (an explicit, audited request) holds the comment; years later the
    # closed case is purged, and the comment's text goes with the rest.
    async with bot.runtime.database.transaction() as session:
        exported = await privacy.export_case(
            session, bot.runtime.cipher, "PK-2026-0001", Operator("root"), now=clock.now()
        )
    (conference,) = exported["conferences"]
    comments = [c for i in conference["invitations"] for c in i["record_comments"]]
    assert [(c["text"], c["late"]) for c in comments] == [(COMMENT, False)]
    async with bot.runtime.database.transaction() as session:
        await retention.purge(
            session,
            bot.runtime.cipher,
            Operator("root"),
            now=clock.now() + timedelta(days=366 * 11),
            years=10,
        )
    async with bot.runtime.database.transaction() as session:
        stored = (await session.scalars(select(RecordComment))).one()
    assert bot.runtime.cipher.decrypt(stored.text) == b""


async def test_a_leaver_mid_round_hands_the_draft_to_a_colleague(
    bot: RunningBot, clock: FakeClock
) -> None:
    """Petr came for the police and has the draft, but leaves before answering it: Pavel, who
    answers for the police now, gets the draft with its buttons and the reminder, and the
    police can still say they have no comments."""
    people, admin = await team_and_admin(bot)
    hana, petr, pavel = people["hana"], people["petr"], people["pavel"]
    await record_opened(bot, clock, people)
    await hana.press("✅ Finish: send the tasks to their owners")
    await until(hana, "Draft sent for comments until")
    await bot.settle()
    await until(petr, "The draft record of the case conference PK-2026-0001")
    assert not [m for m in pavel.messages.values() if "draft record" in (m.caption or "")]

    await _deactivate(admin, "Petr")
    await bot.settle()
    draft = await until(pavel, "The draft record of the case conference PK-2026-0001")
    assert draft.protect_content
    await reminders_due(bot, clock)
    await until(pavel, "Reminder: comments on the draft record of PK-2026-0001")
    await pavel.press("👍 No comments", message_id=draft.message_id)
    await until(pavel, "Noted: no comments on the draft record of PK-2026-0001.")
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
    await hana.press_data(f"rc:o:{conference.id}")
    screen = await until(hana, "Draft sent for comments")
    assert "Commented: 0; no comments: 1; no answer: 0." in (screen.text or "")
