"""Sending the outbox's rows (bot.core.outbox), whatever the channel: what the chat's
`Dispatcher` (bot.transport.telegram.delivery) and the `MailDispatcher`
(bot.transport.mail.delivery) have in common.

An `OutboxWorker` claims its channel's due rows and delivers them, one run at a time per
process:

- a run skips the rows whose moment passed long ago (`expires_at`), releases the channel's
  claims older than the lease and claims a batch, in one transaction, and delivers the batch
  with `concurrency` rows in flight; it goes round until nothing is due, and once more when it
  was woken meanwhile;
- each row is rendered at send time (a leaver gets nothing, a row the renderer finds moot is
  skipped), paced, and sent only while its claim is still this worker's: a claim older than
  half the lease is renewed just before sending, and the row left alone if another worker has
  taken it;
- a row is marked sent as soon as the channel has it; its outcome is written in a transaction
  of its own, waited for when the database is out of reach (`Database.when_available`);
- a temporary failure (a render that failed, a network error) puts the row back for 5 s, 10 s,
  … at most 30 min, and gives it up after `max_attempts`.

A channel says only how it claims its rows (`_claim`, and its `channel` for the releases and
the next due moment), what a row becomes (`_unwanted`, `_render`), how it is paced (`_queue`,
`_depart`) and how it goes out (`_send`, classifying the channel's errors; `_sent` for what
follows). Nothing here knows a channel: no Telegram, no SMTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Generic, Protocol, TypedDict, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.models import Channel, OutboxStatus
from bot.core.runtime import Runtime


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
            await self._sleep(at - now)

    def stop(self) -> None:
        """Cut every wait short: the dispatcher sends nothing more."""
        self._stopped.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()


class Claimed(Protocol):
    """A claimed row, whatever its channel (bot.core.outbox.Notification, Letter)."""

    @property
    def id(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def attempts(self) -> int: ...


Context = TypeVar("Context")  # what a run hands the channel (the JobQueue's context, or None)
Row = TypeVar("Row", bound=Claimed)
Made = TypeVar("Made")  # what a row is rendered to: a chat message, a mail
Sent = TypeVar("Sent")  # what the channel answers once it has it


class Leasing(TypedDict, total=False):
    """How a worker takes its rows, where not as OutboxWorker's defaults: `batch` rows claimed
    at a time, each for `lease`, tried at most `max_attempts` times; `idle_seconds` between
    looks while nothing wakes it."""

    batch: int
    lease: timedelta
    max_attempts: int
    idle_seconds: float


class OutboxWorker(ABC, Generic[Context, Row, Made, Sent]):
    """Claims the channel's due rows and sends them; one run at a time per process."""

    channel: ClassVar[Channel]
    name: ClassVar[str]  # what its log lines begin with
    rows: ClassVar[str]  # what its rows are called in the log
    log: ClassVar[logging.Logger]  # the channel's logger
    pacer: Pacer

    def __init__(
        self,
        runtime: Runtime,
        pacer: Pacer,
        *,
        concurrency: int,
        batch: int = 100,
        lease: timedelta = timedelta(minutes=5),
        max_attempts: int = 8,
        idle_seconds: float = 60.0,
    ) -> None:
        self.runtime = runtime
        self.worker = uuid.uuid4().hex
        self.concurrency = concurrency
        self.batch = batch
        self.lease = lease
        self.max_attempts = max_attempts
        self.idle_seconds = idle_seconds
        self.pacer = pacer
        self._lock = asyncio.Lock()
        self._again = False
        self._stopped = False
        self._slots = asyncio.Semaphore(concurrency)

    # What each channel says.

    @abstractmethod
    async def _claim(self, session: AsyncSession, *, now: datetime) -> Sequence[Row]:
        """Claim up to `batch` due rows of the channel for this worker."""

    @abstractmethod
    async def _unwanted(self, row: Row) -> str | None:
        """Why the row is skipped before it is rendered (its outcome), if it is."""

    @abstractmethod
    async def _render(self, context: Context, row: Row) -> Made | None:
        """What to send, made from what is true now; None when the row is moot."""

    @abstractmethod
    async def _send(self, context: Context, row: Row, made: Made, counts: Counts) -> Sent | None:
        """Send it: what the channel answered, or None when it was not sent (the row's outcome
        and its count then written here)."""

    async def _queue(self, row: Row) -> None:
        """Pacing before the row takes one of the `concurrency` slots."""

    async def _depart(self) -> None:
        """Pacing of the departures: only rows that go out take one."""
        await self.pacer.wait()

    async def _sent(self, context: Context, row: Row, made: Made, sent: Sent) -> None:
        """What follows once the row is marked sent, out of its slot."""

    # The runs.

    async def _run(self, context: Context) -> Counts:
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
                    await outbox.release(session, now=now, lease=self.lease, channel=self.channel)
                    batch = await self._claim(session, now=now)
                if batch:
                    await asyncio.gather(
                        *(self._deliver(context, row, counts, claimed=now) for row in batch)
                    )
                elif not self._again:
                    break
        if counts:
            self.log.info(
                "%s: %d sent, %d skipped, %d failed, %d to retry",
                self.name,
                counts.sent,
                counts.skipped,
                counts.failed,
                counts.retried,
            )
        return counts

    async def take_over(self) -> None:
        """Put back the rows every other dispatcher had claimed: for the process that has just
        become the only active one (bot.transport.telegram.standby), whose predecessor died or
        stopped."""
        async with self.runtime.database.transaction() as session:
            released = await outbox.release(
                session,
                now=self.runtime.clock.now(),
                lease=self.lease,
                except_worker=self.worker,
                channel=self.channel,
            )
        if released:
            self.log.info(
                "%s: %d %s in flight at a restart are sent again", self.name, released, self.rows
            )

    def stop(self) -> None:
        """Send nothing more, at once: rows claimed and not sent stay claimed until the next
        active process takes over. A run in progress ends soon after."""
        self._stopped = True
        self.pacer.stop()

    async def settle(self) -> None:
        """Wait until a run in progress (and any run it was asked to repeat) has finished."""
        async with self._lock:
            pass

    async def next_wake(self) -> float:
        """Seconds until the channel's next row is due (by the injected clock), at most
        `idle_seconds`."""
        async with self.runtime.database.transaction() as session:
            due = await outbox.next_due(session, self.channel)
        if due is None:
            return self.idle_seconds
        seconds = (due - self.runtime.clock.now()).total_seconds()
        return min(max(seconds, 0.0), self.idle_seconds)

    # One row.

    async def _deliver(
        self, context: Context, row: Row, counts: Counts, *, claimed: datetime
    ) -> None:
        await self._queue(row)
        if self._stopped:
            return
        async with self._slots:
            if self._stopped:
                return
            made = await self._rendered(context, row, counts)
            if made is None:
                return
            await self._depart()
            if self._stopped or not await self._still_ours(row, claimed):
                return
            sent = await self._send(context, row, made, counts)
            if sent is None:
                return
            await self._finish(row, OutboxStatus.SENT, "sent")
            counts.sent += 1
        await self._sent(context, row, made, sent)

    async def _rendered(self, context: Context, row: Row, counts: Counts) -> Made | None:
        try:
            # Checked as late as can be before the row goes out: a leaver's rows are cancelled
            # when they are deactivated, but one planned in a transaction racing with that, or
            # claimed just before it, is caught here.
            unwanted = await self._unwanted(row)
            if unwanted is not None:
                if unwanted != outbox.HELD:  # a held row was put aside with its reason
                    await self._finish(row, OutboxStatus.SKIPPED, unwanted)
                counts.skipped += 1
                return None
            made = await self._render(context, row)
        except Exception:  # a database hiccup, say: later, as for a network error
            self.log.exception("%s: a %s could not be rendered", self.name, row.kind)
            await self._later(row, counts, "render failed")
            return None
        if made is None:
            await self._finish(row, OutboxStatus.SKIPPED, "moot")
            counts.skipped += 1
        return made

    async def _still_ours(self, row: Row, claimed: datetime) -> bool:
        """Whether the row may be sent now. A claim in its first half-lease is; an older one
        (pacing after a 429 can take long) is renewed first, unless another dispatcher has
        released it as stale meanwhile. Sending takes seconds, never the rest of the lease."""
        now = self.runtime.clock.now()
        if now - claimed < self.lease / 2:
            return True
        async with self.runtime.database.transaction() as session:
            if await outbox.renew(session, row.id, worker=self.worker, now=now):
                return True
        self.log.info(
            "%s: a %s claimed too long ago is another dispatcher's now", self.name, row.kind
        )
        return False

    async def _later(self, row: Row, counts: Counts, outcome: str) -> None:
        """Try again after 5 s, 10 s, ... (at most 30 min); give up after `max_attempts`."""
        attempts = row.attempts + 1
        if attempts >= self.max_attempts:
            await self._finish(row, OutboxStatus.FAILED, outcome)
            counts.failed += 1
            return
        delay = timedelta(seconds=min(5 * 2 ** (attempts - 1), 1800))
        at = self.runtime.clock.now() + delay
        await self._record(
            lambda session: outbox.retry_later(session, row.id, at=at, attempts=attempts)
        )
        counts.retried += 1

    async def _again_later(self, row: Row, counts: Counts, seconds: float) -> None:
        """Try again after `seconds` without using up an attempt: the channel itself is out of
        reach, which is no fault of the row. It waits until its moment passes (`expires_at`)."""
        at = self.runtime.clock.now() + timedelta(seconds=seconds)
        await self._record(
            lambda session: outbox.retry_later(session, row.id, at=at, attempts=row.attempts)
        )
        counts.retried += 1

    async def _finish(self, row: Row, status: OutboxStatus, outcome: str) -> None:
        now = self.runtime.clock.now()
        await self._record(
            lambda session: outbox.finish(session, row.id, status, now=now, outcome=outcome)
        )

    async def _record(self, write: Callable[[AsyncSession], Awaitable[None]]) -> None:
        """A row's outcome, in a transaction of its own; when the database is out of reach, it
        is waited for: what the channel has must be noted as sent, or it would go out again
        when the claim runs out."""

        async def record() -> None:
            async with self.runtime.database.transaction() as session:
                await write(session)

        await self.runtime.database.when_available(record)
