"""Delivery of queued updates to the bot's webhook, one at a time and in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from .updates import UpdateQueue

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
_FIRST_RETRY_DELAY = 0.1
_MAX_RETRY_DELAY = 2.0
_DELIVERY_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass(frozen=True)
class WebhookConfig:
    """What setWebhook configured."""

    url: str
    secret: str | None
    max_connections: int
    ip_address: str | None


class WebhookDelivery:
    """Background task POSTing each queued update until the webhook answers 2xx."""

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
        delay = _FIRST_RETRY_DELAY
        while True:
            update = await self._queue.changed.wait_for(self._queue.first, None)
            if update is None:  # only possible with a timeout; keeps mypy informed
                continue
            if await self._deliver(update):
                self._queue.confirm(int(update["update_id"]))
                delay = _FIRST_RETRY_DELAY
            else:
                # Back off like Telegram does, so a failing bot is not hammered.
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY)

    async def _deliver(self, update: dict[str, Any]) -> bool:
        headers = {SECRET_HEADER: self.config.secret} if self.config.secret else {}
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
        if 200 <= status < 300:
            return True
        self._record_error(f"Wrong response from the webhook: {status}")
        logger.warning("webhook answered %s to update %s", status, update["update_id"])
        return False

    def _record_error(self, message: str) -> None:
        self.last_error_date = int(self._clock())
        self.last_error_message = message
