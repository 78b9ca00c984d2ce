"""An invitation by e-mail that lands in a real calendar: an iMIP message (RFC 6047).

One message per recipient, `multipart/alternative` with the text, the HTML and the calendar
(`text/calendar; method=REQUEST` or `CANCEL`) carrying the same iCalendar object as the chat's
file, so Outlook, Google Calendar and Apple Calendar show the event and its answer buttons. The
calendar part is base64: its CRLF line ends and 75-octet folding reach the client byte for byte.

Privacy: a recipient's copy may name no other person's address. Every ATTENDEE of the calendar
must be the recipient's own address, the organizer's mailbox, or a placeholder on the reserved
`.invalid` domain (RFC 2606) that never delivers; anything else is refused before it is sent.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from icalendar import Calendar

METHODS = frozenset({"REQUEST", "CANCEL"})
PLACEHOLDER_TLD = ".invalid"


class ForeignAddress(ValueError):
    """The calendar names an address that is neither the recipient's nor a placeholder."""


@dataclass(frozen=True)
class Mailbox:
    address: str
    name: str = ""


def invitation_mail(
    *,
    sender: Mailbox,
    recipient: Mailbox,
    subject: str,
    text: str,
    html: str,
    calendar: bytes,
    sent_at: datetime,
) -> EmailMessage:
    """The iMIP message of `calendar` (an iCalendar object with METHOD REQUEST or CANCEL whose
    ORGANIZER is `sender`) for one recipient."""
    method = _method(calendar, sender, recipient)
    message = _headers(sender, recipient, subject, sent_at)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    message.add_alternative(
        calendar,
        maintype="text",
        subtype="calendar",
        params={"method": method, "charset": "UTF-8"},
    )
    return message


def notice_mail(
    *,
    sender: Mailbox,
    recipient: Mailbox,
    subject: str,
    text: str,
    html: str,
    sent_at: datetime,
) -> EmailMessage:
    """A mail without a calendar (a reminder, a poll's mail): `multipart/alternative` with the
    text and the HTML."""
    message = _headers(sender, recipient, subject, sent_at)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _headers(sender: Mailbox, recipient: Mailbox, subject: str, sent_at: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = _address(sender)
    message["To"] = _address(recipient)
    message["Subject"] = subject
    message["Date"] = format_datetime(sent_at)
    # Unique without the machine's clock or name: the injected clock's moment and randomness.
    stamp = sent_at.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    domain = sender.address.rpartition("@")[2]
    message["Message-ID"] = f"<{stamp}.{secrets.token_hex(12)}@{domain}>"
    return message


def _method(calendar: bytes, sender: Mailbox, recipient: Mailbox) -> str:
    parsed = Calendar.from_ical(calendar)
    method = str(parsed.get("METHOD", "")).upper()
    if method not in METHODS:
        raise ValueError(f"an invitation's calendar has METHOD REQUEST or CANCEL, not {method!r}")
    events = parsed.walk("VEVENT")
    if not events:
        raise ValueError("an invitation's calendar holds an event")
    for event in events:
        if _bare(str(event.get("ORGANIZER", ""))) != _bare(sender.address):
            raise ValueError("the calendar's ORGANIZER is not the sender's mailbox")
    allowed = {_bare(sender.address), _bare(recipient.address)}
    for component in parsed.walk():  # an alarm's ATTENDEE is an address too
        attendees = component.get("ATTENDEE", [])
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            address = _bare(str(attendee))
            if address not in allowed and not address.endswith(PLACEHOLDER_TLD):
                raise ForeignAddress("a recipient's copy names another person's address")
    return method


def _bare(value: str) -> str:
    """An address as compared: without "mailto:", in lower case."""
    value = value.strip()
    if value.lower().startswith("mailto:"):
        value = value[len("mailto:") :]
    return value.lower()


def _address(mailbox: Mailbox) -> Address:
    local, _, domain = mailbox.address.rpartition("@")
    return Address(display_name=mailbox.name, username=local, domain=domain)
