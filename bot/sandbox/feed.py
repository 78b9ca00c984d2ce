"""How the bot gets its queued updates: getUpdates long polls, or POSTs to the webhook it set."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Literal

import aiohttp

from .errors import ApiError
from .params import ApiRequest, Handler
from .updates import UpdateQueue
from .waiting import Signal
from .webhook import WebhookConfig, WebhookDelivery

logger = logging.getLogger(__name__)

PollOutcome = Literal["ready", "superseded", "closed", "timeout"]

_MAX_UPDATES_PER_CALL = 100
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


class UpdateFeed:
    """Hands the queue's updates to the bot the way it asked for them; only one way at a time,
    as on Telegram: getUpdates is refused while a webhook is set."""

    def __init__(self, queue: UpdateQueue, clock: Callable[[], float]) -> None:
        self._updates = queue
        self._clock = clock
        self._webhook: WebhookDelivery | None = None
        self._session: aiohttp.ClientSession | None = None
        self._poll_generation = 0
        self._parked_polls = 0
        self._polls_changed = Signal()
        self._stopping = False

    def methods(self) -> dict[str, Handler]:
        return {
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
        }

    @property
    def webhook(self) -> WebhookDelivery | None:
        """The delivery to the webhook the bot set, if it set one."""
        return self._webhook

    def open(self) -> None:
        """Start handing out updates; a webhook set before is delivered to again."""
        self._stopping = False
        self._session = aiohttp.ClientSession()
        if self._webhook is not None:
            self._webhook = self._start_delivery(self._webhook.config)

    async def close(self) -> None:
        """Stop: end webhook delivery and wake the waiting long polls."""
        self._stopping = True
        self._updates.changed.notify()
        if self._webhook is not None:
            await self._webhook.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def wait_for_long_poll(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until a getUpdates call is parked waiting for updates."""
        if not await self._polls_changed.wait_until(lambda: self._parked_polls > 0, timeout):
            raise AssertionError(f"No getUpdates long poll was waiting within {timeout} s.")

    # --- getUpdates -----------------------------------------------------------------------

    async def _get_updates(self, request: ApiRequest) -> list[dict[str, Any]]:
        if self._webhook is not None:
            raise ApiError.conflict(
                "can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first"
            )
        generation = self._supersede_polls()
        offset = request.integer("offset") or 0
        requested = request.integer("limit") or _MAX_UPDATES_PER_CALL
        limit = min(max(requested, 1), _MAX_UPDATES_PER_CALL)
        timeout = max(request.integer("timeout") or 0, 0)
        self._updates.set_allowed(request.strings("allowed_updates"))
        self._updates.confirm_below(offset)
        outcome = await self._long_poll(generation, offset, timeout)
        if outcome == "superseded":
            raise ApiError.conflict(
                "terminated by other getUpdates request; "
                "make sure that only one bot instance is running"
            )
        return [] if outcome == "closed" else self._updates.take(offset, limit)

    def _supersede_polls(self) -> int:
        # Telegram answers an older, still waiting getUpdates with 409 once a new one arrives.
        self._poll_generation += 1
        self._updates.changed.notify()
        return self._poll_generation

    async def _long_poll(self, generation: int, offset: int, seconds: int) -> PollOutcome:
        def outcome() -> PollOutcome | None:
            if generation != self._poll_generation:
                return "superseded"
            if self._stopping or self._webhook is not None:
                return "closed"
            return "ready" if self._updates.take(offset, 1) else None

        immediate = outcome()
        if immediate is not None:
            return immediate
        if seconds == 0:
            return "timeout"
        self._parked_polls += 1
        self._polls_changed.notify()
        try:
            result: PollOutcome | None = await self._updates.changed.wait_for(outcome, seconds)
        finally:
            self._parked_polls -= 1
        return "timeout" if result is None else result

    # --- webhook --------------------------------------------------------------------------

    async def _set_webhook(self, request: ApiRequest) -> bool:
        url = request.text("url") or ""
        if not url:
            return await self._delete_webhook(request)
        if not url.startswith(("http://", "https://")):
            raise ApiError.bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = request.text("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
            raise ApiError.bad_request("secret token contains unallowed characters")
        if request.flag("drop_pending_updates"):
            self._updates.clear()
        self._updates.set_allowed(request.strings("allowed_updates"))
        config = WebhookConfig(
            url=url,
            secret=secret,
            max_connections=request.integer("max_connections") or 40,
            ip_address=request.text("ip_address"),
        )
        await self._replace_webhook(config)
        return True

    async def _delete_webhook(self, request: ApiRequest) -> bool:
        if request.flag("drop_pending_updates"):
            self._updates.clear()
        await self._replace_webhook(None)
        return True

    async def _replace_webhook(self, config: WebhookConfig | None) -> None:
        if self._webhook is not None:
            if self._webhook.config == config:
                return  # PTB sets the same webhook on every start; keep delivering
            await self._webhook.stop()
        self._webhook = self._start_delivery(config) if config is not None else None
        logger.info("webhook %s", "set" if config is not None else "deleted")
        # Long polls waiting right now must notice the webhook.
        self._updates.changed.notify()

    def _start_delivery(self, config: WebhookConfig) -> WebhookDelivery:
        if self._session is None:
            raise RuntimeError("the sandbox has not been started")
        delivery = WebhookDelivery(config, self._updates, self._session, self._clock)
        delivery.start()
        return delivery

    async def _get_webhook_info(self, request: ApiRequest) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook is not None:
            info["url"] = self._webhook.config.url
            info["max_connections"] = self._webhook.config.max_connections
            if self._webhook.config.ip_address:
                info["ip_address"] = self._webhook.config.ip_address
            if self._webhook.last_error_date is not None:
                info["last_error_date"] = self._webhook.last_error_date
                info["last_error_message"] = self._webhook.last_error_message
        if self._updates.allowed:
            info["allowed_updates"] = self._updates.allowed
        return info
