"""Invitations by e-mail, end to end, with every part real: the bot over the Bot API stand-in,
a real SMTP server on 127.0.0.1 (aiosmtpd) that the bot sends to, and a real IMAP mailbox
(Dovecot) that the guest's calendar answers into and the bot reads.

The coordinator invites two members (one with a confirmed address) and a guest institution not
on Telegram; the guest gets the poll's mail and then the invitation with the event; the guest's
calendar accepts (a REPLY into the mailbox); the board shows it; a new time goes out by mail
with SEQUENCE + 1; a REPLY to the old sequence is ignored; cancelling sends the CANCEL."""

from __future__ import annotations

from email.message import EmailMessage

import icalendar
from sqlalchemy import select, update

from bot.core.clock import FakeClock
from bot.core.models import (
    AuditEntry,
    Conference,
    Invitation,
    Member,
    Rsvp,
)
from bot.sandbox.mail import MailPerson, MailServer, Received, calendar_part
from bot.services import calendar_replies
from bot.transport.telegram import delivery
from tests.e2e.conftest import RunningBot
from tests.e2e.mail_world import mail_on, mail_server, mailbox_read, read_mailbox, settings
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import (
    answer_poll,
    coordinator_teacher_officer,
    open_case,
    plan_shown,
    until,
)
from tests.e2e.test_guests import add_institutions, paediatrics_polled
from tests.mailbox import Mailbox, mailbox, needs_dovecot

# The fixtures of a bot with mail that reads a real mailbox.
__all__ = ["mail_on", "mail_server", "mailbox", "mailbox_read", "settings"]

pytestmark = needs_dovecot
ORGANIZER = "konference@cheb.example.cz"  # the address of mail_world.SENDER
PAEDIATRICS = "ordinace@pediatrie.example.cz"
JANA = "jana.mala@zs-hradebni.example.cz"


async def _mail_settled(bot: RunningBot) -> None:
    await bot.application.bot_data[delivery.MAIL_KEY].settle()


def _event(mail: Received) -> tuple[str, icalendar.cal.Component]:
    calendar = icalendar.Calendar.from_ical(calendar_part(mail.message) or b"")
    (event,) = calendar.walk("VEVENT")
    return str(calendar["METHOD"]), event


def _attendees(event: icalendar.cal.Component) -> list[str]:
    found = event.get("ATTENDEE", [])
    return [
        str(a).lower().removeprefix("mailto:")
        for a in (found if isinstance(found, list) else [found])
    ]


def _text(mail: Received) -> str:
    body = mail.message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


async def _audited_ignored(bot: RunningBot) -> list[str]:
    async with bot.runtime.database.transaction() as session:
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == calendar_replies.IGNORED)
        )
        return [str(entry.details.get("reason")) for entry in entries]


