"""Sending the outbox's rows (bot.core.outbox) through Telegram.

The `Dispatcher` (a JobQueue job, i.e. an APScheduler job) wakes at the next due moment or when
woken after a commit (`wake`), claims due rows, renders each at send time in the recipient's
language from what is true then (each kind of row has its `Kind`, given by the handlers), and
sends it:

- paced below Telegram's limits: evenly spaced sends under `per_second` overall and at most one
  message a second to one chat, which AIORateLimiter alone does not do;
- with bounded concurrency (`concurrency` rows in flight), and every row marked sent as soon as
  Telegram has it, so a SIGKILL can repeat at most the rows in flight at that moment;
- a row whose moment passed while the bot was down is sent late only before its `expires_at`,
  otherwise it is skipped;
- 429 puts the row back until the time Telegram gave and holds the pacer (the outbox has a bot
  of its own whose rate limiter does not retry, so a flood wait never freezes the handlers'
  replies), 5xx and network errors retry with backoff, 403 marks the person unreachable (and
  the kind may tell someone), 400 is given up and logged.

A claim older than half the lease is renewed just before sending, and the row skipped if
another dispatcher has taken it (see bot.core.outbox). Rows claimed by a process that died are
released when the next active process takes over (`take_over`, called only by the process
holding the active lock, bot.transport.telegram.standby).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot, InlineKeyboardMarkup, InputFile, Message
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.ext import Application, CallbackContext
from telegram.warnings import PTBDeprecationWarning

from bot.core import outbox
from bot.core.db import unavailable
from bot.core.models import OutboxStatus
from bot.core.outbox import Notification
from bot.core.runtime import Runtime
from bot.services import members

logger = logging.getLogger(__name__)

DISPATCHER_KEY = "outbox"
JOB_NAME = "outbox"
MAIL_KEY = "mail"  # the mail dispatcher, when mail is set up (bot.app)
MAIL_JOB_NAME = "mail"
AGAIN_SECONDS = 2.0  # when the database was out of reach, the next look for due rows


@dataclass(frozen=True)
class Outgoing:
    """What to send: a text, or a document with the text as its caption."""

    text: str
    markup: InlineKeyboardMarkup | None = None
    document: tuple[str, bytes, str] | None = None  # file name, content, MIME type
    protect: bool = False
    # Called once Telegram has the message, e.g. to remember where it is for later edits.
    after: Callable[[Message], Awaitable[None]] | None = None


Render = Callable[[Any, Notification], Awaitable[Outgoing | None]]  # None: moot, skip it
OnBlocked = Callable[[Any, Notification], Awaitable[None]]


@dataclass(frozen=True)
class Kind:
    render: Render
    blocked: OnBlocked | None = None  # e.g. tell the coordinator


# Pacing.


class Pacer:
    """Evenly spaced departures overall, and at most one message per `chat_interval` per chat.

    Slots are reserved in order under a lock and waited for outside it, so concurrent senders
    leave one by one `1 / per_second` apart: no burst can exceed Telegram's window."""

    def __init__(
        self,
        per_second: float,
        chat_interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gap = 1.0 / per_second
        self._chat_interval = chat_interval
        self._monotonic = monotonic
        self._next = 0.0
        self._chat_next: dict[int, float] = {}
        # Departures in the last second: a pause (a garbage collection, say) can bunch sends
        # that were spaced evenly; the window keeps even a bunch under Telegram's limit.
        self._window: deque[float] = deque()
        self._cap = max(1, math.floor(per_second))
        self._stopped = asyncio.Event()

    async def chat(self, chat_id: int) -> None:
        now = self._monotonic()
        at = max(now, self._chat_next.get(chat_id, 0.0))
        self._chat_next[chat_id] = at + self._chat_interval
        if len(self._chat_next) > 50_000:  # forget chats whose next slot is long past
            self._chat_next = {k: v for k, v in self._chat_next.items() if v > now}
        if at > now:
            await self._sleep(at - now)

    async def overall(self) -> None:
        now = self._monotonic()
        at = max(now, self._next)
        self._next = at + self._gap
        if at > now:
            await self._sleep(at - now)
        while True:
            now = self._monotonic()
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            if len(self._window) < self._cap:
                break
            if self._stopped.is_set():
                return
            await self._sleep(self._window[0] + 1.0 - now + 0.001)
        self._window.append(now)

    def stop(self) -> None:
        """Cut every wait short: the dispatcher sends nothing more."""
        self._stopped.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()

    def hold(self, seconds: float) -> None:
        """Telegram said 429: nobody departs before the time it gave."""
        self._next = max(self._next, self._monotonic() + seconds)


# The dispatcher.


@dataclass
class Counts:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0

    def __bool__(self) -> bool:
        return bool(self.sent or self.skipped or self.failed or self.retried)


class Dispatcher:
    """Claims due rows and sends them; one run at a time per process."""

    def __init__(
        self,
        runtime: Runtime,
        kinds: Mapping[str, Kind],
        bot: Bot,
        *,
        concurrency: int = 8,
        per_second: float = 29.0,
        chat_interval: float = 1.0,
        batch: int = 100,
        lease: timedelta = timedelta(minutes=5),
        max_attempts: int = 8,
        idle_seconds: float = 60.0,
    ) -> None:
        self.runtime = runtime
        self.kinds = kinds
        self.bot = bot  # the outbox's own: its rate limiter must not retry a 429 (bot.app)
        self.worker = uuid.uuid4().hex
        self.concurrency = concurrency
        self.batch = batch
        self.lease = lease
        self.max_attempts = max_attempts
        self.idle_seconds = idle_seconds
        self.pacer = Pacer(per_second, chat_interval)
        self._lock = asyncio.Lock()
        self._again = False
        self._stopped = False
        self._slots = asyncio.Semaphore(concurrency)

    async def run(self, context: CallbackContext[Any, Any, Any, Any]) -> Counts:
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
                    await outbox.release(session, now=now, lease=self.lease)
                    batch = await outbox.claim(
                        session, now=now, worker=self.worker, limit=self.batch
                    )
                if batch:
                    await asyncio.gather(
                        *(self._deliver(context, row, counts, claimed=now) for row in batch)
                    )
                elif not self._again:
                    break
        if counts:
            logger.info(
                "outbox: %d sent, %d skipped, %d failed, %d to retry",
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
                session, now=self.runtime.clock.now(), lease=self.lease, except_worker=self.worker
            )
        if released:
            logger.info("outbox: %d rows in flight at a restart are sent again", released)

    def stop(self) -> None:
        """Send nothing more, at once: rows claimed and not sent stay claimed until the next
        active process takes over. A run in progress ends soon after."""
        self._stopped = True
        self.pacer.stop()

    async def settle(self) -> None:
        """Wait until a run in progress (and any run it was asked to repeat) has finished."""
        async with self._lock:
            pass

    async def _deliver(
        self,
        context: CallbackContext[Any, Any, Any, Any],
        row: Notification,
        counts: Counts,
        *,
        claimed: datetime,
    ) -> None:
        await self.pacer.chat(row.chat_id)
        if self._stopped:
            return
        async with self._slots:
            outgoing = await self._render(context, row, counts)
            if outgoing is None:
                return
            await self.pacer.overall()
            if self._stopped or not await self._still_ours(row, claimed):
                return
            try:
                message = await self._send(row.chat_id, outgoing)
            except TelegramError as error:
                await self._not_sent(context, row, error, counts)
                return
            await self._finish(row, OutboxStatus.SENT, "sent")
            counts.sent += 1
        if outgoing.after is not None:
            try:
                await outgoing.after(message)
            except Exception:
                logger.exception("outbox: the follow-up of a %s failed", row.kind)

    async def _still_ours(self, row: Notification, claimed: datetime) -> bool:
        """Whether the row may be sent now. A claim in its first half-lease is; an older one
        (pacing after a 429 can take long) is renewed first, unless another dispatcher has
        released it as stale meanwhile. Sending takes seconds, never the rest of the lease."""
        now = self.runtime.clock.now()
        if now - claimed < self.lease / 2:
            return True
        async with self.runtime.database.transaction() as session:
            if await outbox.renew(session, row.id, worker=self.worker, now=now):
                return True
        logger.info("outbox: a %s claimed too long ago is another dispatcher's now", row.kind)
        return False

    async def _render(
        self, context: CallbackContext[Any, Any, Any, Any], row: Notification, counts: Counts
    ) -> Outgoing | None:
        kind = self.kinds.get(row.kind)
        try:
            # A leaver gets nothing more: their rows are cancelled when they are deactivated,
            # but one planned in a transaction racing with that, or claimed just before it,
            # is checked here, as late as can be before it goes out.
            async with self.runtime.database.transaction() as session:
                left = await members.has_left(session, row.member_id)
            if left:
                await self._finish(row, OutboxStatus.SKIPPED, "left")
                counts.skipped += 1
                return None
            outgoing = await kind.render(context, row) if kind is not None else None
        except Exception:  # a database hiccup, say: later, as for a network error
            logger.exception("outbox: a %s could not be rendered", row.kind)
            await self._later(row, counts, "render failed")
            return None
        if outgoing is None:
            await self._finish(row, OutboxStatus.SKIPPED, "moot")
            counts.skipped += 1
        return outgoing

    async def _not_sent(
        self,
        context: CallbackContext[Any, Any, Any, Any],
        row: Notification,
        error: TelegramError,
        counts: Counts,
    ) -> None:
        now = self.runtime.clock.now()
        if isinstance(error, RetryAfter):
            with warnings.catch_warnings():  # an int now, a timedelta in a future major
                warnings.simplefilter("ignore", PTBDeprecationWarning)
                wait = error.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            self.pacer.hold(seconds)
            at = now + timedelta(seconds=seconds)
            await self._record(
                lambda session: outbox.retry_later(session, row.id, at=at, attempts=row.attempts)
            )
            counts.retried += 1
        elif isinstance(error, Forbidden):

            async def blocked(session: AsyncSession) -> None:
                await members.mark_unreachable(session, row.chat_id, now=now)
                await outbox.finish(
                    session, row.id, OutboxStatus.FAILED, now=now, outcome="blocked"
                )

            await self._record(blocked)
            counts.failed += 1
            kind = self.kinds.get(row.kind)
            if kind is not None and kind.blocked is not None:
                try:
                    await kind.blocked(context, row)
                except Exception:
                    logger.exception("outbox: telling about a blocked %s failed", row.kind)
        elif isinstance(error, BadRequest):
            logger.warning("outbox: Telegram refused a %s: %s", row.kind, error.message)
            await self._finish(row, OutboxStatus.FAILED, "refused")
            counts.failed += 1
        else:  # 5xx, network, timeouts: later, less often
            logger.warning("outbox: a %s was not sent: %s", row.kind, type(error).__name__)
            await self._later(row, counts, "gave up")

    async def _later(self, row: Notification, counts: Counts, outcome: str) -> None:
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

    async def _send(self, chat_id: int, outgoing: Outgoing) -> Message:
        bot = self.bot
        protect = outgoing.protect or None
        if outgoing.document is None:
            message: Message = await bot.send_message(
                chat_id,
                outgoing.text,
                reply_markup=outgoing.markup,
                protect_content=protect,
            )
            return message
        name, content, mime = outgoing.document
        document = InputFile(content, filename=name)
        document.mimetype = mime
        message = await bot.send_document(
            chat_id,
            document,
            caption=outgoing.text,
            reply_markup=outgoing.markup,
            protect_content=protect,
        )
        return message

    async def _finish(self, row: Notification, status: OutboxStatus, outcome: str) -> None:
        now = self.runtime.clock.now()
        await self._record(
            lambda session: outbox.finish(session, row.id, status, now=now, outcome=outcome)
        )

    async def _record(self, write: Callable[[AsyncSession], Awaitable[None]]) -> None:
        """A row's outcome, in a transaction of its own; when the database is out of reach, it
        is waited for: a message Telegram has must be noted as sent, or it would go out again
        when the claim runs out."""

        async def record() -> None:
            async with self.runtime.database.transaction() as session:
                await write(session)

        await self.runtime.database.when_available(record)

    async def next_wake(self) -> float:
        """Seconds until the next row is due (by the injected clock), at most `idle_seconds`."""
        async with self.runtime.database.transaction() as session:
            due = await outbox.next_due(session)
        if due is None:
            return self.idle_seconds
        seconds = (due - self.runtime.clock.now()).total_seconds()
        return min(max(seconds, 0.0), self.idle_seconds)


async def dispatch_job(context: CallbackContext[Any, Any, Any, Any]) -> None:
    """The JobQueue job: send what is due, then sleep until the next row is due. With the
    database out of reach it looks again shortly: a job not planned again would never run."""
    dispatcher: Dispatcher = context.application.bot_data[DISPATCHER_KEY]
    await _run_job(context, lambda: dispatcher.run(context), dispatcher, _CHAT)


class Sending(Protocol):
    """Another channel's dispatcher (bot.transport.mail.delivery.MailDispatcher) run by the same
    JobQueue machinery: `run()` sends what is due, `next_wake()` says when to look again."""

    async def run(self) -> object: ...

    async def next_wake(self) -> float: ...


async def mail_job(context: CallbackContext[Any, Any, Any, Any]) -> None:
    """The mail dispatcher's JobQueue job (when mail is set up: bot.app puts it in bot_data
    under MAIL_KEY), run and planned again as the chat's."""
    dispatcher: Sending = context.application.bot_data[MAIL_KEY]
    await _run_job(context, dispatcher.run, dispatcher, _MAIL)


async def _run_job(
    context: CallbackContext[Any, Any, Any, Any],
    run: Callable[[], Awaitable[object]],
    dispatcher: Dispatcher | Sending,
    job: _Job,
) -> None:
    seconds = AGAIN_SECONDS
    try:
        await run()
        seconds = await dispatcher.next_wake()
    except Exception as error:
        if not unavailable(error):
            raise
        logger.warning("%s: the database is out of reach; looking again shortly", job.name)
    finally:
        _schedule(context.application, seconds, job)


def wake(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Run the dispatchers now (after a commit that planned rows due at once): the chat's,
    and the mail's when mail is set up."""
    _schedule(application, 0.0, _CHAT)
    _schedule(application, 0.0, _MAIL)


@dataclass(frozen=True)
class _Job:
    key: str  # where bot_data holds the dispatcher
    name: str
    callback: Callable[[CallbackContext[Any, Any, Any, Any]], Coroutine[Any, Any, None]]


_CHAT = _Job(DISPATCHER_KEY, JOB_NAME, dispatch_job)
_MAIL = _Job(MAIL_KEY, MAIL_JOB_NAME, mail_job)


def _schedule(
    application: Application[Any, Any, Any, Any, Any, Any], seconds: float, job: _Job = _CHAT
) -> None:
    """One pending wake-up at a time per dispatcher: the earliest wanted."""
    job_queue = application.job_queue
    if job_queue is None or job.key not in application.bot_data:
        return
    wanted = datetime.now().astimezone() + timedelta(seconds=seconds)
    for pending in job_queue.get_jobs_by_name(job.name):
        try:
            planned = pending.next_t
        except AttributeError:  # planned before the queue started: it runs as it starts
            return
        if planned is not None and planned <= wanted:
            return  # an earlier wake-up is already planned; it plans the next one itself
        pending.schedule_removal()
    job_queue.run_once(job.callback, seconds, name=job.name)
