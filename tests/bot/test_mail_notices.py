"""The conference's mails as mail clients and calendars read them (bot.transport.mail.notices):
each copy parsed again from its bytes by Python's `email` package, its calendar part by
icalendar and vobject; and what a copy may not contain (anyone else's address, the child)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import icalendar
import vobject  # type: ignore[import-untyped]
from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.i18n import Translator
from bot.core.method_record import kind_label
from bot.core.method_tables import ConferenceKind
from bot.core.models import Conference, ConferenceSlot, Member
from bot.core.outbox import Letter
from bot.services import method, polls
from bot.services.invitation_mail import (
    MAIL_CANCEL,
    MAIL_INVITE,
    MAIL_POLL,
    MAIL_POLL_NUDGE,
    MAIL_REMINDER,
)
from tests.bot import mail_world as w
from tests.scheduling.test_invites import utc_times

PRAGUE = ZoneInfo("Europe/Prague")
CS = Translator("cs", PRAGUE)


def _everything(mail: EmailMessage) -> str:
    """All a recipient can see: every header and every part, decoded."""
    seen = [f"{name}: {value}" for name, value in mail.items()]
    for part in mail.walk():
        seen += [f"{name}: {value}" for name, value in part.items()]
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            seen.append(payload.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(seen)


def _parts(mail: EmailMessage) -> dict[str, str]:
    found = {}
    for part in mail.iter_parts():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found[part.get_content_type()] = payload.decode("utf-8")
    return found


def _calendar(mail: EmailMessage) -> tuple[icalendar.Calendar, object]:
    text = _parts(mail)["text/calendar"]
    return icalendar.Calendar.from_ical(text), vobject.readOne(text)


def _by_address(
    sent: list[tuple[Letter, EmailMessage | None]], kind: str
) -> dict[str, EmailMessage]:
    found = {}
    for letter, mail in sent:
        if letter.kind == kind:
            assert mail is not None, letter.key
            assert mail["To"].addresses[0].addr_spec == letter.address
            found[letter.address] = mail
    return found


async def _scheduled(
    database: Database, clock: FakeClock, cipher: Cipher
) -> tuple[w.World, list[tuple[Letter, EmailMessage | None]]]:
    world = await w.world(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    sent = await w.send_due(runtime)  # the poll's mails
    await w.schedule(database, clock, world)
    sent += await w.send_due(runtime)
    return world, sent


async def _before_start(
    database: Database, clock: FakeClock, world: w.World, ahead: timedelta
) -> datetime:
    """The clock set to `ahead` before the scheduled conference's start; that start."""
    starts = (await w.conference(database, world)).starts_at
    assert starts is not None
    clock.advance(starts - ahead - clock.now())
    return starts


