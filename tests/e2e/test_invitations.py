"""Invitations end to end: the .ics in every participant's chat, accept / tentative / decline
with a reason / send a colleague, the coordinator's attendance message, a new date and a
cancellation, reminders as the clock moves, a restart between planning and sending, and a
participant who blocked the bot."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import vobject  # type: ignore[import-untyped]
from sqlalchemy import delete, select, update

from bot.app import build_application, serve
from bot.core.clock import FakeClock
from bot.core.models import (
    Conference,
    ConferenceStatus,
    InstitutionKind,
    Invitation,
    InviteMessage,
    Member,
    OutboxRow,
    OutboxStatus,
    Role,
    Rsvp,
)
from bot.core.runtime import Runtime
from bot.sandbox import BotApiSandbox, Person
from bot.sandbox.models import BotMessage
from bot.services import decisions, members
from tests.e2e.conftest import RunningBot
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import (
    answer_poll,
    coordinator_teacher_officer,
    open_case,
    plan_shown,
    slot_buttons,
    until,
)

PRAGUE = ZoneInfo("Europe/Prague")


def parsed(person: Person, message: BotMessage) -> tuple[icalendar.Calendar, Any, str]:
    """The invitation's calendar file read by two independent parsers, and its MIME type."""
    name, content, mime = person.document_of(message)
    assert name == "PK-2026-0001.ics"
    calendar = icalendar.Calendar.from_ical(content)
    other = vobject.readOne(content.decode())
    return calendar, other, mime or ""


async def each(person: Person, *fragments: str) -> list[BotMessage]:
    """The messages holding each fragment, in whatever order they arrive."""
    found: dict[str, BotMessage] = {}
    while len(found) < len(fragments):
        message = await person.next_message()
        text = message.text or message.caption or ""
        for fragment in fragments:
            if fragment in text and fragment not in found:
                found[fragment] = message
    return [found[fragment] for fragment in fragments]


def event_of(calendar: icalendar.Calendar) -> icalendar.cal.Component:
    (event,) = calendar.walk("VEVENT")
    return event


async def team(bot: RunningBot) -> dict[str, Person]:
    hana, jana, petr = await coordinator_teacher_officer(bot)
    pavel = await bot.join(
        4, "Pavel", Role.PARTICIPANT, institution="Policie Cheb", kind=InstitutionKind.POLICE
    )
    return {"hana": hana, "jana": jana, "petr": petr, "pavel": pavel}


async def first_time_confirmed(
    people: dict[str, Person], school: BotMessage, police: BotMessage
) -> None:
    """Both institutions answer "if need be" to the first time of their polls (a yes would
    accept the invitation already), and Hana confirms that time."""
    hana, jana, petr = people["hana"], people["jana"], people["petr"]
    first = slot_buttons(school)[0][1]
    await answer_poll(jana, school, {0: 2})
    await answer_poll(petr, police, {0: 2})
    await until(hana, "Every required invitee has answered")
    await hana.press(f"Confirm {first}")
    await until(hana, "The case conference PK-2026-0001 is set for")


async def scheduled(bot: RunningBot, people: dict[str, Person]) -> datetime:
    """Plan with the defaults, both institutions answer "if need be" to the first time (a yes
    would accept the invitation already), Hana confirms."""
    hana, jana, petr = people["hana"], people["jana"], people["petr"]
    await open_case(bot, "Hana", "Jana", ["crime"])
    await plan_shown(hana)
    await hana.press("Send the poll")
    school = await until(jana, "When can ZŠ Hradební come?")
    police = await until(petr, "When can Policie Cheb come?")
    await first_time_confirmed(people, school, police)
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
    assert conference.starts_at is not None
    return conference.starts_at


