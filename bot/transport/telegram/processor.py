"""Concurrent updates across chats, strict order within a chat, and dialog state saved after each.

python-telegram-bot's simple processor either runs everything one by one (slow under network
latency) or everything at once (a person's two quick taps could overtake each other and corrupt
a ConversationHandler's state). Here updates of different chats run concurrently, bounded, while
each chat's (or, without a chat, each user's) updates wait for the one before them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from bot.core.db import OUTAGE_SECONDS, STAMP, Database
from bot.transport.telegram.ledger import HandledUpdates, Mark

logger = logging.getLogger(__name__)

AfterUpdate = Callable[[], Awaitable[None]]
Done = Callable[[object], None]
Again = Callable[[object], Awaitable[None]]
_UNBOUNDED = 2**31 - 1


@dataclass
class _Attempt:
    """One go at handling an update."""

    talked: bool = False  # a Bot API call of it went through: the person may have seen it


_ATTEMPT: ContextVar[_Attempt | None] = ContextVar("roundtable_attempt", default=None)


def note_telegram_call() -> None:
    """A Bot API call went through (the application's rate limiter says so, bot.app): the update
    being handled has shown something, and doing it all again would show it twice."""
    attempt = _ATTEMPT.get()
    if attempt is not None:
        attempt.talked = True


class _KeyLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class OrderedUpdateProcessor(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int) -> None:
        # The base class takes its semaphore before do_process_update, that is before the chat's
        # turn: a chat that sends a flood of updates would then hold every slot while its
        # updates wait for each other, stalling all chats. So the base is left unbounded and
        # the slots are taken here, after the chat's turn has come.
        super().__init__(_UNBOUNDED)
        self._slots = asyncio.BoundedSemaphore(max_concurrent_updates)
        self._locks: dict[object, _KeyLock] = {}
        self._after_update: AfterUpdate | None = None
        self._ledger: HandledUpdates | None = None
        self._done: list[Done] = []
        self._database: Database | None = None
        self._again: Again | None = None
        self._failing_since: dict[int, float] = {}  # update id -> first failure, database away
        self._to_retry: set[int] = set()
        self._answer_lost: Again | None = None
        self.in_flight = 0  # updates being handled now
        self.peak_in_flight = 0  # the most handled at once, for tests and benchmarks

    def after_each_update(self, callback: AfterUpdate) -> None:
        """Run callback once an update is handled, before the chat's next update starts.

        The application saves dialog state here, so that a process killed at any moment
        finds every update before the one in hand saved (and Telegram still has that one,
        see bot.transport.telegram.polling).
        """
        self._after_update = callback

    def retry_when_back(self, database: Database, again: Again) -> None:
        """An update that failed because the database was out of reach (its error handler asks,
        see retry_later) is handled again by `again` once the database answers; meanwhile the
        chat's next updates wait."""
        self._database = database
        self._again = again

    def retry_later(self, update: object) -> bool:
        """For the error handler, when an update failed because the database was out of reach:
        True if it will be handled again when the database is back (nobody need be told to try
        again). False once it has been failing for bot.core.db.OUTAGE_SECONDS, when it had already
        answered something (handled again it would answer twice, and a dialog's question asked
        twice gets a double answer), or when its change was stored already (it is done, but
        nobody was told)."""
        attempt, stamp = _ATTEMPT.get(), STAMP.get()
        if self._again is None or not isinstance(update, Update):
            return False
        if (attempt is not None and attempt.talked) or (stamp is not None and stamp.stored):
            return False
        now = asyncio.get_running_loop().time()
        first = self._failing_since.setdefault(update.update_id, now)
        if now - first > OUTAGE_SECONDS:
            return False
        self._to_retry.add(update.update_id)
        return True

    def answer_instead(self, callback: Again) -> None:
        """An update that is not handled again because its change was stored, though its
        answer may never have gone out, gets `callback` instead: the person is told where they
        are. That is one whose commit was made but whose answer the broken connection lost,
        and one the ledger skips whose answer a process killed after its commit may never have
        sent (HandledUpdates.unanswered)."""
        self._answer_lost = callback

    def keep_ledger(self, ledger: HandledUpdates) -> None:
        """Skip updates the ledger has seen handled; mark each one handled (see .ledger)."""
        self._ledger = ledger

    @property
    def ledger(self) -> HandledUpdates:
        if self._ledger is None:
            raise RuntimeError("no ledger is kept")
        return self._ledger

    def when_done(self, callback: Done) -> None:
        """Call back once an update is done with: handled and saved, or skipped."""
        self._done.append(callback)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Wait for the chat's turn, then for a free slot; handle; save the dialog state."""
        key = _ordering_key(update)
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _KeyLock()
        entry.users += 1
        try:
            # asyncio.Lock wakes waiters first-in first-out, so a chat's updates keep their order.
            async with entry.lock, self._slots:
                await self._handle(update, coroutine)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]
            for callback in self._done:
                callback(update)

    async def _handle(self, update: object, coroutine: Awaitable[Any]) -> None:
        ledger = self._ledger
        if ledger is not None and ledger.seen(update):
            logger.info("an update handled before a restart came again; skipped")
            if inspect.iscoroutine(coroutine):
                coroutine.close()
            if ledger.unanswered(update):
                await self._answer_instead(update)
            return
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        mark = None
        update_id = update.update_id if isinstance(update, Update) else None
        try:
            mark = await self._attempt(update, coroutine)
            while update_id in self._to_retry and self._again is not None:
                self._to_retry.discard(update_id)
                if self._database is not None:
                    await self._database.wait_until_available()
                if mark is not None and ledger is not None and await ledger.stored(mark):
                    # Its change was stored before what failed: not again, and as it had shown
                    # nothing yet (retry_later), the person is told where they are.
                    await self._answer_instead(update)
                    break
                mark = await self._attempt(update, self._again(update))
        finally:
            if update_id is not None:
                self._failing_since.pop(update_id, None)
                self._to_retry.discard(update_id)
            self.in_flight -= 1
            try:
                if self._after_update is not None:
                    await self._after_update()
                if ledger is not None:
                    await ledger.settle(mark)
            except Exception:
                logger.exception("saving dialog state failed")

    async def answered_instead(self, update: object) -> bool:
        """For the error handler, when Telegram failed the update's answer (a 5xx, a dropped
        connection, a timeout after which the message may or may not have arrived): True if
        its change was stored already, and the person has been told where they are instead of
        being asked to try again (what they would send again, a dialog would take as the
        answer to its next question). False when nothing was stored: trying again is safe."""
        stamp = STAMP.get()
        if stamp is None or not stamp.stored or self._answer_lost is None:
            return False
        await self._answer_instead(update)
        return True

    async def _answer_instead(self, update: object) -> None:
        if self._answer_lost is None:
            return
        try:
            await self._answer_lost(update)
        except Exception:
            logger.exception("could not tell a person where they are after a lost answer")

    async def _attempt(self, update: object, coroutine: Awaitable[Any]) -> Mark | None:
        token = _ATTEMPT.set(_Attempt())
        try:
            if self._ledger is None:
                await coroutine
                return None
            with self._ledger.handling(update) as mark:
                await coroutine
            return mark
        finally:
            _ATTEMPT.reset(token)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down: the application waits for running updates itself."""


def _ordering_key(update: object) -> object:
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return ("chat", update.effective_chat.id)
        if update.effective_user is not None:
            return ("user", update.effective_user.id)
    return ("other", id(update))
