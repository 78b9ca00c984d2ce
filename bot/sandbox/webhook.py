"""Delivery of queued updates to the bot's webhook, as Telegram does it.

Like tdlib/telegram-bot-api's WebhookActor: a chat's updates one at a time and in order, its next
only once the bot answered 2xx; a non-2xx answer or a broken connection means the update is
sent again after a growing pause (the chat waits meanwhile); up to max_connections POSTs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from .updates import UpdateQueue, update_type

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
_FIRST_RETRY_DELAY = 0.1
_MAX_RETRY_DELAY = 2.0
# Telegram hangs up on a webhook that has not answered for 60 s, and sends the update again.
_DELIVERY_TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass(frozen=True)
class WebhookConfig:
    """What setWebhook configured."""

    url: str
    secret: str | None
    max_connections: int
    ip_address: str | None


class WebhookDelivery:
    """Background task POSTing each queued update until the webhook answers 2xx."""

    posting = 0  # POSTs sent and not yet answered

    def __init__(
        self,
        config: WebhookConfig,
        queue: UpdateQueue,
        session: aiohttp.ClientSession,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self._queue = queue
        self._session = session
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.last_error_date: int | None = None
        self.last_error_message: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sandbox-webhook-delivery")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        busy: set[object] = set()  # chats with an update being delivered
        slots = asyncio.Semaphore(self.config.max_connections)
        deliveries: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                update = await self._queue.changed.wait_for(lambda: self._next(busy), None)
                if update is None:  # only possible with a timeout; keeps mypy informed
                    slots.release()
                    continue
                chat = chat_key(update)
                busy.add(chat)
                task = asyncio.create_task(self._deliver_until_taken(update))
                deliveries.add(task)
                task.add_done_callback(deliveries.discard)
                task.add_done_callback(functools.partial(self._free, busy, chat, slots))
        finally:
            for task in deliveries:
                task.cancel()
            await asyncio.gather(*deliveries, return_exceptions=True)

    def _next(self, busy: set[object]) -> dict[str, Any] | None:
        """The oldest update of a chat that has none being delivered."""
        for update in self._queue.take(0, len(self._queue)):
            if chat_key(update) not in busy:
                return update
        return None

    def _free(
        self, busy: set[object], chat: object, slots: asyncio.Semaphore, _task: object
    ) -> None:
        busy.discard(chat)
        slots.release()
        self._queue.changed.notify()

    async def _deliver_until_taken(self, update: dict[str, Any]) -> None:
        delay = _FIRST_RETRY_DELAY
        while not await self._deliver(update):
            # Back off like Telegram does, so a failing bot is not hammered.
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY_DELAY)
        self._queue.confirm(int(update["update_id"]))

    async def _deliver(self, update: dict[str, Any]) -> bool:
        headers = {SECRET_HEADER: self.config.secret} if self.config.secret else {}
        self.posting += 1
        try:
            async with self._session.post(
                self.config.url, json=update, headers=headers, timeout=_DELIVERY_TIMEOUT
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            self._record_error(f"Connection failed: {type(error).__name__}")
            logger.warning("webhook delivery of update %s failed to connect", update["update_id"])
            return False
        finally:
            self.posting -= 1
        if 200 <= status < 300:
            return True
        self._record_error(f"Wrong response from the webhook: {status}")
        logger.warning("webhook answered %s to update %s", status, update["update_id"])
        return False

    def _record_error(self, message: str) -> None:
        self.last_error_date = int(self._clock())
        self.last_error_message = message


def chat_key(update: dict[str, Any]) -> object:
    """What Telegram delivers one at a time: a chat's updates (or a user's, without a chat)."""
    body = update.get(update_type(update))
    if isinstance(body, dict):
        message = body.get("message")
        chat = body.get("chat") or (message.get("chat") if isinstance(message, dict) else None)
        if isinstance(chat, dict) and "id" in chat:
            return ("chat", chat["id"])
        sender = body.get("from") or body.get("user")
        if isinstance(sender, dict) and "id" in sender:
            return ("user", sender["id"])
    return ("update", update.get("update_id"))
