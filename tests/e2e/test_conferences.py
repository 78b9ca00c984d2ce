"""Finding a common date end to end: the coordinator plans, the institutions answer the poll,
the best time is confirmed; calendars, nudges, a second conference and no common time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.models import (
    AuditEntry,
    BusyTime,
    Case,
    Conference,
    ConferenceSlot,
    ConferenceStatus,
    Institution,
    InstitutionKind,
    Invitation,
    Member,
    ReferralStatus,
    Role,
    SlotAnswer,
)
from bot.sandbox import BotApiSandbox, Person
from bot.sandbox.models import BotMessage
from tests.e2e.conftest import RunningBot, confirm_confidentiality
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.rows import case_from, sent_referral

PRAGUE = ZoneInfo("Europe/Prague")
SLOT = re.compile(r"^(✅|🤷|❌|⬜) (.+)$")


async def until(person: Person, fragment: str) -> BotMessage:
    """The next message (sent or edited) whose text holds `fragment`; others are passed over."""
    while True:
        message = await person.next_message()
        if fragment in (message.text or message.caption or ""):
            return message


async def plan_shown(
    coordinator: Person, code: str = "PK-2026-0001", listed: str = "Open cases"
) -> BotMessage:
    """/cases (waiting for `listed` in the list), then the planning screen of the case `code`."""
    await coordinator.send_text("/cases")
    await until(coordinator, listed)
    await coordinator.press(f"Plan: {code}")
    return await until(coordinator, f"Case conference for {code}")


async def coordinator_teacher_officer(bot: RunningBot) -> tuple[Person, Person, Person]:
    """Hana, a coordinator at OSPOD Cheb; Jana, a teacher who refers; Petr at Policie Cheb."""
    hana = await bot.join(
        1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    jana = await bot.join(2, "Jana", Role.REFERRER)
    petr = await bot.join(
        3, "Petr", Role.PARTICIPANT, institution="Policie Cheb", kind=InstitutionKind.POLICE
    )
    return hana, jana, petr


async def open_case(bot: RunningBot, coordinator: str, referrer: str, categories: list[str]) -> int:
    """An accepted referral and its case, as the referral dialog and triage leave them."""
    runtime = bot.runtime
    now = runtime.clock.now()
    async with runtime.database.transaction() as session:
        manager = await session.scalar(select(Member).where(Member.display_name == coordinator))
        teacher = await session.scalar(select(Member).where(Member.display_name == referrer))
        assert manager is not None and teacher is not None
        institution = await session.get_one(Institution, teacher.institution_id)
        count = len((await session.scalars(select(Case))).all())
        referral = await sent_referral(
            session,
            f"R-2026-{count + 1:04d}",
            institution.district_id,
            teacher,
            ReferralStatus.ACCEPTED,
            runtime.cipher.encrypt_json({"categories": categories, "name": "Child"}),
            sent=now,
        )
        case = await case_from(session, referral, f"PK-2026-{count + 1:04d}", manager.id, now=now)
        return case.id


def slot_buttons(message: BotMessage) -> list[tuple[str, str]]:
    """(mark, time) of each time button of a poll message, in order."""
    found = []
    for row in message.buttons():
        for text, _data in row:
            match = SLOT.match(text)
            if match:
                found.append((match.group(1), match.group(2)))
    return found


async def answer_poll(person: Person, poll: BotMessage, taps: dict[int, int]) -> BotMessage:
    """Tap the times (index -> number of taps from unmarked: 1 yes, 2 if need be, 3 no; a time
    not tapped stays unmarked and counts as no), then Send."""
    message_id = poll.message_id
    for index, count in taps.items():
        for _ in range(count):
            current = person.messages[message_id]
            label = [text for row in current.buttons() for text, _d in row][index]
            await person.press(label, message_id=message_id)
            await person.next_message()
    answered = await person.press("Send", message_id=message_id)
    assert answered.text == "Thank you, your answer was sent."
    return await until(person, "Answered by")


MORNINGS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft Corporation//Outlook 16.0//EN\r\n"
    "BEGIN:VEVENT\r\nUID:duty@example.org\r\nDTSTAMP:20261101T000000Z\r\n"
    "DTSTART:20261123T060000Z\r\nDTEND:20261123T113000Z\r\n"
    "RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=20\r\n"
    "SUMMARY:Duty – confidential\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
).encode()


def ics(*events: tuple[datetime, datetime]) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//Outlook-like//EN"]
    for number, (start, end) in enumerate(events):
        lines += [
            "BEGIN:VEVENT",
            f"UID:busy-{number}@example.org",
            "DTSTAMP:20261101T000000Z",
            f"DTSTART:{start.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            f"DTEND:{end.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            "SUMMARY:Court hearing – confidential",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


async def the_team(bot: RunningBot) -> dict[str, Person]:
    people = {
        "hana": await bot.join(
            1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
        ),
        "jana": await bot.join(2, "Jana", Role.REFERRER),
        "petr": await bot.join(
            3, "Petr", Role.PARTICIPANT, institution="Policie Cheb", kind=InstitutionKind.POLICE
        ),
        "olga": await bot.join(
            4, "Olga", Role.PARTICIPANT, institution="PPP Cheb", kind=InstitutionKind.PPP
        ),
        "marek": await bot.join(
            5, "Marek", Role.PARTICIPANT, institution="PMS Cheb", kind=InstitutionKind.PMS
        ),
        "nina": await bot.join(
            6, "Nina", Role.PARTICIPANT, institution="Spirála", kind=InstitutionKind.NGO
        ),
    }
    return people


async def test_five_institutions_and_a_guardian_find_a_date_in_one_poll(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    people = await the_team(bot)
    hana, jana, petr, olga, marek, nina = (
        people[name] for name in ("hana", "jana", "petr", "olga", "marek", "nina")
    )
    # The police officer shares his calendar first: on duty every weekday morning until 12:30
    # (one recurring event, as Outlook exports it), for four weeks.
    await petr.send_document("calendar.ics", MORNINGS, mime_type="text/calendar")
    read = await petr.next_message()
    assert "I read 20 busy times from your calendar" in (read.text or "")
    assert "Policie Cheb" in (read.text or "")
    async with bot.runtime.database.transaction() as session:
        kept = (await session.scalars(select(BusyTime))).one()
    assert len(kept.intervals) == 20
    assert all(isinstance(value, int) for pair in kept.intervals for value in pair)
    assert "Duty" not in str([entry.details for entry in await audit_entries(bot)])

    await open_case(bot, "Hana", "Jana", ["truancy", "crime"])
    await hana.send_text("/cases")
    cases = await hana.next_message()
    assert "Next step: plan a case conference." in (cases.text or "")
    await hana.press("Plan: PK-2026-0001")
    plan = await until(hana, "Case conference for PK-2026-0001")
    labels = [text for row in plan.buttons() for text, _d in row]
    # Truancy and an offence call for the school, PPP, police and probation; not the NGO.
    for ticked in ("☑ ZŠ Hradební", "☑ Policie Cheb", "☑ PPP Cheb", "☑ PMS Cheb", "☐ Spirála"):
        assert ticked in labels, labels
    assert "☑ OSPOD Cheb" not in labels and "☐ OSPOD Cheb" not in labels  # she chairs it
    await hana.press("☐ Spirála")
    plan = await until(hana, "Case conference")
    assert ("☑ Spirála", "☆ optional") in [
        tuple(text for text, _d in row) for row in plan.buttons()
    ]
    await hana.press("+ Guardian, link")
    plan = await until(hana, "Guardians: 1 by a one-time link")
    # From the first working day after the poll closes (Thu 26 Nov), 15 working days.
    assert "Window: Fri, Nov 27 – Thu, Dec 17" in (plan.text or "")
    await hana.press("Send the poll")
    await until(hana, "The poll for PK-2026-0001 is on its way")
    link_message = await until(hana, "Guardian 1: send them this one-time link")
    link = re.search(r"start=(\S+)", link_message.text or "")
    assert link is not None
    board = await until(hana, "Poll for the case conference PK-2026-0001")
    assert "Answered 0 of 6" in (board.text or "")

    polls = {}
    for name in ("jana", "petr", "olga", "marek", "nina"):
        poll = await until(people[name], "Case conference PK-2026-0001")
        polls[name] = poll
        assert "Length 90 min · OSPOD Cheb" in (poll.text or "")
    times = [time for _mark, time in slot_buttons(polls["jana"])]
    assert len(times) == 8
    assert all(mark == "⬜" for mark, _t in slot_buttons(polls["jana"]))  # nothing marked yet
    # The police mornings are out: every time is in the afternoon, spread over the window.
    assert all(time.endswith("PM") for time in times), times
    days = {time.rsplit(" ", 1)[0] for time in times}  # "Tue, Dec 1" (then 1:00\u202fPM)
    assert len(days) == 8
    async with bot.runtime.database.transaction() as session:
        starts = sorted(await session.scalars(select(ConferenceSlot.starts_at)))
    assert starts[-1] - starts[0] >= timedelta(days=14)  # over the whole window

    # The guardian joins by the link and gets the poll like anyone else.
    guardian = sandbox.person(50, "Milena", language_code="cs")
    await guardian.send_text(f"/start {link.group(1)}")
    welcome = await until(guardian, "Round Table")
    assert "Guardians" not in (welcome.text or "")
    await guardian.press("English")
    await confirm_confidentiality(guardian)  # in the guardians' own words
    guardian_poll = await until(guardian, "When can you come?")
    assert len(slot_buttons(guardian_poll)) == 8

    # Four institutions answer; a colleague's message shows who answered.
    done = await answer_poll(jana, polls["jana"], {0: 1, 1: 1, 2: 2})
    assert "Answered by Jana" in (done.text or "")
    assert [m for m, _t in slot_buttons(done)][:3] == ["✅", "✅", "🤷"]
    await answer_poll(petr, polls["petr"], {0: 1, 1: 2})
    await answer_poll(olga, polls["olga"], {0: 1, 2: 1})
    await answer_poll(nina, polls["nina"], {1: 1})
    await answer_poll(guardian, guardian_poll, {0: 1, 1: 1})
    board = await until(hana, "Answered 5 of 6")  # the live board, edited
    assert f"Best time so far: {times[0]} (4 yes)" in (board.text or ""), board.text

    # A working day before the deadline, only probation (required, silent) is nudged.
    clock.set(datetime(2026, 11, 25, 8, 5, tzinfo=PRAGUE))
    await bot.sweep()
    nudge = await until(marek, "Reminder: your answer is still missing")
    for name in ("jana", "petr", "olga", "nina"):
        assert not any(
            "Reminder" in (m.text or "") for m in people[name].messages.values() if m.from_bot
        )
    await bot.sweep()  # once only
    assert sum("Reminder" in (m.text or "") for m in marek.messages.values() if m.from_bot) == 1
    await answer_poll(marek, nudge, {0: 2})

    offer = await until(hana, "Every required invitee has answered the poll for PK-2026-0001")
    assert f"Best time so far: {times[0]} (4 yes)" in (offer.text or "")
    assert "If need be: PMS Cheb" in (offer.text or "")
    await hana.press(f"Confirm {times[0]}")
    await until(hana, "The case conference PK-2026-0001 is set for")
    # Who said yes to the time is marked as coming; probation (if need be) and the NGO (no
    # answer for it) are asked.
    for person in (jana, petr, olga, guardian):
        invited = await until(person, "You said yes to this time in the poll")
        assert "Will you come?" not in (invited.caption or "")
    for person in (marek, nina):
        invited = await until(person, "Will you come?")  # the invitation (test_invitations)
        assert "· 90 min" in (invited.caption or "") and "Place: OSPOD Cheb" in (
            invited.caption or ""
        )
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
        assert conference.status is ConferenceStatus.SCHEDULED
        assert conference.starts_at == starts[0]
        assert len((await session.scalars(select(SlotAnswer))).all()) == 6 * 8
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "conference.scheduled" in actions and actions.count("conference.answered") == 6

    # A second case for the same coordinator: its poll keeps clear of the first conference.
    await open_case(bot, "Hana", "Jana", ["truancy"])
    await plan_shown(hana, "PK-2026-0002", listed="Case conference on")
    await hana.press("Send the poll")
    await until(hana, "Poll for the case conference PK-2026-0002")
    async with bot.runtime.database.transaction() as session:
        second = (
            await session.scalars(select(Conference).where(Conference.id != conference.id))
        ).one()
        second_starts = list(
            await session.scalars(
                select(ConferenceSlot.starts_at).where(ConferenceSlot.conference_id == second.id)
            )
        )
    assert conference.starts_at is not None
    busy_from = conference.starts_at - timedelta(minutes=15 + 90)
    busy_to = conference.starts_at + timedelta(minutes=90 + 15)
    assert len(second_starts) == 8
    assert not any(busy_from < start < busy_to for start in second_starts), second_starts


async def test_no_common_time_leads_to_the_next_window_and_blocked_people_are_reported(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    hana, jana, petr = await coordinator_teacher_officer(bot)
    nina = await bot.join(
        6, "Nina", Role.PARTICIPANT, institution="Spirála", kind=InstitutionKind.NGO
    )
    await nina.block_bot()
    await open_case(bot, "Hana", "Jana", ["crime"])
    await plan_shown(hana)
    await hana.press("☐ Spirála")
    await until(hana, "Invited: 3")
    await hana.press("Send the poll")
    blocked = await until(hana, "Nobody could be reached at")
    assert "Spirála" in (blocked.text or "")
    board = await until(hana, "Poll for the case conference")
    assert "Spirála – nobody can be reached" in (board.text or "")

    school_poll = await until(jana, "When can ZŠ Hradební come?")
    police_poll = await until(petr, "When can Policie Cheb come?")
    first_round = [time for _m, time in slot_buttons(school_poll)]
    await answer_poll(jana, school_poll, {0: 1, 1: 1})
    await answer_poll(petr, police_poll, {2: 1})  # never when the school can

    offer = await until(hana, "Every required invitee has answered")
    assert "No time suits every required invitee:" in (offer.text or "")
    assert f"{first_round[0]} – Policie Cheb" in (offer.text or "")
    assert f"{first_round[2]} – ZŠ Hradební" in (offer.text or "")
    labels = [text for row in offer.buttons() for text, _d in row]
    assert "Make Policie Cheb optional" in labels and "Choose a time anyway" in labels
    await hana.press("Poll the next window")
    await until(hana, "A new poll for PK-2026-0001 is on its way")
    board = await until(hana, "Round 2")
    assert "Answered 0 of 3" in (board.text or "")
    new_poll = await until(petr, "When can Policie Cheb come?")
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
        starts = list(
            await session.scalars(select(ConferenceSlot.starts_at).where(ConferenceSlot.round == 2))
        )
    assert conference.round == 2 and conference.window_first > datetime(2026, 12, 17).date()
    assert all(start.astimezone(PRAGUE).date() >= conference.window_first for start in starts)
    # The old poll's buttons are dead: they say so and change nothing.
    stale = await jana.press(first_round[0], message_id=school_poll.message_id)
    assert stale.text == "This button is no longer active.", jana.transcript()
    stale = await jana.press("Send", message_id=school_poll.message_id)
    assert stale.text == "This button is no longer active."
    async with bot.runtime.database.transaction() as session:
        assert not await session.scalar(
            select(Invitation.answered_at).where(Invitation.institution_id.is_not(None))
        )
    assert len(slot_buttons(new_poll)) == 8


async def test_a_calendar_sent_during_a_poll_marks_its_times_no_and_bad_files_get_answers(
    bot: RunningBot,
) -> None:
    hana, _jana, petr = await coordinator_teacher_officer(bot)
    await open_case(bot, "Hana", "Jana", ["crime"])
    await plan_shown(hana)
    await hana.press("Send the poll")
    poll = await until(petr, "When can Policie Cheb come?")
    await answer_poll(petr, poll, {0: 1, 1: 1, 2: 1})
    async with bot.runtime.database.transaction() as session:
        starts = sorted(await session.scalars(select(ConferenceSlot.starts_at)))
    await petr.send_document(
        "busy.ics", ics((starts[1], starts[1] + timedelta(minutes=30))), mime_type="text/calendar"
    )
    read = await until(petr, "I read 1 busy time")
    assert "In your open polls, the times you are busy are now ❌" in (read.text or "")
    redrawn = petr.messages[poll.message_id]
    assert [mark for mark, _t in slot_buttons(redrawn)][:3] == ["✅", "❌", "✅"]
    assert "Court hearing" not in str([entry.details for entry in await audit_entries(bot)])

    await petr.send_document("notes.ics", b"\x00\x01garbage", mime_type="text/calendar")
    refused = await until(petr, "calendar file")
    assert "does not look like a calendar file" in (refused.text or "")
    await petr.press("Forget my busy times")
    assert (await until(petr, "busy times are deleted")).text == "Your busy times are deleted."


async def audit_entries(bot: RunningBot) -> list[AuditEntry]:
    async with bot.runtime.database.transaction() as session:
        return list(await session.scalars(select(AuditEntry)))
