"""Calendar replies read from the organizer's mailbox (bot.services.calendar_replies), in the
shapes real clients send (tests/fixtures/replies): applied exactly as the chat's buttons when
they agree with what was sent, else ignored, audited, and nothing changed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.mail_tables import InboundMail
from bot.core.models import (
    AuditEntry,
    Conference,
    Invitation,
    InvitationKind,
    Member,
    OutboxRow,
    OutboxStatus,
    Role,
    Rsvp,
)
from bot.services import calendar_replies, decisions, invitation_views, invitations
from bot.services.board import board_of
from bot.services.calendar_replies import Applied, Ignored
from bot.services.invitation_mail import MAIL_REMINDER
from bot.services.members import Actor
from bot.services.planning import Defaults
from tests.bot.test_conferences import _school_poll, _slots, _team
from tests.bot.test_members import _join
from tests.replies import ORGANIZER, SHAPES, reply_mail

TEACHER = "Jana.Skolni@zs-cheb.cz"
GUEST = "ordinace@pediatr-cheb.cz"


@dataclass
class World:
    conference_id: int
    uid: str
    sequence: int
    school: int  # the school's invitation
    guest: int  # the paediatrician's invitation
    teacher_id: int
    coordinator: Actor

    def reply(self, shape: str, attendee: str, **more: Any) -> bytes:
        """The reply `shape` (tests/replies.py) sends for `attendee` to this conference as
        it is now (its UID and SEQUENCE)."""
        return reply_mail(shape, uid=self.uid, sequence=self.sequence, attendee=attendee, **more)


async def _world(database: Database, clock: FakeClock) -> World:
    """A scheduled conference: the school (whose teacher confirmed an address) and a guest."""
    coordinator, teacher = await _team(database, clock)
    async with database.transaction() as session:
        member = await session.get_one(Member, teacher.member_id)
        member.email = TEACHER.lower()
    started = await _school_poll(database, clock, coordinator, teacher)
    async with database.transaction() as session:
        guest = Invitation(
            conference_id=started.conference_id,
            kind=InvitationKind.GUEST,
            email=GUEST,
            guest_name="MUDr. Petr Svoboda",
            required=False,
        )
        session.add(guest)
        await session.flush()
        guest_id = guest.id
    slot = (await _slots(database, started.conference_id))[0]
    async with database.transaction() as session:
        done = await decisions.confirm(
            session, coordinator, started.conference_id, slot.id, now=clock.now()
        )
    assert isinstance(done, decisions.Scheduled)
    async with database.transaction() as session:
        conference = await session.get_one(Conference, started.conference_id)
        assert conference.uid is not None
        return World(
            conference.id,
            conference.uid,
            conference.sequence,
            started.targets[0].invitation_id,
            guest_id,
            teacher.member_id,
            coordinator,
        )


async def _apply(
    database: Database, clock: FakeClock, cipher: Cipher, raw: bytes, *, size: int | None = None
) -> calendar_replies.Outcome:
    async with database.transaction() as session:
        return await calendar_replies.apply(
            session, raw, now=clock.now(), cipher=cipher, organizer=ORGANIZER, size=size
        )


async def _invitation(database: Database, invitation_id: int) -> Invitation:
    async with database.transaction() as session:
        return await session.get_one(Invitation, invitation_id)


async def _actions(database: Database) -> list[tuple[str, str | None, dict[str, object]]]:
    async with database.transaction() as session:
        rows = await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action.in_(["invitation.answered", calendar_replies.IGNORED]))
            .order_by(AuditEntry.id)
        )
        return [(row.action, row.subject_id, dict(row.details)) for row in rows]


async def _pending(database: Database, kind: str) -> list[OutboxRow]:
    async with database.transaction() as session:
        return list(
            await session.scalars(
                select(OutboxRow).where(
                    OutboxRow.kind == kind, OutboxRow.status == OutboxStatus.PENDING
                )
            )
        )


@pytest.mark.parametrize("shape", SHAPES)
async def test_each_client_s_accept_tentative_and_decline_count_as_the_chat_s_buttons(
    database: Database, clock: FakeClock, cipher: Cipher, shape: str
) -> None:
    world = await _world(database, clock)

    def mail(partstat: str, comment: str | None = None) -> bytes:
        # TEACHER as the teacher's calendar writes it; the bot keeps lower case.
        return world.reply(shape, TEACHER, partstat=partstat, comment=comment)

    accepted = await _apply(database, clock, cipher, mail("ACCEPTED"))
    assert isinstance(accepted, Applied)
    assert accepted.rsvp is Rsvp.ACCEPTED and accepted.member_id == world.teacher_id
    assert accepted.view is not None and accepted.view.rsvp is Rsvp.ACCEPTED
    invitee = next(i for i in accepted.board.invitees if i.id == world.school)
    assert invitee.rsvp is Rsvp.ACCEPTED and invitee.rsvp_by == "Person 2"
    assert accepted.planned  # the reminders, 2 days and 2 hours before
    reminders = await _pending(database, invitations.REMINDER)
    assert {row.member_id for row in reminders} == {world.teacher_id}
    assert not await _pending(database, invitations.RSVP_NUDGE)

    tentative = await _apply(database, clock, cipher, mail("TENTATIVE"))
    assert isinstance(tentative, Applied) and tentative.rsvp is Rsvp.TENTATIVE

    reason = "Jsem u soudu, omlouvám se; přijde kolegyně"
    declined = await _apply(database, clock, cipher, mail("DECLINED", reason))
    assert isinstance(declined, Applied) and declined.flagged
    invitation = await _invitation(database, world.school)
    assert invitation.rsvp is Rsvp.DECLINED
    assert invitation_views.reason_of(invitation, cipher) == reason
    assert reason.encode() not in (invitation.decline_reason or b"")  # encrypted at rest
    flags = await _pending(database, invitations.FLAG)
    assert sorted(row.payload["what"] for row in flags) == ["declined", "reason"]
    assert {row.member_id for row in flags} == {world.coordinator.member_id}
    assert not await _pending(database, invitations.REMINDER)  # cancelled by the decline
    async with database.transaction() as session:
        board = await board_of(session, await session.get_one(Conference, world.conference_id))
    assert next(i for i in board.invitees if i.id == world.school).rsvp is Rsvp.DECLINED

    answered = [(a, s, d) for a, s, d in await _actions(database) if a == "invitation.answered"]
    assert [d["answer"] for _a, _s, d in answered] == ["accepted", "tentative", "declined"]
    assert all(d["channel"] == "mail" and s == str(world.school) for _a, s, d in answered)


@pytest.mark.parametrize("shape", ["google", "outlook", "apple"])
async def test_a_guest_not_on_telegram_answers_from_their_calendar(
    database: Database, clock: FakeClock, cipher: Cipher, shape: str
) -> None:
    world = await _world(database, clock)
    raw = world.reply(shape, GUEST)
    outcome = await _apply(database, clock, cipher, raw)
    assert isinstance(outcome, Applied)
    assert outcome.member_id is None and outcome.view is None and outcome.messages == []
    guest = next(i for i in outcome.board.invitees if i.id == world.guest)
    assert guest.rsvp is Rsvp.ACCEPTED and guest.rsvp_by is None
    invitation = await _invitation(database, world.guest)
    assert invitation.rsvp is Rsvp.ACCEPTED and invitation.rsvp_by_id is None
    # A guest's decline with a reason reaches the coordinator as a member's does.
    declined = world.reply(shape, GUEST, partstat="DECLINED", comment="Ordinace je ten den zavřená")
    outcome = await _apply(database, clock, cipher, declined)
    assert isinstance(outcome, Applied) and outcome.flagged
    flags = await _pending(database, invitations.FLAG)
    assert sorted(row.payload["what"] for row in flags) == ["declined", "reason"]
    # Mailed reminders (2 days and 2 hours before) go with the decline, and come back with an
    # acceptance after it.
    assert [r for r in await _pending(database, MAIL_REMINDER) if r.address == GUEST] == []
    again = world.reply(shape, GUEST, message_id=f"<again-{shape}@example.cz>")
    assert isinstance(await _apply(database, clock, cipher, again), Applied)
    reminders = [r for r in await _pending(database, MAIL_REMINDER) if r.address == GUEST]
    assert sorted(r.key.rsplit("-", 1)[1] for r in reminders) == ["2d", "2h"]


async def _nothing_changed(database: Database, world: World) -> None:
    for invitation_id in (world.school, world.guest):
        invitation = await _invitation(database, invitation_id)
        assert invitation.rsvp is Rsvp.PENDING and invitation.rsvp_at is None
    assert not await _pending(database, invitations.FLAG)
    assert not await _pending(database, invitations.REMINDER)


async def _ignored(
    database: Database, clock: FakeClock, cipher: Cipher, raw: bytes, *, size: int | None = None
) -> Ignored:
    outcome = await _apply(database, clock, cipher, raw, size=size)
    assert isinstance(outcome, Ignored)
    return outcome


async def test_replies_that_do_not_agree_with_what_was_sent_are_ignored_and_audited(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await _world(database, clock)

    def mail(**kw: object) -> bytes:
        values: dict[str, object] = {
            "uid": world.uid,
            "sequence": world.sequence,
            "attendee": TEACHER,
        }
        values.update(kw)
        return reply_mail(str(values.pop("shape", "google")), **values)

    plain = (
        b"From: " + TEACHER.encode() + b"\r\nTo: " + ORGANIZER.encode() + b"\r\n"
        b"Subject: Re: Case conference\r\nMessage-ID: <plain@skola>\r\n\r\nPrijdu.\r\n"
    )
    unclosed = mail(shape="rfc6047").replace(b"END:VEVENT\r\n", b"")
    garbled = mail(shape="sabre").replace(b"ATTENDEE;PARTSTAT=", b'ATTENDEE;PARTSTAT="')
    request = mail(shape="rfc6047").replace(b"METHOD:REPLY", b"METHOD:REQUEST")
    huge = mail(shape="rfc6047") + b"x" * (calendar_replies.MAX_BYTES + 1)
    # A From: of 40,000 addresses: the structured header parser would take minutes over it.
    crowd = b"From: " + b"a, " * 40_000 + mail(shape="rfc6047").split(b"\r\n", 1)[1]
    crowd_in_range = b"X-Note: " + b"a, " * 4_000 + b"\r\n" + mail(shape="rfc6047")
    # A NUL in the UID or the address, which PostgreSQL refuses to store or compare.
    nul_uid = mail(shape="rfc6047").replace(world.uid.encode(), world.uid.encode() + b"\x00x")
    nul_address = mail(shape="rfc6047").replace(b"mailto:", b"mailto:\x00", 1)
    cases = [
        ("old sequence", mail(sequence=world.sequence - 1) if world.sequence else None),
        ("unknown sequence", mail(sequence=world.sequence + 1)),
        ("unknown address", mail(attendee="someone.else@zs-cheb.cz")),
        ("forged sender", mail(sender="attacker@example.com")),
        ("forged sender", mail(attendee=GUEST, sender=TEACHER)),
        ("unknown event", mail(uid="not-ours@roundtable")),
        ("no answer", mail(partstat="NEEDS-ACTION")),
        ("no answer", mail(partstat="DELEGATED")),
        ("malformed", unclosed),
        ("malformed", garbled),
        ("no calendar", plain),
        ("not a reply", request),
        ("too large", huge),
        ("own mail", mail(sender=ORGANIZER)),
        ("no calendar", b"\x00\xff\xfe garbage \r\n\r\n\x80"),
        ("too large", crowd),
        ("forged sender", crowd_in_range.replace(b"From: ", b"From: " + b"b, " * 400, 1)),
        ("malformed", nul_uid),
        ("malformed", nul_address),
    ]
    expected = []
    for reason, raw in cases:
        if raw is None:
            continue
        outcome = await _ignored(database, clock, cipher, raw)
        assert outcome.reason == reason, reason
        expected.append(reason)
    # Too large, known from its header and the server's size without downloading it.
    header = mail(shape="outlook").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    outcome = await _ignored(database, clock, cipher, header, size=50_000_000)
    assert outcome.reason == "too large"
    expected.append("too large")
    await _nothing_changed(database, world)
    audited = await _actions(database)
    assert [d["reason"] for _a, _s, d in audited] == expected
    assert all(a == calendar_replies.IGNORED for a, _s, _d in audited)
    # Only the conference is named, never an address or what the mail said.
    for _a, subject, details in audited:
        assert subject in (None, str(world.conference_id))
        assert set(details) == {"reason"}
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(InboundMail)) == len(expected)


async def test_an_answer_to_an_earlier_time_or_a_cancelled_conference_changes_nothing(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await _world(database, clock)
    old = world.reply("outlook", TEACHER)
    async with database.transaction() as session:
        coordinator = world.coordinator
        times = await decisions.new_times(
            session,
            coordinator,
            world.conference_id,
            now=clock.now(),
            defaults=Defaults(),
        )
        moved = await decisions.reschedule(
            session,
            coordinator,
            world.conference_id,
            times[0],
            now=clock.now(),
        )
    assert isinstance(moved, decisions.Scheduled)
    assert (await _ignored(database, clock, cipher, old)).reason == "old sequence"
    current = reply_mail("outlook", uid=world.uid, sequence=world.sequence + 1, attendee=TEACHER)
    async with database.transaction() as session:
        await invitations.cancel_conference(
            session,
            world.coordinator,
            world.conference_id,
            now=clock.now(),
        )
    assert (await _ignored(database, clock, cipher, current)).reason == "not scheduled"
    await _nothing_changed(database, world)


async def test_the_same_mail_twice_is_applied_once(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await _world(database, clock)
    raw = world.reply("thunderbird", TEACHER, partstat="DECLINED")
    first = await _apply(database, clock, cipher, raw)
    assert isinstance(first, Applied) and first.flagged
    # The teacher accepts in the chat meanwhile; the same mail read again changes nothing.
    again = await _apply(database, clock, cipher, raw)
    assert again == Ignored("duplicate")
    without_id = raw.replace(b"Message-ID:", b"X-Old-Message-ID:")
    assert isinstance(await _apply(database, clock, cipher, without_id), Applied)
    assert await _apply(database, clock, cipher, without_id) == Ignored("duplicate")
    answered = [a for a, _s, _d in await _actions(database) if a == "invitation.answered"]
    assert len(answered) == 2
    assert len(await _pending(database, invitations.FLAG)) == 1  # the second decline: no flag


async def test_a_colleague_of_the_one_who_answered_cannot_answer_by_mail_either(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await _world(database, clock)
    async with database.transaction() as session:
        teacher = await session.get_one(Member, world.teacher_id)
        institution = teacher.institution_id
    colleague = await _join(database, clock, Role.REFERRER, 7)
    async with database.transaction() as session:
        member = await session.get_one(Member, colleague.member_id)
        assert member.institution_id == institution
        member.email = "kolega@zs-cheb.cz"
    mine = world.reply("google", TEACHER)
    assert isinstance(await _apply(database, clock, cipher, mine), Applied)
    theirs = world.reply("google", "kolega@zs-cheb.cz", partstat="DECLINED")
    assert (await _ignored(database, clock, cipher, theirs)).reason == "unknown address"
    assert (await _invitation(database, world.school)).rsvp is Rsvp.ACCEPTED


async def test_two_readers_with_the_same_mail_at_once_apply_it_once(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await _world(database, clock)
    raw = world.reply("outlook", TEACHER)
    outcomes = await asyncio.gather(*(_apply(database, clock, cipher, raw) for _ in range(3)))
    assert sorted(type(outcome).__name__ for outcome in outcomes) == [
        "Applied",
        "Ignored",
        "Ignored",
    ]
    answered = [a for a, _s, _d in await _actions(database) if a == "invitation.answered"]
    assert len(answered) == 1


async def test_an_address_two_invitations_share_answers_for_neither(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    """An office mailbox the teacher confirmed, which is also the guest's: whose answer a reply
    from it is cannot be told."""
    world = await _world(database, clock)
    async with database.transaction() as session:
        guest = await session.get_one(Invitation, world.guest)
        guest.email = TEACHER.lower()
    raw = world.reply("google", TEACHER)
    outcome = await _ignored(database, clock, cipher, raw)
    assert outcome.reason == "ambiguous address"
    await _nothing_changed(database, world)
