"""Sending the outbox's mail rows (bot.core.outbox, `Channel.MAIL`) through SMTP, with the
guarantees of the chat's rows (bot.transport.telegram.delivery).

The `MailDispatcher` claims due mail rows, renders each at send time from what is true then
(each kind has its `MailKind`, given by the wiring) and sends it, one mail per row, to the row's
address alone:

- evenly paced below `per_second`, `concurrency` mails in flight at most, each row marked sent
  as soon as the server has accepted its mail, so a SIGKILL can repeat at most the mails in
  flight at that moment;
- a row whose moment passed while nobody sent it goes late only before its `expires_at`; a row
  for a member who has left, or to an address the server refused for good before, is skipped;
- a temporary failure (4xx, connection lost or refused, timeout, a render that failed) puts the
  row back for 5 s, 10 s, … at most 30 min, and gives it up after `max_attempts`; a permanent
  refusal of the address (5xx) fails the row, marks the address failing
  (bot.services.mailing) and tells the coordinator in the chat (`on_planned` wakes the chat's
  outbox for that); a message refused for good (5xx after its content) fails the row.

A claim older than half the lease is renewed just before sending, and the row skipped if
another dispatcher has taken it; rows claimed by a process that died are released when the
next active process takes over (`take_over`). Every moment comes from the injected clock.

In the bot it is a JobQueue job (bot.transport.telegram.delivery.mail_job, woken with the
chat's outbox after a commit); standalone, `await dispatcher.run()` sends everything due and
`await dispatcher.next_wake()` says when to look again. It knows nothing of Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.models import Channel, OutboxStatus
from bot.core.outbox import Letter
from bot.core.runtime import Runtime
from bot.services import mailing, members
from bot.transport.mail.smtp import Refused, Rejected, SendError, domain_of

logger = logging.getLogger(__name__)

# A mail row's renderer: the message to send, made at send time from what is true then, in the
# recipient's language; None when the row is moot (skipped).
RenderMail = Callable[[Letter], Awaitable[EmailMessage | None]]


@dataclass(frozen=True)
class MailKind:
    render: RenderMail


class Sender(Protocol):
    """What sends one mail (bot.transport.mail.smtp.SmtpSender): returns once the server has
    accepted it, raises a `SendError` (`Temporary`, `Refused`, `Rejected`) otherwise."""

    async def send(self, message: EmailMessage, recipient: str) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Counts:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0

    def __bool__(self) -> bool:
        return bool(self.sent or self.skipped or self.failed or self.retried)


class Pacer:
    """Evenly spaced departures, `1 / per_second` apart; `stop` cuts every wait short."""

    def __init__(self, per_second: float, monotonic: Callable[[], float] = time.monotonic):
        self._gap = 1.0 / per_second
        self._monotonic = monotonic
        self._next = 0.0
        self._stopped = asyncio.Event()

    async def wait(self) -> None:
        now = self._monotonic()
        at = max(now, self._next)
        self._next = at + self._gap
        if at > now:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(at - now):
                    await self._stopped.wait()

    def stop(self) -> None:
        self._stopped.set()


class MailDispatcher:
    """Claims due mail rows and sends them; one run at a time per process."""

    def __init__(
        self,
        runtime: Runtime,
        kinds: Mapping[str, MailKind],
        sender: Sender,
        *,
        concurrency: int = 4,
        per_second: float = 50.0,
        batch: int = 100,
        lease: timedelta = timedelta(minutes=5),
        max_attempts: int = 8,
        idle_seconds: float = 60.0,
        on_planned: Callable[[], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.kinds = kinds
        self.sender = sender
        self.worker = uuid.uuid4().hex
        self.concurrency = concurrency
        self.batch = batch
        self.lease = lease
        self.max_attempts = max_attempts
        self.idle_seconds = idle_seconds
        # Called after a refusal planned a chat notice: the wiring wakes the chat's outbox.
        self.on_planned = on_planned
        self.pacer = Pacer(per_second)
        self._lock = asyncio.Lock()
        self._again = False
        self._stopped = False
        self._slots = asyncio.Semaphore(concurrency)

    async def run(self) -> Counts:
        """Send everything due now; when already running, that run goes round once more."""
        counts = Counts()
        if self._lock.locked():
            self._again = True
            return counts
        async with self._lock:
            database = self.runtime.database
            while not self._stopped:
                self._again = False
                now = self.runtime.clock.now()
                async with database.transaction() as session:
                    counts.skipped += await outbox.skip_expired(session, now=now)
                    await outbox.release(session, now=now, lease=self.lease, channel=Channel.MAIL)
                    batch = await outbox.claim_mail(
                        session, now=now, worker=self.worker, limit=self.batch
                    )
                if batch:
                    await asyncio.gather(
                        *(self._deliver(letter, counts, claimed=now) for letter in batch)
                    )
                elif not self._again:
                    break
        if counts:
            logger.info(
                "mail: %d sent, %d skipped, %d failed, %d to retry",
                counts.sent,
                counts.skipped,
                counts.failed,
                counts.retried,
            )
        return counts

    async def take_over(self) -> None:
        """Put back the mail rows every other dispatcher had claimed: for the process that has
        just become the only active one, whose predecessor died or stopped."""
        async with self.runtime.database.transaction() as session:
            released = await outbox.release(
                session,
                now=self.runtime.clock.now(),
                lease=self.lease,
                except_worker=self.worker,
                channel=Channel.MAIL,
            )
        if released:
            logger.info("mail: %d mails in flight at a restart are sent again", released)

    def stop(self) -> None:
        """Send nothing more, at once: rows claimed and not sent stay claimed until the next
        active process takes over. A run in progress ends soon after."""
        self._stopped = True
        self.pacer.stop()

    async def settle(self) -> None:
        """Wait until a run in progress (and any run it was asked to repeat) has finished."""
        async with self._lock:
            pass

    async def close(self) -> None:
        """Stop, let a run in progress end, and close the connections to the mail server."""
        self.stop()
        await self.settle()
        await self.sender.close()

    async def next_wake(self) -> float:
        """Seconds until the next mail row is due (by the injected clock), at most
        `idle_seconds`."""
        async with self.runtime.database.transaction() as session:
            due = await outbox.next_due(session, Channel.MAIL)
        if due is None:
            return self.idle_seconds
        seconds = (due - self.runtime.clock.now()).total_seconds()
        return min(max(seconds, 0.0), self.idle_seconds)

    async def _deliver(self, letter: Letter, counts: Counts, *, claimed: datetime) -> None:
        async with self._slots:
            if self._stopped:
                return
            message = await self._render(letter, counts)
            if message is None:
                return
            await self.pacer.wait()  # only mails that go out take a departure
            if self._stopped or not await self._still_ours(letter, claimed):
                return
            try:
                await self.sender.send(message, letter.address)
            except Refused as error:
                await self._refused(letter, error.reply, counts)
                return
            except Rejected as error:
                logger.warning("mail: a %s was refused for good: %s", letter.kind, error.reply)
                await self._finish(letter, OutboxStatus.FAILED, "rejected")
                counts.failed += 1
                return
            except SendError:
                await self._later(letter, counts, "gave up")
                return
            await self._finish(letter, OutboxStatus.SENT, "sent")
            counts.sent += 1

    async def _render(self, letter: Letter, counts: Counts) -> EmailMessage | None:
        kind = self.kinds.get(letter.kind)
        try:
            # Checked as late as can be before the mail goes out: a leaver gets nothing more,
            # and an address the server refused for good gets nothing until it is given anew.
            async with self.runtime.database.reading() as session:
                left = letter.member_id is not None and await members.has_left(
                    session, letter.member_id
                )
                refused = not left and await mailing.failing(session, letter.address)
            if left or refused:
                await self._finish(
                    letter, OutboxStatus.SKIPPED, "left" if left else "failing address"
                )
                counts.skipped += 1
                return None
            message = await kind.render(letter) if kind is not None else None
        except Exception:  # a database hiccup, say: later, as for a network error
            logger.exception("mail: a %s could not be rendered", letter.kind)
            await self._later(letter, counts, "render failed")
            return None
        if message is None:
            await self._finish(letter, OutboxStatus.SKIPPED, "moot")
            counts.skipped += 1
        return message

    async def _still_ours(self, letter: Letter, claimed: datetime) -> bool:
        """Whether the row may be sent now: a claim in its first half-lease is; an older one is
        renewed first, unless another dispatcher has released it as stale meanwhile."""
        now = self.runtime.clock.now()
        if now - claimed < self.lease / 2:
            return True
        async with self.runtime.database.transaction() as session:
            if await outbox.renew(session, letter.id, worker=self.worker, now=now):
                return True
        logger.info("mail: a %s claimed too long ago is another dispatcher's now", letter.kind)
        return False

    async def _refused(self, letter: Letter, reply: str, counts: Counts) -> None:
        """The server refused the address for good: the row fails, the address is marked
        failing, and whoever must put it right is told in the chat."""
        now = self.runtime.clock.now()
        told: list[int | None] = []

        async def refused(session: AsyncSession) -> None:
            await mailing.mark_failing(session, letter.address, reply, now)
            await outbox.finish(session, letter.id, OutboxStatus.FAILED, now=now, outcome="refused")
            told.append(
                await mailing.refused(
                    session,
                    letter_subject=letter.subject,
                    member_id=letter.member_id,
                    address=letter.address,
                    now=now,
                    mail_id=letter.id,
                )
            )

        await self._record(refused)
        counts.failed += 1
        logger.info(
            "mail: an address at %s fails (%s); %s",
            domain_of(letter.address),
            reply,
            "someone is told" if told and told[-1] is not None else "nobody to tell",
        )
        if told and told[-1] is not None and self.on_planned is not None:
            self.on_planned()

    async def _later(self, letter: Letter, counts: Counts, outcome: str) -> None:
        """Try again after 5 s, 10 s, ... (at most 30 min); give up after `max_attempts`."""
        attempts = letter.attempts + 1
        if attempts >= self.max_attempts:
            await self._finish(letter, OutboxStatus.FAILED, outcome)
            counts.failed += 1
            return
        delay = timedelta(seconds=min(5 * 2 ** (attempts - 1), 1800))
        at = self.runtime.clock.now() + delay
        await self._record(
            lambda session: outbox.retry_later(session, letter.id, at=at, attempts=attempts)
        )
        counts.retried += 1

    async def _finish(self, letter: Letter, status: OutboxStatus, outcome: str) -> None:
        now = self.runtime.clock.now()
        await self._record(
            lambda session: outbox.finish(session, letter.id, status, now=now, outcome=outcome)
        )

    async def _record(self, write: Callable[[AsyncSession], Awaitable[None]]) -> None:
        """A row's outcome, in a transaction of its own; when the database is out of reach, it
        is waited for: a mail the server has must be noted as sent, or it would go out again
        when the claim runs out."""

        async def record() -> None:
            async with self.runtime.database.transaction() as session:
                await write(session)

        await self.runtime.database.when_available(record)
