"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it is sent: the demo's and the
tests' mail server. It can refuse an address for good (5xx), refuse for a while (4xx), or drop
the connection, as a real server sometimes does, and it can ask for a login.

    async with MailServer.running() as server:
        ...  # send to server.url
        await server.wait_for(3)
        for mail in server.mails: mail.message["Subject"], mail.recipients
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from icalendar import Calendar, Event, vCalAddress


@dataclass(frozen=True)
class Received:
    """One mail as the server took it: the envelope and the message."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Behaviour:
    """What the server answers. Addresses in lower case."""

    refused: dict[str, str] = field(default_factory=dict)  # address -> "550 5.1.1 ..." for good
    deferred: dict[str, int] = field(default_factory=dict)  # address -> how many more 4xx
    drop_next: int = 0  # mails whose connection is cut before the server answers DATA
    login: tuple[str, str] | None = None  # required user and password


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        behaviour = self.server.behaviour
        lower = address.lower()
        if lower in behaviour.refused:
            return behaviour.refused[lower]
        if behaviour.deferred.get(lower, 0) > 0:
            behaviour.deferred[lower] -= 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        behaviour = self.server.behaviour
        if behaviour.drop_next > 0:
            behaviour.drop_next -= 1
            transport = server.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            return "421 4.4.2 Connection dropped"
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        self.server.keep(
            Received(str(envelope.mail_from), tuple(str(r) for r in envelope.rcpt_tos), content)
        )
        return "250 OK"


class MailServer:
    """aiosmtpd's SMTP on 127.0.0.1, on a free port, in the running event loop."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.mails: list[Received] = []
        self.port = 0
        self._arrived = asyncio.Condition()
        self._server: asyncio.base_events.Server | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, port: int = 0) -> AsyncIterator[MailServer]:
        server = cls()
        await server.start(port)
        try:
            yield server
        finally:
            await server.stop()

    @property
    def url(self) -> str:
        login = self.behaviour.login
        credentials = f"{login[0]}:{login[1]}@" if login else ""
        return f"smtp://{credentials}127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: SMTP(
                handler,
                hostname="roundtable.test",
                authenticator=self._authenticate,
                auth_require_tls=False,
                auth_required=self.behaviour.login is not None,
                data_size_limit=10 * 1024 * 1024,
            ),
            host="127.0.0.1",
            port=port,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    def keep(self, mail: Received) -> None:
        self.mails.append(mail)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()

    async def wait_for(self, count: int, within: float = 30.0) -> list[Received]:
        """Wait until at least `count` mails have arrived; all of them so far."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.mails) >= count)
        return list(self.mails)

    async def wait_for_id(self, message_id: str, within: float = 30.0) -> Received:
        """Wait until the mail with this Message-ID has arrived (other mails may arrive
        meanwhile, from the bot's own dispatcher too); that mail."""

        def found() -> Received | None:
            return next((m for m in self.mails if m.message["Message-ID"] == message_id), None)

        async with asyncio.timeout(within), self._arrived:
            while (arrived := found()) is None:
                await self._arrived.wait()
            return arrived

    def to(self, address: str) -> list[Received]:
        """The mails whose envelope went to `address`."""
        lower = address.lower()
        return [m for m in self.mails if lower in (r.lower() for r in m.recipients)]

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        login = self.behaviour.login
        if login is None or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        given = (data.login.decode(), data.password.decode())
        return AuthResult(success=given == login, handled=False)


class MailPerson:
    """Someone who is not on Telegram and reads their e-mail: what arrived for their address,
    as their mail program shows it, and the answer their calendar sends to an invitation
    (an iTIP REPLY, RFC 5546, sent as iMIP, RFC 6047)."""

    def __init__(self, server: MailServer, address: str, name: str) -> None:
        self.server = server
        self.address = address
        self.name = name
        self._read = 0

    @property
    def mails(self) -> list[Received]:
        return self.server.to(self.address)

    async def next_mail(self, within: float = 30.0) -> Received:
        """The next mail not yet read (waiting for it)."""
        async with asyncio.timeout(within):
            while len(self.mails) <= self._read:
                await self.server.wait_for(len(self.server.mails) + 1, within)
        mail = self.mails[self._read]
        self._read += 1
        return mail

    def transcript(self) -> str:
        return "\n\n".join(shown(mail) for mail in self.mails)

    def reply(
        self, mail: Received, partstat: str, *, comment: str = "", at: datetime | None = None
    ) -> bytes:
        """What the calendar sends when its Accept (ACCEPTED), Maybe (TENTATIVE) or Decline
        (DECLINED) button is pressed on this invitation: the event's UID and SEQUENCE, the
        organizer, and only this attendee, with the answer."""

        request = Calendar.from_ical(calendar_part(mail.message) or b"")
        (event,) = request.walk("VEVENT")
        stamp = at or datetime.now(UTC)
        answer = Calendar()
        answer.add("prodid", "-//Round Table stand-in//calendar//EN")
        answer.add("version", "2.0")
        answer.add("method", "REPLY")
        replied = Event()
        for name in ("UID", "SEQUENCE", "DTSTART", "DTEND", "SUMMARY", "ORGANIZER"):
            if name in event:
                replied.add(name, event[name])
        replied.add("dtstamp", stamp)
        attendee = vCalAddress(f"mailto:{self.address}")
        attendee.params["PARTSTAT"] = partstat
        attendee.params["CN"] = self.name
        replied.add("attendee", attendee)
        if comment:
            replied.add("comment", comment)
        answer.add_component(replied)
        organizer = str(event["ORGANIZER"]).removeprefix("mailto:").removeprefix("MAILTO:")
        message = EmailMessage()
        message["From"] = f"{self.name} <{self.address}>"
        message["To"] = organizer
        words = {"ACCEPTED": "Accepted", "TENTATIVE": "Tentative", "DECLINED": "Declined"}
        message["Subject"] = f"{words.get(partstat, partstat)}: {event.get('SUMMARY', '')}"
        message["Date"] = format_datetime(stamp)
        message["Message-ID"] = make_msgid(domain=self.address.rpartition("@")[2])
        message.set_content(f"{self.name} {words.get(partstat, partstat).lower()} the invitation.")
        message.add_alternative(
            answer.to_ical(), maintype="text", subtype="calendar", params={"method": "REPLY"}
        )
        return bytes(message)


def calendar_part(message: EmailMessage) -> bytes | None:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


def shown(mail: Received) -> str:
    """A mail as a person reads it: who from, the subject, the text, and what the calendar
    makes of its invitation."""
    message = mail.message
    lines = [f"✉ {message['From']} · {message['Subject']}"]
    body = message.get_body(preferencelist=("plain",))
    if body is not None:
        lines.append(str(body.get_content()).strip())
    calendar = calendar_part(message)
    if calendar is not None:
        parsed = Calendar.from_ical(calendar)
        for event in parsed.walk("VEVENT"):
            method = str(parsed.get("METHOD", ""))
            lines.append(
                f"📅 {method} · {event.get('SUMMARY', '')} · "
                f"{event.decoded('DTSTART').isoformat()} · SEQUENCE {event.get('SEQUENCE', 0)}"
            )
    return "\n".join(lines)