async def test_no_copy_names_anyone_elses_address_nor_the_child(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world, sent = await _scheduled(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    await _before_start(database, clock, world, timedelta(hours=2))
    sent += await w.send_due(runtime)  # the guests' reminders
    await w.cancel(database, clock, world)
    sent += await w.send_due(runtime)
    kinds = {letter.kind for letter, _ in sent}
    assert kinds == {MAIL_POLL, MAIL_INVITE, MAIL_REMINDER, MAIL_CANCEL}
    assert len(sent) == 2 + 5 + 4 + 5
    for letter, mail in sent:
        assert mail is not None, letter.key
        seen = _everything(mail)
        assert letter.address in seen
        for other in w.ADDRESSES:
            if other != letter.address:
                assert other not in seen, (letter.kind, letter.address, other)
        for secret in w.CHILD:
            # Whole words: the birth year may be digits of a time stamp or a Message-ID.
            assert not re.search(rf"(?<!\w){re.escape(secret)}(?!\w)", seen), secret
        assert world.case_code in mail["Subject"]
        assert w.BOT in mail["From"].addresses[0].addr_spec


async def test_the_invitation_lands_in_each_readers_calendar(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world, sent = await _scheduled(database, clock, cipher)
    conference = await w.conference(database, world)
    invites = _by_address(sent, MAIL_INVITE)
    assert set(invites) == {w.COORDINATOR, w.TEACHER, w.OFFICER, w.HOSPITAL, w.DOCTOR}
    assert len({mail["Message-ID"] for mail in invites.values()}) == len(invites)
    for address, mail in invites.items():
        assert mail.get_content_type() == "multipart/alternative"
        assert list(_parts(mail)) == ["text/plain", "text/html", "text/calendar"]
        assert mail["Date"].datetime == clock.now()
        assert mail["Message-ID"].endswith("@mesto.example.cz>")
        assert mail["Message-ID"].startswith(f"<{clock.now():%Y%m%d%H%M%S}.")
        calendar_part = list(mail.iter_parts())[2]
        assert calendar_part.get_param("method") == "REQUEST"
        parsed, card = _calendar(mail)
        assert parsed["METHOD"] == "REQUEST"
        event = parsed.walk("VEVENT")[0]
        assert str(event["UID"]) == conference.uid
        assert int(event["SEQUENCE"]) == 0
        assert event["DTSTART"].params["TZID"] == "Europe/Prague"
        assert event["DTSTART"].dt == conference.starts_at
        local = conference.starts_at.astimezone(PRAGUE)
        assert (event["DTSTART"].dt.hour, event["DTSTART"].dt.minute) == (local.hour, local.minute)
        # Both parsers, by the zone's name and by the file's own VTIMEZONE alone.
        ends = conference.starts_at + timedelta(minutes=conference.duration_minutes)
        data = _parts(mail)["text/calendar"].encode()
        assert set(utc_times(data)) == {(conference.starts_at, ends)}
        assert str(event["ORGANIZER"]) == f"mailto:{w.BOT}"
        assert card.vevent.organizer.value == f"mailto:{w.BOT}"  # type: ignore[attr-defined]
        assert card.vevent.dtstart.value == conference.starts_at  # type: ignore[attr-defined]
        own = [
            a
            for a in card.vevent.attendee_list
            if a.value == f"mailto:{address}"  # type: ignore[attr-defined]
        ]
        assert len(own) == 1
        if address == w.COORDINATOR:
            assert own[0].params["ROLE"] == ["CHAIR"]
            continue
        assert own[0].params["PARTSTAT"] == ["NEEDS-ACTION"]
        assert own[0].params["RSVP"] == ["TRUE"]


async def test_the_text_says_the_chats_words_and_where_to_answer(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world, sent = await _scheduled(database, clock, cipher)
    conference = await w.conference(database, world)
    assert conference.starts_at is not None
    invites = _by_address(sent, MAIL_INVITE)
    when = CS.datetime(conference.starts_at)
    members_answer = CS.gettext(
        "Please answer in Round Table (Telegram) or with your calendar's buttons."
    )
    guests_answer = CS.gettext("Please answer with your calendar's buttons.")
    assert (
        members_answer != "Please answer in Round Table (Telegram) or with your calendar's buttons."
    )
    for address, mail in invites.items():
        parts = _parts(mail)
        assert mail["Subject"] == CS.gettext("Invitation: case conference {code}").format(
            code=world.case_code
        )
        for body in (parts["text/plain"], parts["text/html"]):
            assert when in body
            assert "Nemocnice Cheb" in body and "Policie Cheb" in body
            assert "MUDr. Eva Dvořáková" in body
        text = parts["text/plain"]
        if address in (w.HOSPITAL, w.DOCTOR):
            assert guests_answer in text and "Telegram" not in text
        elif address == w.COORDINATOR:
            assert guests_answer not in text and members_answer not in text
        else:
            assert members_answer in text
        assert "<script" not in parts["text/html"] and "http" not in parts["text/html"]


async def test_a_place_with_markup_is_shown_as_typed_and_never_as_html(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.world(database, clock, cipher)
    async with database.transaction() as session:
        conference = await session.get_one(Conference, world.conference_id)
        conference.place = '<img src="http://x.example/t.png"> & "sál"'
    await w.schedule(database, clock, world)
    sent = await w.send_due(w.runtime(database, clock, cipher))
    for mail in _by_address(sent, MAIL_INVITE).values():
        parts = _parts(mail)
        assert '<img src="http://x.example/t.png"> & "sál"' in parts["text/plain"]
        assert (
            "&lt;img src=&quot;http://x.example/t.png&quot;&gt; &amp; &quot;sál&quot;"
            in (parts["text/html"])
        )
        assert "<img" not in parts["text/html"]


async def test_a_new_time_goes_with_the_next_sequence_and_a_cancel_with_one_more(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world, _ = await _scheduled(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    before = (await w.conference(database, world)).starts_at
    assert before is not None
    clock.advance(timedelta(hours=1))
    await w.reschedule(database, clock, world)
    moved = _by_address(await w.send_due(runtime), MAIL_INVITE)
    now = await w.conference(database, world)
    assert now.starts_at is not None and now.starts_at != before
    assert set(moved) == {w.COORDINATOR, w.TEACHER, w.OFFICER, w.HOSPITAL, w.DOCTOR}
    change = CS.gettext("The time has changed: now {new}, before {old}.").format(
        new=CS.datetime(now.starts_at), old=CS.datetime(before)
    )
    for mail in moved.values():
        assert mail["Subject"] == CS.gettext("New time: case conference {code}").format(
            code=world.case_code
        )
        assert change in _parts(mail)["text/plain"]
        parsed, card = _calendar(mail)
        event = parsed.walk("VEVENT")[0]
        assert int(event["SEQUENCE"]) == 1
        assert event["DTSTART"].dt == now.starts_at
        assert int(card.vevent.sequence.value) == 1  # type: ignore[attr-defined]
    await w.cancel(database, clock, world)
    cancelled = _by_address(await w.send_due(runtime), MAIL_CANCEL)
    assert set(cancelled) == set(moved)
    for address, mail in cancelled.items():
        assert list(mail.iter_parts())[2].get_param("method") == "CANCEL"
        parsed, card = _calendar(mail)
        assert parsed["METHOD"] == "CANCEL"
        event = parsed.walk("VEVENT")[0]
        assert int(event["SEQUENCE"]) == 2
        assert str(event["STATUS"]) == "CANCELLED"
        assert str(event["UID"]) == now.uid
        assert card.vevent.uid.value == now.uid  # type: ignore[attr-defined]
        attendees = [a.value for a in card.vevent.attendee_list]  # type: ignore[attr-defined]
        assert f"mailto:{address}" in attendees


async def test_a_guests_poll_mail_lists_the_times_in_the_districts_zone(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.world(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    offered = _by_address(await w.send_due(runtime), MAIL_POLL)
    assert set(offered) == {w.HOSPITAL, w.DOCTOR}
    async with database.transaction() as session:
        times = [
            slot.starts_at
            for slot in await session.scalars(
                select(ConferenceSlot).where(ConferenceSlot.conference_id == world.conference_id)
            )
        ]
    assert times
    for mail in offered.values():
        assert mail.get_content_type() == "multipart/alternative"
        parts = _parts(mail)
        assert list(parts) == ["text/plain", "text/html"]
        assert mail["Subject"] == CS.gettext("Date poll: case conference {code}").format(
            code=world.case_code
        )
        for moment in times:
            local = moment.astimezone(PRAGUE)
            assert CS.datetime(moment) in parts["text/plain"]
            assert f"{local.hour}:{local.minute:02d}" in parts["text/plain"]
        assert world.coordinator.display_name in parts["text/plain"]
    # The nudge: the same list with a reminder on top, for a guest not answered yet.
    conference = await w.conference(database, world)
    clock.advance(conference.nudge_at - clock.now())
    async with database.transaction() as session:
        await polls.due_polls(session, now=clock.now())
    nudges = _by_address(await w.send_due(runtime), MAIL_POLL_NUDGE)
    assert set(nudges) == {w.HOSPITAL, w.DOCTOR}
    assert _parts(nudges[w.DOCTOR])["text/plain"].startswith(
        CS.gettext("Case conference {code}").format(code=world.case_code)
    )
    assert CS.gettext("Reminder") in _parts(nudges[w.DOCTOR])["text/plain"]


async def test_a_guests_reminder_is_text_without_a_calendar(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world, _ = await _scheduled(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    starts = await _before_start(database, clock, world, timedelta(days=2))
    reminders = _by_address(await w.send_due(runtime), MAIL_REMINDER)
    assert set(reminders) == {w.HOSPITAL, w.DOCTOR}
    for mail in reminders.values():
        assert list(_parts(mail)) == ["text/plain", "text/html"]
        assert mail["Subject"] == CS.gettext("Reminder: case conference {code}").format(
            code=world.case_code
        )
        assert CS.datetime(starts) in _parts(mail)["text/plain"]


async def test_an_english_speaking_member_reads_english_and_a_guest_the_default(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.world(database, clock, cipher)
    async with database.transaction() as session:
        teacher = await session.get_one(Member, world.teacher.member_id)
        teacher.locale = "en"
    await w.schedule(database, clock, world)
    invites = _by_address(await w.send_due(w.runtime(database, clock, cipher)), MAIL_INVITE)
    assert invites[w.TEACHER]["Subject"] == f"Invitation: case conference {world.case_code}"
    assert invites[w.DOCTOR]["Subject"] == CS.gettext("Invitation: case conference {code}").format(
        code=world.case_code
    )
    assert invites[w.DOCTOR]["Subject"] != invites[w.TEACHER]["Subject"]


async def test_the_invitation_says_the_kind_and_only_where_the_goal_is(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.world(database, clock, cipher)
    polled = await w.conference(database, world)
    async with database.transaction() as session:
        await method.start(
            session, cipher, polled.id, ConferenceKind.COURT, "Secret goal", now=clock.now()
        )
    runtime = w.runtime(database, clock, cipher)
    sent = await w.send_due(runtime)
    await w.schedule(database, clock, world)
    sent += await w.send_due(runtime)
    kind = CS.gettext("Kind: {kind}").format(kind=kind_label(ConferenceKind.COURT, CS))
    in_the_bot = CS.gettext(
        "The goal of the conference is in the bot: tap 🎯 Goal of the conference on the "
        "invitation in Telegram."
    )
    kept = CS.gettext(
        "The goal of the conference is kept in Round Table, not sent by e-mail; {name} "
        "will tell it to you."
    ).split("{name}")[0]
    for address, mail in _by_address(sent, MAIL_INVITE).items():
        assert "Secret goal" not in _everything(mail)
        text = _parts(mail)["text/plain"]
        assert kind in text
        if address in (w.HOSPITAL, w.DOCTOR):  # guests, not in the bot
            assert kept in text and in_the_bot not in text
        elif address == w.COORDINATOR:  # the chair's copy
            assert kept not in text and in_the_bot not in text
        else:
            assert in_the_bot in text and kept not in text