async def test_a_guest_is_invited_by_mail_and_answers_from_their_calendar(
    bot: RunningBot, clock: FakeClock, mailbox: Mailbox, mail_server: MailServer
) -> None:
    hana, jana, petr = await coordinator_teacher_officer(bot)
    await add_institutions(bot, ("Pediatrie Cheb", PAEDIATRICS))
    async with bot.runtime.database.transaction() as session:  # what /email confirmed
        await session.execute(
            update(Member).where(Member.display_name == "Jana").values(email=JANA)
        )
    doctor = MailPerson(mail_server, PAEDIATRICS, "Pediatrie Cheb")
    teacher = MailPerson(mail_server, JANA, "Jana Malá")

    # The plan: the school and the police ticked by the case's concern, the paediatrician
    # added as a guest by e-mail; the poll goes out.
    await open_case(bot, "Hana", "Jana", ["crime", "truancy"])
    await plan_shown(hana, "PK-2026-0001", listed="Next step")
    board = await paediatrics_polled(hana)
    poll_mail = await doctor.next_mail()
    assert "PK-2026-0001" in str(poll_mail.message["Subject"])
    assert "Svolává: Hana, OSPOD Cheb" in _text(poll_mail)  # who asks (in Czech, a guest's)
    assert calendar_part(poll_mail.message) is None  # the times, as text: no event yet

    # Hana enters the paediatrician's answers (as for a guardian without Telegram); the
    # school and the police answer in the chat; the first time is confirmed.
    await hana.press("✍ Answers of ✉ Pediatrie Cheb", message_id=board.message_id)
    entered = await until(hana, "invited by e-mail")
    await answer_poll(hana, entered, {0: 1})  # the practice: yes
    for person in (jana, petr):
        poll = await until(person, "When can")
        await answer_poll(person, poll, {0: 2})  # if need be: asked again by the invitation
    offer = await until(hana, "Every required invitee has answered")
    confirm = next(t for row in offer.buttons() for t, _d in row if "Confirm" in t)
    await hana.press(confirm, message_id=offer.message_id)
    await until(hana, "The case conference PK-2026-0001 is set for")
    await _mail_settled(bot)
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
    assert conference.uid is not None and conference.starts_at is not None

    # The guest's mail carries the event: REQUEST, SEQUENCE 0, organized by the bot's
    # mailbox, with the guest's own address as an attendee and nobody else's real one.
    invitation = await doctor.next_mail()
    method, event = _event(invitation)
    assert (method, str(event["UID"]), int(event["SEQUENCE"])) == ("REQUEST", conference.uid, 0)
    assert str(event["ORGANIZER"]).lower() == f"mailto:{ORGANIZER}"
    assert event.decoded("DTSTART") == conference.starts_at
    real = [a for a in _attendees(event) if not a.endswith(".invalid")]
    assert real == [PAEDIATRICS]
    assert "PK-2026-0001" in _text(invitation) and "@" not in _text(invitation).replace(
        ORGANIZER, ""
    )
    # The practice's yes to this time counts: the mail says so, and who invites.
    text = _text(invitation)
    assert "vaše odpověď „ano“, proto s vaší účastí počítáme; můžete to ještě změnit." in text
    assert "Svolává: Hana, OSPOD Cheb" in text
    # Jana has a confirmed address: she gets the mail too, beside the chat's invitation.
    await until(jana, "Will you come?")
    _method, hers = _event(await teacher.next_mail())
    assert [a for a in _attendees(hers) if not a.endswith(".invalid")] == [JANA]

    # The guest's calendar accepts (it already counts as accepted): the REPLY lands in the
    # mailbox, the bot reads it and the coordinator's board shows it.
    await mailbox.deliver(doctor.reply(invitation, "ACCEPTED", at=clock.now()))
    await read_mailbox(bot)
    attendance = await until(hana, "Accepted 1")
    assert "✅" in (attendance.text or "") and "Pediatrie Cheb" in (attendance.text or "")

    # A new time: the mail goes again with the same UID and SEQUENCE 1.
    await hana.press("🗓 New date", message_id=attendance.message_id)
    choice = await until(hana, "Times when everyone invited is free")
    await hana.press(choice.buttons()[0][0][0])
    await until(hana, "The case conference PK-2026-0001 moves to")
    board = await until(hana, "Accepted 0")
    await _mail_settled(bot)
    moved = await doctor.next_mail()
    method, event = _event(moved)
    assert (method, str(event["UID"]), int(event["SEQUENCE"])) == ("REQUEST", conference.uid, 1)
    # The calendar's late answer to the old time (SEQUENCE 0) is ignored, and audited.
    await mailbox.deliver(doctor.reply(invitation, "DECLINED", at=clock.now()))
    await read_mailbox(bot)
    assert await _audited_ignored(bot) == ["old sequence"]
    async with bot.runtime.database.transaction() as session:
        guest = (
            await session.scalars(select(Invitation).where(Invitation.email == PAEDIATRICS))
        ).one()
    assert guest.rsvp is Rsvp.PENDING  # the new time's answer is still open
    assert sorted(await mailbox.seen()) == [1, 2]  # both read, neither read again

    # Cancelled: the guest's calendar gets the CANCEL (SEQUENCE 2), and so does Jana's.
    await hana.press("❌ Cancel the conference", message_id=board.message_id)
    await until(hana, "Cancel the conference? Everyone invited is told")
    await hana.press("❌ Yes, cancel it")
    await until(hana, "The case conference PK-2026-0001 is cancelled.")
    await _mail_settled(bot)
    for person in (doctor, teacher):
        if person is teacher:
            await person.next_mail()  # the new time's invitation came first
        method, event = _event(await person.next_mail())
        assert (method, int(event["SEQUENCE"]), str(event["STATUS"])) == ("CANCEL", 2, "CANCELLED")
    assert len(doctor.mails) == 4  # the poll, the invitation, the new time, the cancellation
