"""Reading the organizer's mailbox over IMAP (aioimaplib) for the calendars' replies.

Why a mailbox read by the bot, not mail forwarded to it, is said in
`bot.services.calendar_replies`, which applies each mail. Every round (`read`, a JobQueue job
every `settings.imap_seconds`): connect (imaps:// is TLS from the start; imap:// upgrades with
STARTTLS whenever the server offers it), LOGIN, SELECT the folder of the URL's path (INBOX by
default), `UID SEARCH UNSEEN`, and for each mail: its size first (RFC822.SIZE), then the whole
mail (`BODY.PEEK[]`, which leaves it unread) or, when it is over the limit, only its header;
apply it in a transaction of its own (waiting out a database outage); then flag it \\Seen.

A crash between the commit and the flag is harmless: the mail comes again and its
`InboundMail` row says it was applied. A lost connection, a refused login, a server that is
down: logged (never the credentials, never an address or anything the mail says), and the next
round tries again; nothing here ever raises into the bot. The mailbox should be the bot's
own: whatever arrives in the folder is read and flagged \\Seen, replies or not.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from aioimaplib import aioimaplib  # type: ignore[import-untyped]

from bot.core.clock import Clock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.services import calendar_replies
from bot.services.calendar_replies import Applied

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30.0
# Called in the reply's transaction, just before its commit (so that what it takes, e.g. the
# board's turn to be drawn, is ordered with the chat's own answers); what it returns is awaited
# after the commit: the chat's redraw, waking the outbox.
OnApplied = Callable[[Applied], Callable[[], Awaitable[None]]]


class MailboxError(Exception):
    """The server said no (a refused login, no such folder): the reason, without credentials."""


@dataclass(frozen=True)
class Account:
    tls: bool  # imaps://: TLS from the start
    host: str
    port: int
    user: str
    password: str
    folder: str

    @classmethod
    def of(cls, url: str) -> Account:
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise ValueError("an imap:// or imaps:// URL with a host is needed")
        tls = parts.scheme == "imaps"
        return cls(
            tls=tls,
            host=parts.hostname,
            port=parts.port or (993 if tls else 143),
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
        )

    def __repr__(self) -> str:  # never the password, in a traceback or a log
        return f"Account({'imaps' if self.tls else 'imap'}://{self.host}:{self.port})"


@dataclass(frozen=True)
class Round:
    """What one round did: mails applied, ignored (incl. those seen before), and whether the
    mailbox could be read at all."""

    applied: int = 0
    ignored: int = 0
    failed: bool = False


class Intake:
    """What becomes of one mail taken from the mailbox: applied as a calendar's answer
    (bot.services.calendar_replies), then shown in the chat (`on_applied`). The reader takes
    each mail it fetches through it; the demo, which has no IMAP server, hands it the mail its
    stand-in calendar sends."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock,
        cipher: Cipher,
        organizer: str,
        on_applied: OnApplied | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.cipher = cipher
        self.organizer = organizer
        self.on_applied = on_applied

    async def take(self, raw: bytes, size: int | None = None) -> calendar_replies.Outcome | None:
        """Apply one mail in a transaction of its own (waiting out a database that is away for
        a moment), then let the chat show it; None when it could not be applied now (it is
        left unread for the next round)."""
        after: list[Callable[[], Awaitable[None]]] = []

        async def work() -> calendar_replies.Outcome:
            after.clear()
            async with self.database.transaction() as session:
                outcome = await calendar_replies.apply(
                    session,
                    raw,
                    now=self.clock.now(),
                    cipher=self.cipher,
                    organizer=self.organizer,
                    size=size,
                )
                if isinstance(outcome, Applied) and self.on_applied is not None:
                    after.append(self.on_applied(outcome))
            return outcome

        try:
            outcome = await self.database.when_available(work)
        except Exception:
            # Not the mail's fault (those are ignored outcomes): left unread for the next round.
            logger.exception("a mail from the mailbox could not be applied")
            return None
        for then in after:
            try:
                await then()
            except Exception:
                logger.exception("redrawing after a reply read from the mailbox failed")
        return outcome


