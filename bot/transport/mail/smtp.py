"""Sending one mail to one address over SMTP (aiosmtplib), on connections kept open.

`SmtpSender(url, mail_from, connections=N)` reads the server from `ROUNDTABLE_SMTP_URL`:
smtp://host:port upgrades with STARTTLS when the server offers it, smtp://…?starttls=require
refuses to send without it, smtps:// is TLS from the first byte; user:password in the URL
(URL-encoded: `%40` for an "@" in a user name). The envelope's sender is the address of
`ROUNDTABLE_MAIL_FROM`.

Up to N connections are kept open and reused; one the server has closed (idle too long, a
restart) is opened again before it is used. A failure is told apart:

- `Temporary`: try again later – a 4xx reply, the connection lost or timed out;
- `Unavailable` (a kind of `Temporary`): the server cannot be used now, whatever the mail – no
  connection, the login refused, STARTTLS missing, or a refusal of the sender rather than of the
  recipient (5.7.x: relaying denied, authentication required, the sending host blocked). A
  setting or an outage to fix: the mail waits for it (its attempts are not used up), nothing is
  lost and no address is marked;
- `Refused`: the server refused the recipient's mailbox for good (5xx to RCPT: 5.1.x no such
  user or domain, 5.2.x but 5.2.2 mailbox full, or a bare 550/551/553): the address fails;
- `Rejected`: the server refused this message for good (5xx after DATA): the address may be
  fine, the message is not sent.

Logs name the server's reply code and the address's domain only, never the local part or
anything of the content.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPTimeoutError,
)

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30.0
# A connection unused for longer is checked (NOOP) before a mail goes on it: servers close idle
# connections after a minute or so, and a mail sent into a closed one would fail for nothing.
IDLE_CHECK_SECONDS = 20.0
_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


class SendError(Exception):
    """The mail was not sent. The message holds no address and no content."""


class Temporary(SendError):
    """Not now; the same mail may go later."""


class Unavailable(Temporary):
    """The server cannot take any mail now (see the module's docstring); no fault of the mail."""


class LoginFailed(Unavailable):
    """The server refused the user and password of ROUNDTABLE_SMTP_URL."""


class Refused(SendError):
    """The server refused the recipient for good (5xx); `reply` is its code, e.g. "550 5.1.1"."""

    def __init__(self, reply: str) -> None:
        super().__init__(f"the server refused the address: {reply}")
        self.reply = reply


class Rejected(SendError):
    """The server refused this message for good (5xx after its content)."""

    def __init__(self, reply: str) -> None:
        super().__init__(f"the server refused the message: {reply}")
        self.reply = reply


@dataclass(frozen=True)
class Server:
    """Where and how to connect, read from the SMTP URL."""

    hostname: str
    port: int | None
    use_tls: bool  # smtps://: TLS from the start
    start_tls: bool | None  # None: when offered; True: required
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> Server:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("the SMTP URL must be smtp://host[:port] or smtps://host[:port]")
        starttls = parse_qs(parts.query).get("starttls", [""])[-1].lower()
        if starttls not in ("", "require"):
            raise ValueError("the SMTP URL's starttls may only be 'require'")
        secure = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=parts.port,
            use_tls=secure,
            start_tls=False if secure else (True if starttls == "require" else None),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )


def reply_of(error: SMTPResponseException) -> str:
    """The server's reply as kept: the code and the enhanced status code, e.g. "550 5.1.1"
    (the rest of the text may repeat the address)."""
    words = error.message.split()
    enhanced = words[0] if words and _ENHANCED.match(words[0]) else ""
    return f"{error.code} {enhanced}".strip()


def mailbox_fault(reply: str) -> bool:
    """Whether a 5xx reply to RCPT blames the recipient's mailbox (the address is bad) rather
    than the sender (5.7.x: relaying denied, authentication required, a blocked host; 530), or
    a passing state (5.2.2: mailbox full)."""
    code, _, enhanced = reply.partition(" ")
    if enhanced:
        if enhanced == "5.2.2":
            return False
        return enhanced.startswith(("5.1.", "5.2.", "5.6."))
    return code in ("550", "551", "553")


