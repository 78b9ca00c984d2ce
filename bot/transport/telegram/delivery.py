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
holding the active lock, bot.transport.telegram.standby). The run, the claims and each row's
bookkeeping are the mail's dispatcher's too (bot.transport.sending.OutboxWorker); here is what
is Telegram's: its rows, their render, their pacing and Telegram's answers, and the JobQueue
jobs of both dispatchers.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, Unpack

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot, InlineKeyboardMarkup, InputFile, Message
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.ext import Application, CallbackContext
from telegram.warnings import PTBDeprecationWarning

from bot.core import outbox
from bot.core.db import unavailable
from bot.core.models import Channel, OutboxStatus
from bot.core.outbox import Notification
from bot.core.runtime import Runtime
from bot.services import confidentiality, members
from bot.transport import sending
from bot.transport.sending import Counts, Leasing, OutboxWorker

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


class Pacer(sending.Pacer):
    """Evenly spaced departures overall, and at most one message per `chat_interval` per chat.

    Slots are reserved in order under a lock and waited for outside it, so concurrent senders
    leave one by one `1 / per_second` apart: no burst can exceed Telegram's window."""

    def __init__(
        self,
        per_second: float,
        chat_interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(per_second, monotonic)
        self._chat_interval = chat_interval
        self._chat_next: dict[int, float] = {}
        # Departures in the last second: a pause (a garbage collection, say) can bunch sends
        # that were spaced evenly; the window keeps even a bunch under Telegram's limit.
        self._window: deque[float] = deque()
        self._cap = max(1, math.floor(per_second))

    async def chat(self, chat_id: int) -> None:
        now = self._monotonic()
        at = max(now, self._chat_next.get(chat_id, 0.0))
        self._chat_next[chat_id] = at + self._chat_interval
        if len(self._chat_next) > 50_000:  # forget chats whose next slot is long past
            self._chat_next = {k: v for k, v in self._chat_next.items() if v > now}
        if at > now:
            await self._sleep(at - now)

    async def overall(self) -> None:
        await self.wait()
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

    def hold(self, seconds: float) -> None:
        """Telegram said 429: nobody departs before the time it gave."""
        self._next = max(self._next, self._monotonic() + seconds)


# The dispatcher.

JobContext = CallbackContext[Any, Any, Any, Any]


class Dispatcher(OutboxWorker[JobContext, Notification, Outgoing, Message]):
    """Claims due rows and sends them; one run at a time per process."""

    channel = Channel.TELEGRAM
    name = "outbox"
    rows = "rows"
    log = logger
    pacer: Pacer

    def __init__(
        self,
        runtime: Runtime,
        kinds: Mapping[str, Kind],
        bot: Bot,
        *,
        concurrency: int = 8,
        per_second: float = 29.0,
        chat_interval: float = 1.0,
        **leasing: Unpack[Leasing],
    ) -> None:
        super().__init__(
            runtime, Pacer(per_second, chat_interval), concurrency=concurrency, **leasing
        )
        self.kinds = kinds
        self.bot = bot  # the outbox's own: its rate limiter must not retry a 429 (bot.app)

    async def run(self, context: JobContext) -> Counts:
        """Send everything due now; when already running, that run goes round once more."""
        return await self._run(context)

    async def _claim(self, session: AsyncSession, *, now: datetime) -> list[Notification]:
        return await outbox.claim(session, now=now, worker=self.worker, limit=self.batch)

    async def _queue(self, row: Notification) -> None:
        await self.pacer.chat(row.chat_id)

    async def _depart(self) -> None:
        await self.pacer.overall()

    async def _unwanted(self, row: Notification) -> str | None:
        async with self.runtime.database.transaction() as session:
            if await members.has_left(session, row.member_id):
                return "left"
            # Something of a case for a member who has not confirmed confidentiality waits for
            # it; they are asked (bot.services.confidentiality).
            now = self.runtime.clock.now()
            held = await confidentiality.hold(session, row.id, row.member_id, row.kind, now=now)
        return outbox.HELD if held else None  # the prompt planned with it goes out in this run

    async def _render(self, context: JobContext, row: Notification) -> Outgoing | None:
        kind = self.kinds.get(row.kind)
        return await kind.render(context, row) if kind is not None else None

    async def _send(
        self, context: JobContext, row: Notification, made: Outgoing, counts: Counts
    ) -> Message | None:
        try:
            return await self._message(row.chat_id, made)
        except TelegramError as error:
            await self._not_sent(context, row, error, counts)
            return None

    async def _sent(
        self, context: JobContext, row: Notification, made: Outgoing, sent: Message
    ) -> None:
        if made.after is not None:
            try:
                await made.after(sent)
            except Exception:
                logger.exception("outbox: the follow-up of a %s failed", row.kind)

    async def _not_sent(
        self, context: JobContext, row: Notification, error: TelegramError, counts: Counts
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

    async def _message(self, chat_id: int, outgoing: Outgoing) -> Message:
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
    # However late it runs (a busy event loop, a slow machine): APScheduler's default drops a
    # one-off job more than a second late, and then nothing would plan the dispatcher's next run.
    job_queue.run_once(
        job.callback, seconds, name=job.name, job_kwargs={"misfire_grace_time": None}
    )
