"""Long polling that confirms an update to Telegram only once it has been handled.

Telegram keeps an update until getUpdates is called with a higher offset. python-telegram-bot's
Updater makes that call as soon as it has queued what the last one returned, so a process that
dies loses every update it had fetched and not yet handled: a referral's Send pressed at that
moment would be gone. Here the offset stays at the oldest update not yet handled (dialog state
saved, see .processor): after a crash Telegram delivers again everything not finished, and
.ledger skips what had been finished but not yet confirmed.

While updates are being handled, getUpdates returns them again at once (they are not confirmed);
the poller takes only the new ones. Each such call reads every update still in hand again, so it
asks again only once a quarter of those in hand have finished (at least one when the last call
brought nothing new), or after `busy_poll` seconds for newcomers: then it reads each update a
few times at most, not once per update finished while it was in hand (at 40 in hand that was
8 % of the bot's CPU, all of it parsing the same updates again). With nothing in hand it
long-polls as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from telegram import Bot, Update
from telegram.error import Conflict, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

logger = logging.getLogger(__name__)

_READ_MARGIN = 10.0  # seconds beyond the long poll's own before a read times out
_MAX_BACKOFF = 30.0
# While busy, ask again once this share of the updates in hand has finished: each is read again
# at most about this many times.
_REFETCH_SHARE = 4


class Poller:
    def __init__(
        self,
        bot: Bot,
        queue: asyncio.Queue[object],
        *,
        allowed_updates: Sequence[str],
        timeout: int = 10,
        busy_poll: float = 0.5,
    ) -> None:
        self.bot = bot
        self.queue = queue
        self.allowed_updates = list(allowed_updates)
        self.timeout = timeout
        self.busy_poll = busy_poll
        self._in_hand: set[int] = set()  # fetched and not yet handled
        self._next = 0  # the first update id not seen yet (0: whatever Telegram has)
        self._finishes = 0  # updates finished since the last getUpdates began
        self._wanted = 1  # finishes to wait for before asking again while busy
        self._finished = asyncio.Event()
        # Set while it waits between calls for updates in hand to finish (for tests).
        self.parked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def offset(self) -> int:
        """What getUpdates is asked with: it confirms everything below."""
        return min(self._in_hand) if self._in_hand else self._next

    def handled(self, update: object) -> None:
        """The update is done with (or was skipped): it may be confirmed."""
        if isinstance(update, Update) and update.update_id in self._in_hand:
            self._in_hand.discard(update.update_id)
            self._finishes += 1
            if self._finishes >= self._wanted:
                self._finished.set()
                self.parked.clear()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="roundtable:polling")

    async def stop(self) -> None:
        """Stop fetching and confirm what has been handled."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await self._get_updates(wait=0, limit=1)
        except TelegramError as error:
            logger.warning("could not confirm the handled updates: %s", type(error).__name__)

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            busy = bool(self._in_hand)
            # Finishes during the call are counted; none of them wakes the wait after it early.
            self._finishes, self._wanted = 0, len(self._in_hand) + 1
            self._finished.clear()
            try:
                fetched = await self._get_updates(wait=0 if busy else self.timeout)
            except RetryAfter as error:
                await asyncio.sleep(retry_after_seconds(error))
                continue
            except Conflict as error:
                # A webhook still set (deleted here), or another process polling.
                logger.warning("getUpdates refused: %s", error.message)
                with contextlib.suppress(TelegramError):
                    await self.bot.delete_webhook()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            except TelegramError as error:
                logger.warning("getUpdates failed: %s", type(error).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            backoff = 1.0
            new = await self._take(fetched)
            if self._in_hand:
                await self._wait_for_finishes(at_least=0 if new else 1)

    async def _wait_for_finishes(self, *, at_least: int) -> None:
        """Wait until a share of the updates in hand have finished, or `busy_poll` seconds."""
        self._wanted = max(at_least, len(self._in_hand) // _REFETCH_SHARE)
        if self._finishes >= self._wanted:
            return
        self._finished.clear()
        self.parked.set()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.busy_poll):
                    await self._finished.wait()
        finally:
            self.parked.clear()

    async def _get_updates(self, *, wait: int, limit: int = 100) -> list[dict[str, Any]]:
        """getUpdates from the offset, waiting up to `wait` seconds for news."""
        # The raw answer (Bot._post, as Bot.get_updates calls it): only the new updates are
        # turned into Update objects, not every one still in hand each time it comes back
        # (about 0.2 ms each). do_api_request would do, but warns on every call.
        result = await self.bot._post(
            "getUpdates",
            {
                "offset": self.offset,
                "timeout": wait,
                "limit": limit,
                "allowed_updates": self.allowed_updates,
            },
            read_timeout=wait + _READ_MARGIN,
        )
        return list(result) if isinstance(result, list) else []

    async def _take(self, fetched: list[dict[str, Any]]) -> int:
        """Queue the updates not seen before; how many."""
        new = 0
        for data in fetched:
            update_id = data.get("update_id")
            if not isinstance(update_id, int) or update_id < self._next:
                continue
            self._next = update_id + 1
            try:
                update = Update.de_json(data, self.bot)
            except Exception:  # a malformed update must not stop the others
                logger.exception("could not read update %s; skipped", update_id)
                continue
            self._in_hand.add(update_id)
            new += 1
            await self.queue.put(update)
        return new


def retry_after_seconds(error: RetryAfter) -> float:
    """How long Telegram asked to wait."""
    with warnings.catch_warnings():  # an int now, a timedelta in a future major
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = error.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
