"""The stand-in's mail server and mail reader: a real SMTP server on 127.0.0.1 (aiosmtpd) that
keeps what it is sent, refuses or defers as told; and a person reading their mail, whose
calendar answers an invitation with an iTIP REPLY."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import aiosmtplib
import icalendar
import pytest

from bot.sandbox.mail import MailPerson, MailServer, calendar_part, shown
from tests.bot.test_imip import DOCTOR, _event, _mail


async def test_what_is_sent_arrives_and_is_read_as_a_mail_program_shows_it() -> None:
    async with MailServer.running() as server:
        await aiosmtplib.send(_mail(_event()), hostname="127.0.0.1", port=server.port)
        doctor = MailPerson(server, DOCTOR.address, DOCTOR.name)
        mail = await doctor.next_mail(within=5)
        assert mail.recipients == (DOCTOR.address,)
        text = shown(mail)
        assert "Případová konference PK-2026-0001" in text
        assert "📅 REQUEST" in text and "SEQUENCE 0" in text
        assert doctor.transcript() == text


async def test_the_calendars_answer_names_the_event_and_only_its_own_attendee() -> None:
    async with MailServer.running() as server:
        await aiosmtplib.send(_mail(_event()), hostname="127.0.0.1", port=server.port)
        doctor = MailPerson(server, DOCTOR.address, DOCTOR.name)
        invitation = await doctor.next_mail(within=5)
    at = datetime(2026, 11, 24, 9, tzinfo=UTC)
    raw = doctor.reply(invitation, "DECLINED", comment="Ordinace ten den zavřená.", at=at)
    reply = icalendar.Calendar.from_ical(calendar_part(_parsed(raw)) or b"")
    request = icalendar.Calendar.from_ical(calendar_part(invitation.message) or b"")
    (event,), (asked,) = reply.walk("VEVENT"), request.walk("VEVENT")
    assert str(reply["METHOD"]) == "REPLY"
    assert (event["UID"], event["SEQUENCE"]) == (asked["UID"], asked["SEQUENCE"])
    assert str(event["ORGANIZER"]) == str(asked["ORGANIZER"])
    attendee = event["ATTENDEE"]
    assert str(attendee) == f"mailto:{DOCTOR.address}"
    assert attendee.params["PARTSTAT"] == "DECLINED"
    assert str(event["COMMENT"]) == "Ordinace ten den zavřená."
    assert event.decoded("DTSTAMP") == at


async def test_the_server_refuses_defers_and_drops_as_told() -> None:
    async with MailServer.running() as server:
        server.behaviour.refused["nobody@example.cz"] = "550 5.1.1 No such user"
        server.behaviour.deferred["busy@example.cz"] = 1
        mail = _mail(_event())
        send = {"hostname": "127.0.0.1", "port": server.port}
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await aiosmtplib.send(mail, recipients=["nobody@example.cz"], **send)
        assert refused.value.recipients[0].code == 550
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as deferred:
            await aiosmtplib.send(mail, recipients=["busy@example.cz"], **send)
        assert deferred.value.recipients[0].code == 451
        await aiosmtplib.send(mail, recipients=["busy@example.cz"], **send)  # now it takes it
        server.behaviour.drop_next = 1
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await aiosmtplib.send(mail, **send)
        assert [m.recipients for m in server.mails] == [("busy@example.cz",)]


def _parsed(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed
