"""Webhook mode that answers Telegram's POST only once its update has been handled.

python-telegram-bot's webhook server (Updater.start_webhook) answers 200 as soon as the update is
on the queue, and Telegram forgets an update once it has that answer: a process killed before the
update was handled lost it. Here the POST waits until the update is done with (handled and its
dialog state saved, or skipped, see .processor) and only then gets its 200; a process killed
meanwhile breaks the connection, Telegram delivers the update again after the restart, and
.ledger skips it if it had been finished after all.

Telegram sends one update of a chat at a time, the next only after a 2xx, and at most
max_connections requests at once (tdlib/telegram-bot-api, WebhookActor); so the bot's ordered
processor sees what it would with long polling, and max_connections bounds the updates in hand.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from http import HTTPStatus

from aiohttp import web
from telegram import Bot, Update

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
_MAX_BODY = 1024 * 1024  # updates are small: files stay at Telegram until fetched
_SHUTDOWN_SECONDS = 5.0


class WebhookServer:
    def __init__(
        self,
        bot: Bot,
        queue: asyncio.Queue[object],
        *,
        secret: str,
        path: str,
        listen: str,
        port: int,
        pages: Callable[[web.Application], None] | None = None,
    ) -> None:
        self.bot = bot
        self.queue = queue
        self._secret = secret.encode()
        self._path = "/" + path.lstrip("/")
        self._listen = listen
        self._port = port
        self._pages = pages  # adds the web page's routes (bot.transport.web), if it is on
        self._in_hand: dict[int, asyncio.Future[bool]] = {}  # queued, not yet done with
        self._accepting = False
        self._runner: web.AppRunner | None = None

    def handled(self, update: object) -> None:
        """The update is done with (or was skipped): its POST may be answered."""
        if isinstance(update, Update):
            future = self._in_hand.pop(update.update_id, None)
            if future is not None and not future.done():
                future.set_result(True)

    async def start(self) -> None:
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_post(self._path, self._receive)
        if self._pages is not None:
            self._pages(app)
        # No access log: the path is a secret. Signals are the CLI's (bot.cli).
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_SECONDS
        )
        await runner.setup()
        await web.TCPSite(runner, self._listen, self._port).start()
        self._runner = runner
        self._accepting = True

    def refuse(self) -> None:
        """Take no new update (Telegram keeps it and tries again); those in hand still finish."""
        self._accepting = False

    async def stop(self) -> None:
        """Answer what was not handled with 503 (Telegram keeps it) and stop listening."""
        self._accepting = False
        for future in self._in_hand.values():
            if not future.done():
                future.set_result(False)
        self._in_hand.clear()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            return web.Response(status=HTTPStatus.FORBIDDEN)
        try:
            data = await request.json()
        except ValueError:
            return web.Response(status=HTTPStatus.BAD_REQUEST)
        if not self._accepting:  # checked after the last await before the update is queued
            return web.Response(status=HTTPStatus.SERVICE_UNAVAILABLE)
        update_id = data.get("update_id") if isinstance(data, dict) else None
        if not isinstance(update_id, int):
            return web.Response(status=HTTPStatus.BAD_REQUEST)
        # Telegram sends an update again when its POST took too long; it is in hand already.
        future = self._in_hand.get(update_id)
        if future is None:
            try:
                update = Update.de_json(data, self.bot)
            except Exception:  # a malformed update must not stop the chat's next ones
                logger.exception("could not read update %s; skipped", update_id)
                return web.Response(status=HTTPStatus.OK)
            future = self._in_hand[update_id] = asyncio.get_running_loop().create_future()
            await self.queue.put(update)
        # Shielded: Telegram hanging up must not cancel the wait of a POST sent again.
        handled = await asyncio.shield(future)
        return web.Response(status=HTTPStatus.OK if handled else HTTPStatus.SERVICE_UNAVAILABLE)
