"""Which mails are planned, to whom and when (bot.services.invitation_mail): in the same
transaction as the change, beside the chat's rows, and moot when sent for an earlier time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.mail_tables import MailAddress
from bot.core.models import Channel, Conference, Invitation, OutboxRow, OutboxStatus, Rsvp
from bot.services import cases, decisions, invitations, polls
from bot.services.invitation_mail import (
    MAIL_CANCEL,
    MAIL_INVITE,
    MAIL_POLL,
    MAIL_POLL_NUDGE,
    MAIL_REMINDER,
    plan_guest_reminders,
)
from bot.services.tasks import TaskError
from bot.transport.mail.notices import mail_kinds
from tests.bot import mail_world as w


async def test_a_poll_mails_each_guest_and_nobody_else(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.world(database, clock, cipher)
    rows = await w.mail_rows(database)
    assert {(row.kind, row.address, row.member_id) for row in rows} == {
        (MAIL_POLL, w.HOSPITAL, None),
        (MAIL_POLL, w.DOCTOR, None),
    }
    conference = await w.conference(database, world)
    assert all(row.expires_at == conference.deadline for row in rows)


async def test_the_poll_nudge_mails_only_guests_whose_availability_is_missing(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.world(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    await w.send_due(runtime)
    conference = await w.conference(database, world)
    clock.advance(conference.nudge_at - clock.now())
    async with database.transaction() as session:
        await polls.due_polls(session, now=clock.now())
    nudges = await w.mail_rows(database, MAIL_POLL_NUDGE)
    assert {row.address for row in nudges} == {w.HOSPITAL, w.DOCTOR}
    # The coordinator enters the hospital's availability before the nudge goes out.
    async with database.transaction() as session:
        await session.execute(
            update(Invitation)
            .where(Invitation.id == world.hospital)
            .values(answered_at=clock.now(), answered_by_id=world.coordinator.member_id)
        )
    sent = {letter.address: mail for letter, mail in await w.send_due(runtime)}
    assert sent[w.HOSPITAL] is None  # moot: answered
    assert sent[w.DOCTOR] is not None


async def test_the_invitation_is_mailed_to_every_invitee_with_a_working_address(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.world(database, clock, cipher)
    async with database.transaction() as session:
        session.add(MailAddress(address=w.OFFICER, failing_since=clock.now(), reply="550 5.1.1"))
    await w.schedule(database, clock, world)
    invites = await w.mail_rows(database, MAIL_INVITE)
    assert {(row.address, row.member_id) for row in invites} == {
        (w.COORDINATOR, world.coordinator.member_id),
        (w.TEACHER, world.teacher.member_id),
        (w.HOSPITAL, None),
        (w.DOCTOR, None),
    }
    assert all(row.payload["sequence"] == 0 for row in invites)
    async with database.transaction() as session:
        chat = list(
            await session.scalars(
                select(OutboxRow).where(
                    OutboxRow.channel == Channel.TELEGRAM, OutboxRow.kind == invitations.INVITE
                )
            )
        )
    # The members' chat messages stay (the place to answer), under keys of their own.
    assert {row.member_id for row in chat} >= {world.teacher.member_id, world.officer.member_id}
    assert not {row.key for row in chat} & {row.key for row in invites}


async def test_guests_are_reminded_two_days_and_two_hours_before(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.scheduled(database, clock, cipher)
    starts = (await w.conference(database, world)).starts_at
    assert starts is not None
    reminders = await w.mail_rows(database, MAIL_REMINDER)
    assert sorted((row.address, row.due_at) for row in reminders) == sorted(
        (address, starts - before)
        for address in (w.HOSPITAL, w.DOCTOR)
        for before in (timedelta(days=2), timedelta(hours=2))
    )
    assert all(row.member_id is None for row in reminders)


async def test_a_guests_decline_cancels_their_reminders_and_accepting_again_brings_them_back(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.scheduled(database, clock, cipher)
    async with database.transaction() as session:
        conference = await session.get_one(Conference, world.conference_id)
        await invitations.cancel_follow_ups(session, conference, world.doctor, now=clock.now())

    def statuses(rows: list[OutboxRow]) -> dict[str, set[OutboxStatus]]:
        found: dict[str, set[OutboxStatus]] = {}
        for row in rows:
            found.setdefault(row.address or "", set()).add(row.status)
        return found

    after_decline = statuses(await w.mail_rows(database, MAIL_REMINDER))
    assert after_decline == {
        w.DOCTOR: {OutboxStatus.CANCELLED},
        w.HOSPITAL: {OutboxStatus.PENDING},
    }
    async with database.transaction() as session:
        conference = await session.get_one(Conference, world.conference_id)
        guest = await session.get_one(Invitation, world.doctor)
        await plan_guest_reminders(session, conference, guest, now=clock.now())
        assert outbox.planned(session)
    assert statuses(await w.mail_rows(database, MAIL_REMINDER)) == {
        w.DOCTOR: {OutboxStatus.PENDING},
        w.HOSPITAL: {OutboxStatus.PENDING},
    }


async def test_a_new_time_cancels_the_old_mails_and_mails_the_next_sequence(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.scheduled(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    async with database.transaction() as session:  # in flight at the new time
        claimed = await outbox.claim_mail(session, now=clock.now(), worker="old", limit=2)
    assert {letter.kind for letter in claimed} == {MAIL_INVITE}
    clock.advance(timedelta(hours=1))
    await w.reschedule(database, clock, world)
    rows = await w.mail_rows(database)
    old = [row for row in rows if row.payload.get("sequence") == 0]
    assert {row.status for row in old if row.kind in (MAIL_INVITE, MAIL_REMINDER)} <= {
        OutboxStatus.CANCELLED,
        OutboxStatus.SENDING,
    }
    new = [row for row in rows if row.payload.get("sequence") == 1 and row.kind == MAIL_INVITE]
    assert {row.address for row in new} == {
        w.COORDINATOR,
        w.TEACHER,
        w.OFFICER,
        w.HOSPITAL,
        w.DOCTOR,
    }
    assert all(row.status is OutboxStatus.PENDING for row in new)
    reminders = [row for row in rows if row.kind == MAIL_REMINDER and row.payload["sequence"] == 1]
    assert len(reminders) == 4
    # A mail claimed for the old time is not sent any more.
    kinds = mail_kinds(runtime)
    assert [await kinds[letter.kind].render(letter) for letter in claimed] == [None, None]


async def test_a_cancellation_is_mailed_only_to_those_who_were_mailed_the_invitation(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.world(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    async with database.transaction() as session:
        session.add(MailAddress(address=w.OFFICER, failing_since=clock.now(), reply="550 5.1.1"))
    await w.schedule(database, clock, world)
    await w.send_due(runtime)
    async with database.transaction() as session:  # the officer's address works again
        await session.delete(await session.get_one(MailAddress, w.OFFICER))
        # The doctor's invitation was never sent: it is still pending when cancelled.
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.address == w.DOCTOR, OutboxRow.kind == MAIL_INVITE)
            .values(status=OutboxStatus.PENDING)
        )
    await w.cancel(database, clock, world)
    cancels = await w.mail_rows(database, MAIL_CANCEL)
    assert {(row.address, row.member_id) for row in cancels} == {
        (w.COORDINATOR, world.coordinator.member_id),
        (w.TEACHER, world.teacher.member_id),
        (w.HOSPITAL, None),
    }
    assert all(row.payload["sequence"] == 1 for row in cancels)
    pending = [row for row in await w.mail_rows(database) if row.status is OutboxStatus.PENDING]
    assert {row.kind for row in pending} == {MAIL_CANCEL}


async def test_nothing_is_mailed_to_a_guest_who_declined_as_a_reminder(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.scheduled(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    await w.send_due(runtime)
    async with database.transaction() as session:
        await session.execute(
            update(Invitation).where(Invitation.id == world.doctor).values(rsvp=Rsvp.DECLINED)
        )
    starts = (await w.conference(database, world)).starts_at
    assert starts is not None
    clock.advance(starts - timedelta(days=2) - clock.now())
    sent = {letter.address: mail for letter, mail in await w.send_due(runtime)}
    assert sent[w.DOCTOR] is None
    assert sent[w.HOSPITAL] is not None


async def test_a_new_round_of_the_poll_mails_the_guests_again_and_the_old_mail_is_moot(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.world(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    async with database.transaction() as session:  # the first round's mails, not yet sent
        first = await outbox.claim_mail(session, now=clock.now(), worker="old", limit=5)
    assert {letter.kind for letter in first} == {MAIL_POLL}
    async with database.transaction() as session:
        await decisions.next_window(
            session, world.coordinator, world.conference_id, now=clock.now(), defaults=w.DEFAULTS
        )
    second = [row for row in await w.mail_rows(database, MAIL_POLL) if row.payload["round"] == 2]
    assert {row.address for row in second} == {w.HOSPITAL, w.DOCTOR}
    kinds = mail_kinds(runtime)
    assert [await kinds[letter.kind].render(letter) for letter in first] == [None, None]
    assert all(mail is not None for _, mail in await w.send_due(runtime))


async def test_a_hand_over_mails_the_institutions_members_again_under_a_fresh_key(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await w.scheduled(database, clock, cipher)
    async with database.transaction() as session:
        conference = await session.get_one(Conference, world.conference_id)
        school = await session.scalar(
            select(Invitation).where(
                Invitation.conference_id == conference.id,
                Invitation.institution_id == world.teacher.institution_id,
            )
        )
        assert school is not None
        await invitations.reinvite(session, conference, school, now=clock.now(), again="l9")
    teacher = [row for row in await w.mail_rows(database, MAIL_INVITE) if row.address == w.TEACHER]
    assert len(teacher) == 2
    assert len({row.key for row in teacher}) == 2
    assert all(row.member_id == world.teacher.member_id for row in teacher)


async def test_closing_the_case_tells_each_guest_by_mail_once(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    """The members are told in the chat (tests/e2e/test_closing.py); the guests, who are not on
    Telegram, by mail: the code and the outcome, once per address, none to one that fails."""
    world = await w.scheduled(database, clock, cipher)
    runtime = w.runtime(database, clock, cipher)
    await w.send_due(runtime)
    async with database.transaction() as session:
        session.add(MailAddress(address=w.DOCTOR, failing_since=clock.now(), reply="550 5.1.1"))
    conference = await w.conference(database, world)
    for press in range(2):  # pressed twice: closed once, the second press refused
        async with database.transaction() as session:
            closing = cases.close_case(
                session,
                world.coordinator,
                conference.case_id,
                cases.Outcome.HANDED_OVER,
                now=clock.now(),
            )
            if press == 0:
                await closing
            else:
                with pytest.raises(TaskError):
                    await closing
    sent = await w.send_due(runtime)
    closed = [(letter, mail) for letter, mail in sent if letter.kind == cases.CLOSED_MAIL]
    assert [letter.address for letter, _mail in closed] == [w.HOSPITAL]
    ((_letter, mail),) = closed
    assert mail is not None
    assert mail["Subject"] == f"Uzavřeno: případ {world.case_code}"
    text = mail.get_body(("plain",))
    assert text is not None
    assert f"Případ {world.case_code} je uzavřen" in text.get_content()
    assert "Předáno jinému orgánu" in text.get_content()
    for secret in w.CHILD:
        assert secret not in mail.as_string()
