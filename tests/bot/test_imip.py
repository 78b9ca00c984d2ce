"""An invitation by e-mail as a mail client and a calendar read it (RFC 6047): the message is
parsed by Python's `email` package, its calendar part by icalendar and vobject."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import icalendar
import pytest
import vobject  # type: ignore[import-untyped]

from bot.transport.mail.imip import ForeignAddress, Mailbox, invitation_mail
from scheduling.invites import Attendee, cancel, request
from tests.scheduling.test_invites import conference

BOT = Mailbox("ospod@cheb.example.cz", "OSPOD Cheb")
DOCTOR = Mailbox("mudr@nemocnice.example.cz", "MUDr. Dvořáková")
SENT = datetime(2026, 11, 23, 7, 15, tzinfo=UTC)
# The doctor's copy: the chair and the institutions by name, only the doctor's own address.
COPY = (
    Attendee("coordinator-7@roundtable.invalid", "OSPOD Cheb – Jana", "CHAIR", "ACCEPTED"),
    Attendee("invitation-1@roundtable.invalid", "Policie Cheb", "REQ-PARTICIPANT", "NEEDS-ACTION"),
    Attendee(DOCTOR.address, "Nemocnice Cheb", "REQ-PARTICIPANT", "NEEDS-ACTION"),
)


def _mail(calendar: bytes, recipient: Mailbox = DOCTOR) -> EmailMessage:
    built = invitation_mail(
        sender=BOT,
        recipient=recipient,
        subject="Případová konference PK-2026-0001",
        text="Pozvánka na případovou konferenci PK-2026-0001.",
        html="<p>Pozvánka na případovou konferenci <b>PK-2026-0001</b>.</p>",
        calendar=calendar,
        sent_at=SENT,
    )
    # As the recipient's server gets it: the bytes on the wire, parsed again.
    received = message_from_bytes(built.as_bytes(), policy=policy.default)
    assert isinstance(received, EmailMessage)
    return received


def _event() -> bytes:
    return request(
        replace(conference(), organizer_address=BOT.address, attendees=COPY),
    )


def test_the_invitation_is_text_html_and_the_calendar_in_that_order() -> None:
    mail = _mail(_event())
    assert mail.get_content_type() == "multipart/alternative"
    parts = list(mail.iter_parts())
    assert [part.get_content_type() for part in parts] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    assert parts[0].get_content().strip() == "Pozvánka na případovou konferenci PK-2026-0001."
    assert "<b>PK-2026-0001</b>" in parts[1].get_content()
    assert mail["Subject"] == "Případová konference PK-2026-0001"
    assert mail["From"].addresses[0].addr_spec == BOT.address
    assert mail["To"].addresses[0].display_name == "MUDr. Dvořáková"
    assert mail["Message-ID"].endswith("@cheb.example.cz>")


def test_the_calendar_part_carries_the_chats_file_byte_for_byte() -> None:
    calendar = _event()
    part = list(_mail(calendar).iter_parts())[2]
    assert part.get_param("method") == "REQUEST"
    assert part.get_content_charset() == "utf-8"
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_payload(decode=True) == calendar  # CRLF and folding intact
    text = calendar.decode()
    assert icalendar.Calendar.from_ical(text).walk("VEVENT")[0]["UID"] == conference().uid
    assert vobject.readOne(text).vevent.organizer.value == f"mailto:{BOT.address}"


def test_a_cancellation_goes_with_method_cancel() -> None:
    calendar = cancel(
        replace(conference(), organizer_address=BOT.address, attendees=COPY, sequence=2)
    )
    part = list(_mail(calendar).iter_parts())[2]
    assert part.get_param("method") == "CANCEL"


def test_a_copy_naming_another_persons_address_is_refused() -> None:
    guardian = Attendee("rodic@seznam.example.cz", "Guardian 1", "OPT-PARTICIPANT", "NEEDS-ACTION")
    leaking = (*COPY, guardian)
    calendar = request(replace(conference(), organizer_address=BOT.address, attendees=leaking))
    with pytest.raises(ForeignAddress):
        _mail(calendar)


def test_a_calendar_organized_by_someone_else_or_without_a_method_is_refused() -> None:
    foreign = request(
        replace(conference(), organizer_address="x@elsewhere.example", attendees=COPY)
    )
    with pytest.raises(ValueError, match="ORGANIZER"):
        _mail(foreign)
    published = _event().replace(b"METHOD:REQUEST", b"METHOD:PUBLISH")
    with pytest.raises(ValueError, match="METHOD"):
        _mail(published)


def test_an_alarm_naming_another_persons_address_is_refused_too() -> None:
    alarm = (
        b"BEGIN:VALARM\r\nACTION:EMAIL\r\nTRIGGER:-PT1H\r\nSUMMARY:x\r\nDESCRIPTION:x\r\n"
        b"ATTENDEE:mailto:rodic@seznam.example.cz\r\nEND:VALARM\r\nEND:VEVENT\r\n"
    )
    calendar = _event().replace(b"END:VEVENT\r\n", alarm)
    with pytest.raises(ForeignAddress):
        _mail(calendar)


def test_a_calendar_without_an_event_is_refused() -> None:
    empty = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"
    with pytest.raises(ValueError, match="event"):
        _mail(empty)