async def test_invitations_answers_attendance_reminders_and_a_reason(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot)
    hana, jana, petr, pavel = people["hana"], people["jana"], people["petr"], people["pavel"]
    async with bot.runtime.database.transaction() as session:  # roundtable district --mailbox
        await members.configure_district(
            session, None, mailbox="konference@cheb.example.cz", now=clock.now()
        )
    starts = await scheduled(bot, people)
    tr = bot.runtime.translator("en")
    when = tr.datetime(starts)

    # Everyone invited gets the message with the calendar file; Hana her copy as the chair.
    invites = {
        name: await until(people[name], "Will you come?") for name in ("jana", "petr", "pavel")
    }
    await bot.settle()  # the outbox has noted where each message went
    caption = invites["petr"].caption or ""
    assert f"{when} · 90 min" in caption and "Place: OSPOD Cheb" in caption
    assert "You are invited for Policie Cheb (required)." in caption
    labels = [text for row in invites["petr"].buttons() for text, _d in row]
    assert labels == ["✅ Accept", "🤔 Tentative", "❌ Decline", "👥 Send a colleague"]
    assert "👥 Send a colleague" not in [t for r in invites["jana"].buttons() for t, _d in r]
    chair = await until(hana, "You chair it")
    calendar, other, mime = parsed(hana, chair)
    assert mime.startswith("text/calendar")
    calendar, other, _mime = parsed(petr, invites["petr"])
    event = event_of(calendar)
    assert str(calendar["METHOD"]) == "REQUEST" and other.method.value == "REQUEST"
    assert event.decoded("DTSTART") == starts and other.vevent.dtstart.value == starts
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=90)
    assert (
        int(str(event["SEQUENCE"])) == 0 and str(event["SUMMARY"]) == "Case conference PK-2026-0001"
    )
    assert str(event["ORGANIZER"]) == "mailto:konference@cheb.example.cz"
    roles = sorted(str(a.params["ROLE"]) for a in event.get("ATTENDEE"))
    assert roles == ["CHAIR", "REQ-PARTICIPANT", "REQ-PARTICIPANT"]
    assert "Child" not in calendar.to_ical().decode()  # the child's name never leaves
    uid = str(event["UID"])

    # Petr accepts for the police: his colleague's copy says so; the board counts it.
    await petr.press("✅ Accept", message_id=invites["petr"].message_id)
    mine = await until(petr, "Answer: accepted (Petr).")
    assert mine.message_id == invites["petr"].message_id
    await until(pavel, "Answer: accepted (Petr).")
    board = await until(hana, "Accepted 1 · tentative 0 · declined 0 · no answer 1")
    assert "✅ ★ Policie Cheb – Petr" in (board.text or "")

    # Jana: tentative, then declines with a reason; Hana is flagged at once.
    await jana.press("🤔 Tentative", message_id=invites["jana"].message_id)
    await until(hana, "Accepted 1 · tentative 1")
    await jana.press("❌ Decline", message_id=invites["jana"].message_id)
    await until(jana, "type a short reason")
    await jana.send_text("x" * 301)
    await until(jana, "That is 301 characters, but at most 300 fit here")
    await jana.send_text("School trip that day")
    await until(jana, "Thank you. The coordinator will read it.")
    flag = await until(hana, "ZŠ Hradební (Jana) declined the case conference PK-2026-0001")
    assert "They are required" in (flag.text or "")
    assert [t for r in flag.buttons() for t, _d in r] == ["🗓 Find a new date", "📅 New poll"]
    reason = await until(hana, "The reason ZŠ Hradební (Jana) gave for declining")
    assert "School trip that day" in (reason.text or "") and reason.protect_content
    async with bot.runtime.database.transaction() as session:
        stored = await session.scalar(
            select(Invitation.decline_reason).where(Invitation.rsvp == Rsvp.DECLINED)
        )
    assert stored is not None and b"School trip" not in stored  # encrypted at rest

    # Two days before: a reminder to Petr (accepted) only; sweeping again sends nothing more.
    clock.set(starts - timedelta(days=2))
    await bot.sweep()
    reminder = await until(petr, "⏰ Reminder")
    assert f"{when} · 90 min" in (reminder.text or "")
    await bot.sweep()
    for person in (petr, jana, pavel):
        assert sum("⏰ Reminder" in (m.text or "") for m in person.messages.values()) == (
            1 if person is petr else 0
        )
    # Two hours before: the second one.
    clock.set(starts - timedelta(hours=2))
    await bot.sweep()
    await until(petr, "⏰ Reminder")
    assert sum("⏰ Reminder" in (m.text or "") for m in petr.messages.values()) == 2
    async with bot.runtime.database.transaction() as session:
        statuses = list(
            await session.scalars(
                select(OutboxRow.status).where(
                    OutboxRow.kind == "conference.reminder", OutboxRow.member_id == 3
                )
            )
        )
    assert statuses == [OutboxStatus.SENT, OutboxStatus.SENT]  # Petr's two, nothing pending
    assert str(event["UID"]) == uid


async def test_a_typed_reason_for_declining_leaves_the_participants_chat_once_stored(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    people = await team(bot)
    hana, jana, petr = people["hana"], people["jana"], people["petr"]
    await scheduled(bot, people)
    invites = {name: await until(people[name], "Will you come?") for name in ("jana", "petr")}
    await bot.settle()

    await jana.press("❌ Decline", message_id=invites["jana"].message_id)
    await until(jana, "type a short reason")
    typed = await jana.send_text("Kryštof (9) is in hospital that week.")
    thanks = await until(jana, "Thank you. The coordinator will read it.")
    assert thanks.text == "Thank you. The coordinator will read it."
    assert jana.messages[typed].deleted
    reason = await until(hana, "The reason ZŠ Hradební (Jana) gave for declining")
    assert "Kryštof (9) is in hospital that week." in (reason.text or "")  # stored and shown

    # Telegram refusing the deletion: the participant is asked to delete it herself.
    await petr.press("❌ Decline", message_id=invites["petr"].message_id)
    await until(petr, "type a short reason")
    sandbox.fail_next("deleteMessages", 502)
    typed = await petr.send_text("Court that day.")
    thanks = await until(petr, "Thank you. The coordinator will read it.")
    assert thanks.text == (
        "Thank you. The coordinator will read it. "
        "1 message could not be deleted just now; please delete it yourself."
    )
    assert not petr.messages[typed].deleted
    reason = await until(hana, "The reason Policie Cheb (Petr) gave for declining")
    assert "Court that day." in (reason.text or "")


async def test_unanswered_invitations_are_nudged_once_after_a_working_day(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot)
    await scheduled(bot, people)
    invites = {
        name: await until(people[name], "Will you come?") for name in ("jana", "petr", "pavel")
    }
    await bot.settle()  # the outbox has noted where each message went
    await people["jana"].press("✅ Accept", message_id=invites["jana"].message_id)
    await until(people["jana"], "Answer: accepted (Jana).")
    clock.advance(timedelta(days=1, hours=2))  # Monday 2026-11-23 + a working day
    await bot.sweep()
    for name in ("petr", "pavel"):
        nudge = await until(people[name], "Please answer the invitation:")
        assert "Will you come?" in (nudge.text or "")
    await bot.sweep()
    for name, expected in (("jana", 0), ("petr", 1), ("pavel", 1)):
        count = sum("Please answer" in (m.text or "") for m in people[name].messages.values())
        assert count == expected, name


async def test_a_colleague_a_new_date_and_a_cancellation(bot: RunningBot, clock: FakeClock) -> None:
    people = await team(bot)
    hana, jana, petr, pavel = people["hana"], people["jana"], people["petr"], people["pavel"]
    starts = await scheduled(bot, people)
    invites = {
        name: await until(people[name], "Will you come?") for name in ("jana", "petr", "pavel")
    }
    await bot.settle()  # the outbox has noted where each message went
    first_ics = event_of(parsed(petr, invites["petr"])[0])

    # Petr sends Pavel; Pavel gets his own invitation and answers for the police.
    await petr.press("👥 Send a colleague", message_id=invites["petr"].message_id)
    await until(petr, "They get the invitation and answer it.")
    await petr.press("Pavel")
    await until(petr, "is with Pavel now")
    handed = await until(pavel, "Will you come?")
    assert handed.message_id != invites["pavel"].message_id
    answered = await petr.press("✅ Accept", message_id=invites["petr"].message_id)
    assert answered.text == "Pavel answers this invitation now."
    await pavel.press("✅ Accept", message_id=handed.message_id)
    await until(hana, "✅ ★ Policie Cheb – Pavel")
    await jana.press("✅ Accept", message_id=invites["jana"].message_id)
    board = await until(hana, "Accepted 2 · tentative 0 · declined 0 · no answer 0")

    # A new date, chosen directly: same UID, SEQUENCE 1, answers reset, old buttons dead.
    await hana.press("🗓 New date", message_id=board.message_id)
    choice = await until(hana, "Times when everyone invited is free")
    new_label, _data = choice.buttons()[0][0]
    await hana.press(new_label)
    moved = await until(hana, "The case conference PK-2026-0001 moves to")
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
    assert conference.starts_at is not None and conference.starts_at != starts
    assert bot.runtime.translator("en").datetime(conference.starts_at) in (moved.text or "")
    for person in (jana, petr, pavel):
        again = await until(person, "The time has changed: now")
        assert bot.runtime.translator("en").datetime(starts) in (again.caption or "")
        event = event_of(parsed(person, again)[0])
        assert str(event["UID"]) == str(first_ics["UID"]) and int(str(event["SEQUENCE"])) == 1
        assert event.decoded("DTSTART") == conference.starts_at
    await until(hana, "Accepted 0 · tentative 0 · declined 0 · no answer 2")
    stale = await jana.press("✅ Accept", message_id=invites["jana"].message_id)
    assert stale.text == "This button is no longer active."
    latest = jana.last_bot_message()
    await jana.press("✅ Accept", message_id=latest.message_id)
    board = await until(hana, "Accepted 1")

    # Cancelled: a CANCEL to everyone who was invited, and no reminder afterwards.
    await hana.press("❌ Cancel the conference", message_id=board.message_id)
    await until(hana, "Cancel the conference? Everyone invited is told")
    await hana.press("❌ Yes, cancel it")
    await until(hana, "The case conference PK-2026-0001 is cancelled.")
    for person in (jana, petr, pavel, hana):
        notice = await until(person, "is cancelled. The attached file removes it")
        calendar, other, mime = parsed(person, notice)
        event = event_of(calendar)
        assert str(calendar["METHOD"]) == "CANCEL" and other.method.value == "CANCEL"
        assert str(event["STATUS"]) == "CANCELLED" and int(str(event["SEQUENCE"])) == 2
        assert mime.startswith("text/calendar")
    clock.set(conference.starts_at - timedelta(hours=2))
    await bot.sweep()
    async with bot.runtime.database.transaction() as session:
        pending = await session.scalar(
            select(OutboxRow.id)
            .where(
                OutboxRow.status == OutboxStatus.PENDING,
                OutboxRow.subject == f"conference:{conference.id}",
            )
            .limit(1)
        )
    assert pending is None
    assert not any("⏰ Reminder" in (m.text or "") for m in jana.messages.values())


async def test_a_restart_between_planning_and_sending_and_a_blocked_participant(
    runtime: Runtime, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    """The decision is taken and its invitations planned; the process dies before sending one
    (one row was even claimed). After the restart each arrives exactly once; the member who
    blocked the bot is reported to the coordinator."""
    application = build_application(runtime)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(application, stop))
    first = RunningBot(application, runtime, sandbox)
    people = await team(first)
    nina = await first.join(
        6, "Nina", Role.PARTICIPANT, institution="Spirála", kind=InstitutionKind.NGO
    )
    await open_case(first, "Hana", "Jana", ["crime"])
    hana = people["hana"]
    await plan_shown(hana)
    await hana.press("☐ Spirála")
    await until(hana, "Invited: 3")
    await hana.press("Send the poll")
    await until(hana, "Poll for the case conference")
    for name in ("jana", "petr"):
        poll = await until(people[name], "When can")
        await answer_poll(people[name], poll, {0: 2})
    stop.set()
    await asyncio.wait_for(task, timeout=30)

    # While the bot is down: Nina blocks it, and the coordinator's decision lands in the
    # database with its invitations planned (as if the process died right after the commit).
    await nina.block_bot()
    async with runtime.database.transaction() as session:
        actor = await members.find_actor(session, 1)
        assert actor is not None
        conference = (await session.scalars(select(Conference))).one()
        slots = await decisions.fresh_board(session, conference.id)
        done = await decisions.confirm(
            session, actor, conference.id, slots.slots[0].id, now=clock.now()
        )
        assert isinstance(done, decisions.Scheduled)
    async with runtime.database.transaction() as session:
        claimed = await session.scalar(
            select(OutboxRow.id).where(OutboxRow.kind == "conference.invite").limit(1)
        )
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == claimed)
            .values(status=OutboxStatus.SENDING, claimed_by="dead-process", claimed_at=clock.now())
        )
        planned = len(
            list(
                await session.scalars(
                    select(OutboxRow.id).where(OutboxRow.kind == "conference.invite")
                )
            )
        )
    assert planned == 5  # Jana, Petr, Pavel, Nina and Hana's own copy

    application = build_application(runtime)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(application, stop))
    try:
        for name in ("jana", "petr", "pavel"):
            await until(people[name], "Will you come?")
        seen = await each(hana, "You chair it", "Nina did not get a message about PK-2026-0001")
        assert "blocked the bot" in (seen[1].text or "")
        await RunningBot(application, runtime, sandbox).sweep()
        for person in (*people.values(),):
            invitations = [m for m in person.messages.values() if m.document is not None]
            assert len(invitations) == 1, person.transcript()
        async with runtime.database.transaction() as session:
            rows = list(
                await session.scalars(
                    select(OutboxRow).where(OutboxRow.kind == "conference.invite")
                )
            )
            nina_member = await session.scalar(select(Member).where(Member.display_name == "Nina"))
        outcomes = sorted((row.status.value, row.outcome) for row in rows)
        assert outcomes == [("failed", "blocked")] + [("sent", "sent")] * 4
        assert nina_member is not None and not nina_member.reachable
        async with runtime.database.transaction() as session:
            status = await session.scalar(select(Conference.status))
        assert status is ConferenceStatus.SCHEDULED
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def test_an_invitation_whose_delivery_was_not_noted_still_shows_the_answer(
    bot: RunningBot,
) -> None:
    """The process died between sending Petr's invitation and noting where it went (or
    Telegram's answer to the send was lost): his press still redraws the message he pressed."""
    people = await team(bot)
    petr, pavel = people["petr"], people["pavel"]
    await scheduled(bot, people)
    invites = {name: await until(people[name], "Will you come?") for name in ("petr", "pavel")}
    await bot.settle()
    async with bot.runtime.database.transaction() as session:
        await session.execute(delete(InviteMessage).where(InviteMessage.member_id == 3))
    await petr.press("✅ Accept", message_id=invites["petr"].message_id)
    mine = await until(petr, "Answer: accepted (Petr).")
    assert mine.message_id == invites["petr"].message_id
    colleague = await until(pavel, "Answer:")  # his colleague's copy, as before
    assert "Answer: accepted (Petr)." in (colleague.caption or "")