def ascii_domain(address: str) -> str:
    """The address with its domain in ASCII (IDNA: `škola.cz` → `xn--kola-f6a.cz`), as the
    envelope needs it on a server without SMTPUTF8."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def domain_of(address: str) -> str:
    """An address as it may be logged: its domain only."""
    return "…@" + address.rpartition("@")[2] if "@" in address else "…"


class _Connection:
    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.used = time.monotonic()


class SmtpSender:
    """Sends mails one recipient at a time over at most `connections` open connections."""

    def __init__(
        self,
        url: str,
        mail_from: str,
        *,
        connections: int = 4,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.server = Server.from_url(url)
        self.envelope_from = parseaddr(mail_from)[1]
        if "@" not in self.envelope_from:
            raise ValueError("the sender must be an address")
        self.timeout = timeout
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Connection] = []
        self.connects = 0  # connections opened so far (for the tests and the bench)

    async def send(self, message: EmailMessage, recipient: str) -> None:
        """Send `message` to `recipient` alone (the envelope; the headers are the message's).
        Returns once the server has accepted it; raises a `SendError` otherwise."""
        async with self._slots:
            connection = await self._connection()
            try:
                await self._transact(connection, message, recipient)
            finally:
                connection.used = time.monotonic()
                if connection.client.is_connected:
                    self._idle.append(connection)
                else:
                    connection.client.close()

    async def check(self) -> None:
        """Connect and log in once, raising `Temporary` (with the reason) when that fails:
        for telling an operator at start that the settings do not work."""
        async with self._slots:
            connection = await self._connection()
            self._idle.append(connection)

    async def close(self) -> None:
        """Say goodbye on every open connection."""
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(SMTPException, OSError, TimeoutError):
                await asyncio.wait_for(connection.client.quit(), 5)
            connection.client.close()

    async def _connection(self) -> _Connection:
        """An open connection: an idle one still alive, or a new one."""
        while self._idle:
            connection = self._idle.pop()
            if connection.client.is_connected and await self._alive(connection):
                return connection
            connection.client.close()
        return await self._connect()

    async def _alive(self, connection: _Connection) -> bool:
        if time.monotonic() - connection.used < IDLE_CHECK_SECONDS:
            return True
        try:
            await connection.client.noop()
        except (SMTPException, OSError, TimeoutError):
            return False
        return True

    async def _connect(self) -> _Connection:
        server = self.server
        client = aiosmtplib.SMTP(
            hostname=server.hostname,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.use_tls,
            start_tls=server.start_tls,
            timeout=self.timeout,
        )
        try:
            await client.connect()
        except SMTPAuthenticationError as error:
            client.close()
            logger.error(
                "mail: the SMTP server refused the login (%s): check the user and password "
                "in ROUNDTABLE_SMTP_URL",
                reply_of(error),
            )
            raise LoginFailed(f"the SMTP server refused the login: {reply_of(error)}") from None
        except (SMTPConnectError, SMTPTimeoutError, OSError, TimeoutError) as error:
            client.close()
            logger.warning("mail: no connection to the SMTP server: %s", type(error).__name__)
            raise Unavailable(f"no connection to the SMTP server: {type(error).__name__}") from None
        except SMTPResponseException as error:
            client.close()
            logger.warning("mail: the SMTP server turned the connection down: %s", reply_of(error))
            raise Unavailable(
                f"the SMTP server turned the connection down: {reply_of(error)}"
            ) from None
        except SMTPException as error:  # e.g. STARTTLS required and not offered
            client.close()
            logger.error("mail: the SMTP server cannot be used as configured: %s", error)
            raise Unavailable(f"the SMTP server cannot be used as configured: {error}") from None
        self.connects += 1
        return _Connection(client)

    async def _transact(
        self, connection: _Connection, message: EmailMessage, recipient: str
    ) -> None:
        where = domain_of(recipient)
        try:
            await connection.client.send_message(
                message, sender=self.envelope_from, recipients=[ascii_domain(recipient)]
            )
        except SMTPRecipientsRefused as error:
            refusal = error.recipients[0]
            reply = reply_of(refusal)
            if refusal.code >= 500 and not mailbox_fault(reply):
                logger.error(
                    "mail: the SMTP server refused to send for us (%s): check ROUNDTABLE_SMTP_URL "
                    "and the server's relay settings; the mail waits",
                    reply,
                )
                raise Unavailable(f"the server refused to send for us: {reply}") from None
            if refusal.code >= 500:
                logger.warning(
                    "mail: the server refused an address at %s for good: %s", where, reply
                )
                raise Refused(reply) from None
            logger.info("mail: the server put off a mail to %s: %s", where, reply)
            raise Temporary(f"the server put off the address: {reply}") from None
        except SMTPDataError as error:
            reply = reply_of(error)
            if error.code >= 500:
                logger.warning("mail: the server refused a message to %s: %s", where, reply)
                raise Rejected(reply) from None
            logger.info("mail: the server put off a message to %s: %s", where, reply)
            raise Temporary(f"the server put off the message: {reply}") from None
        except SMTPNotSupported:
            # An address with non-ASCII characters, and a server without SMTPUTF8.
            logger.warning("mail: the server cannot take an address at %s (no SMTPUTF8)", where)
            raise Refused("553 5.6.7") from None
        except SMTPResponseException as error:  # the sender refused, 421 closing, ...
            reply = reply_of(error)
            logger.warning("mail: the server did not take a mail to %s: %s", where, reply)
            connection.client.close()
            raise Temporary(f"the server did not take the mail: {reply}") from None
        except (SMTPException, OSError, TimeoutError) as error:
            logger.warning("mail: a mail to %s was not sent: %s", where, type(error).__name__)
            connection.client.close()
            raise Temporary(f"the mail was not sent: {type(error).__name__}") from None