class MailboxReader:
    """Reads the organizer's mailbox, one round at a time (`read`); `job` for a JobQueue."""

    def __init__(
        self,
        url: str,
        database: Database,
        *,
        clock: Clock,
        cipher: Cipher,
        organizer: str,
        on_applied: OnApplied | None = None,
        timeout: float = TIMEOUT_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.account = Account.of(url)
        self.intake = Intake(
            database, clock=clock, cipher=cipher, organizer=organizer, on_applied=on_applied
        )
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._lock = asyncio.Lock()  # one round at a time, also if a round outlasts the interval

    async def job(self, _context: object) -> None:
        """The JobQueue's callback."""
        await self.read()

    async def read(self) -> Round:
        """One round; never raises (but for cancellation)."""
        async with self._lock:
            try:
                return await self._read()
            except asyncio.CancelledError:
                raise
            except MailboxError as error:
                logger.warning("the mailbox %s: %s", self._where(), error)
            except (OSError, TimeoutError, aioimaplib.AioImapException) as error:
                logger.warning(
                    "the mailbox %s could not be read: %s", self._where(), type(error).__name__
                )
            except Exception:
                logger.exception("reading the mailbox %s failed", self._where())
            return Round(failed=True)

    def _where(self) -> str:
        return f"{self.account.host}:{self.account.port}"

    async def _read(self) -> Round:
        client = await self._connect()
        try:
            await self._login(client)
            response = await client.select(self.account.folder)
            if response.result != "OK":
                raise MailboxError(f"no folder {self.account.folder!r}")
            response = await client.uid_search("UNSEEN", charset=None)
            if response.result != "OK":
                raise MailboxError("SEARCH refused")
            uids = [int(uid) for uid in response.lines[0].split()] if response.lines else []
            applied = ignored = 0
            for uid in uids:
                outcome = await self._one(client, uid)
                if outcome is None:
                    continue
                if isinstance(outcome, Applied):
                    applied += 1
                else:
                    ignored += 1
            if applied or ignored:
                logger.info("mailbox: %d replies applied, %d mails ignored", applied, ignored)
            return Round(applied=applied, ignored=ignored)
        finally:
            await _close(client)

    async def _connect(self) -> aioimaplib.IMAP4:
        account = self.account
        client: aioimaplib.IMAP4
        if account.tls:
            client = aioimaplib.IMAP4_SSL(
                host=account.host,
                port=account.port,
                timeout=self.timeout,
                ssl_context=self.ssl_context,
            )
        else:
            client = aioimaplib.IMAP4(host=account.host, port=account.port, timeout=self.timeout)
        try:
            await client.wait_hello_from_server()
            if not account.tls and client.has_capability("STARTTLS"):
                await self._starttls(client)
        except BaseException:
            await _close(client)
            raise
        return client

    async def _starttls(self, client: aioimaplib.IMAP4) -> None:
        """aioimaplib has no STARTTLS (iroco-co/aioimaplib#1): the command, then asyncio's own
        start_tls on the connection, then the capabilities again (RFC 3501 6.2.1)."""
        protocol = client.protocol
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await asyncio.wait_for(protocol.execute(command), self.timeout)
        if response.result != "OK":
            raise MailboxError("STARTTLS refused")
        context = self.ssl_context or ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        loop = asyncio.get_running_loop()
        protocol.transport = await loop.start_tls(
            protocol.transport,
            protocol,
            context,
            server_hostname=self.account.host,
            ssl_handshake_timeout=self.timeout,
        )
        await asyncio.wait_for(protocol.capability(), self.timeout)

    async def _login(self, client: aioimaplib.IMAP4) -> None:
        response = await client.login(self.account.user, self.account.password)
        if response.result != "OK":
            raise MailboxError("the login was refused")

    async def _one(self, client: aioimaplib.IMAP4, uid: int) -> calendar_replies.Outcome | None:
        """Fetch, apply and flag one mail; None when it could not be fetched (next round)."""
        size = await self._size(client, uid)
        if size is None:
            return None
        whole = size <= calendar_replies.MAX_BYTES
        raw = await self._fetch(client, uid, "BODY.PEEK[]" if whole else "BODY.PEEK[HEADER]")
        if raw is None:
            return None
        outcome = await self.intake.take(raw, size)
        if outcome is None:
            return None
        response = await client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)")
        if response.result != "OK":
            logger.warning("the mailbox did not flag a mail as read; it comes again (once)")
        return outcome

    async def _size(self, client: aioimaplib.IMAP4, uid: int) -> int | None:
        response = await client.uid("fetch", str(uid), "(RFC822.SIZE)")
        if response.result == "OK":
            for line in response.lines:
                if isinstance(line, bytes | bytearray):
                    found = re.search(rb"RFC822\.SIZE (\d+)", bytes(line))
                    if found:
                        return int(found.group(1))
        logger.warning("the mailbox gave no size for a mail")
        return None

    async def _fetch(self, client: aioimaplib.IMAP4, uid: int, part: str) -> bytes | None:
        response = await client.uid("fetch", str(uid), f"({part})")
        if response.result == "OK":
            # The literal: the one bytearray among the response's lines.
            for line in response.lines:
                if isinstance(line, bytearray):
                    return bytes(line)
        logger.warning("the mailbox did not give a mail")
        return None


async def _close(client: aioimaplib.IMAP4) -> None:
    """LOGOUT if the session is still up; the connection goes either way."""
    try:
        if client.protocol.state in (aioimaplib.AUTH, aioimaplib.SELECTED, aioimaplib.NONAUTH):
            await asyncio.wait_for(client.logout(), 5)
    except Exception:  # noqa: S110 - the connection is going anyway
        pass
    transport = client.protocol.transport
    if transport is not None:
        transport.close()
