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
next active process takes over (`take_over`). Every moment comes from the injected clock. The
run, the claims and each row's bookkeeping are the chat's dispatcher's too
(bot.transport.sending.OutboxWorker); here is what is the mail's: its rows, their render,
their pacing and the server's answers.

In the bot it is a JobQueue job (bot.transport.telegram.delivery.mail_job, woken with the
chat's outbox after a commit); standalone, `await dispatcher.run()` sends everything due and
`await dispatcher.next_wake()` says when to look again. It knows nothing of Telegram.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Protocol, Unpack

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.models import Channel, OutboxStatus
from bot.core.outbox import Letter
from bot.core.runtime import Runtime
from bot.services import confidentiality, mailing, members
from bot.transport.mail.smtp import Refused, Rejected, SendError, Unavailable, domain_of
from bot.transport.sending import Counts, Leasing, OutboxWorker, Pacer

logger = logging.getLogger(__name__)

UNAVAILABLE_SECONDS = 60.0  # with the mail server out of reach, the next try of a mail

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


class MailDispatcher(OutboxWorker[None, Letter, EmailMessage, bool]):
    """Claims due mail rows and sends them; one run at a time per process."""

    channel = Channel.MAIL
    name = "mail"
    rows = "mails"
    log = logger

    def __init__(
        self,
        runtime: Runtime,
        kinds: Mapping[str, MailKind],
        sender: Sender,
        *,
        concurrency: int = 4,
        per_second: float = 50.0,
        on_planned: Callable[[], None] | None = None,
        **leasing: Unpack[Leasing],
    ) -> None:
        super().__init__(runtime, Pacer(per_second), concurrency=concurrency, **leasing)
        self.kinds = kinds
        self.sender = sender
        # Called after a refusal planned a chat notice: the wiring wakes the chat's outbox.
        self.on_planned = on_planned

    async def run(self) -> Counts:
        """Send everything due now; when already running, that run goes round once more."""
        return await self._run(None)

    async def close(self) -> None:
        """Stop, let a run in progress end, and close the connections to the mail server."""
        self.stop()
        await self.settle()
        await self.sender.close()

    async def _claim(self, session: AsyncSession, *, now: datetime) -> list[Letter]:
        return await outbox.claim_mail(session, now=now, worker=self.worker, limit=self.batch)

    async def _unwanted(self, letter: Letter) -> str | None:
        """A leaver gets nothing more, and an address the server refused for good gets nothing
        until it is given anew."""
        async with self.runtime.database.transaction() as session:
            member = letter.member_id
            if member is not None and await members.has_left(session, member):
                return "left"
            if await mailing.failing(session, letter.address):
                return "failing address"
            # A member's mail about a case waits for their confirmation of confidentiality;
            # they are asked in the chat (bot.services.confidentiality). Guests confirm nothing.
            now = self.runtime.clock.now()
            held = member is not None and await confidentiality.hold(
                session, letter.id, member, letter.kind, now=now
            )
        if not held:
            return None
        if self.on_planned is not None:
            self.on_planned()  # the prompt goes by chat
        return outbox.HELD

    async def _render(self, context: None, letter: Letter) -> EmailMessage | None:
        kind = self.kinds.get(letter.kind)
        return await kind.render(letter) if kind is not None else None

    async def _send(
        self, context: None, letter: Letter, message: EmailMessage, counts: Counts
    ) -> bool | None:
        try:
            await self.sender.send(message, letter.address)
        except Refused as error:
            await self._refused(letter, error.reply, counts)
            return None
        except Rejected as error:
            logger.warning("mail: a %s was refused for good: %s", letter.kind, error.reply)
            await self._finish(letter, OutboxStatus.FAILED, "rejected")
            counts.failed += 1
            return None
        except Unavailable:
            # The server, not the mail: it waits (until its moment passes) without using up
            # its attempts, however long the outage or the wrong password lasts.
            await self._again_later(letter, counts, UNAVAILABLE_SECONDS)
            return None
        except SendError:
            await self._later(letter, counts, "gave up")
            return None
        return True

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
