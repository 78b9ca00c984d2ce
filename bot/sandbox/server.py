"""A local stand-in for the Telegram Bot API: the aiohttp server that answers (or, as a test
orders, fails) each call, the simulated people, and what tests ask and wait for; the methods
themselves are in messages (chats), feed (updates) and commands (menus)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .callbacks import CallbackRegistry
from .commands import CommandMenus
from .errors import ApiError
from .faults import FaultDraw, Faults
from .feed import UpdateFeed
from .files import FileStore
from .flood import FloodGate, FloodLimits
from .messages import ChatMethods
from .models import JournalEntry, SandboxStats
from .params import ApiRequest, Handler, read_request
from .people import Person, PersonContext
from .updates import UpdateQueue
from .waiting import Signal

logger = logging.getLogger(__name__)

_SENDING_METHODS = frozenset(
    {"sendMessage", "sendDocument", "sendPhoto", "copyMessage", "forwardMessage"}
)
_MAX_REQUEST_BYTES = 51 * 1024 * 1024  # 50 MB uploads plus the form around them
# Telegram's wording for the statuses fail_next can inject; anything else reads as a 500.
_FAULT_DESCRIPTIONS = {
    400: "Bad Request: injected failure",
    403: "Forbidden: bot was blocked by the user",
    502: "Bad Gateway",
}


class BotApiSandbox:
    """Serves the Bot API for one bot token and keeps the simulated people it talks to."""

    def __init__(
        self,
        *,
        token: str,
        bot_id: int = 7000000001,
        bot_username: str = "roundtable_sandbox_bot",
        bot_name: str = "Round Table",
        flood: FloodLimits = FloodLimits(),  # noqa: B008 - frozen, so sharing it is safe
        rtt_ms: float = 0.0,
        clock: Callable[[], float] = time.time,
        faults: Faults = Faults(),  # noqa: B008 - frozen, so sharing it is safe
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_name = bot_name
        self.flood = flood
        self.rtt_ms = rtt_ms
        self.stats = SandboxStats()
        self.unimplemented: list[str] = []
        self.people: dict[int, Person] = {}
        self._clock = clock
        self._files = FileStore()
        callbacks = CallbackRegistry()
        self._updates = UpdateQueue(on_confirmed=self._acknowledged)
        self._feed = UpdateFeed(self._updates, clock)
        self._chats = ChatMethods(
            people=self.people,
            stats=self.stats,
            files=self._files,
            callbacks=callbacks,
            flood_gate=FloodGate(flood),
            clock=clock,
        )
        self._menus = CommandMenus()
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self._handlers = self._method_table()
        self._faults: dict[str, list[tuple[int, int]]] = {}
        self._drops: dict[str, int] = {}
        self._holds: dict[str, int] = {}
        self.held = 0  # calls held unanswered right now (hold_next)
        self._release = asyncio.Event()
        self.faults = FaultDraw(faults)
        # Every update pushed, in order, with when the bot confirmed it (getUpdates offset).
        self.journal: dict[int, JournalEntry] = {}
        self._calls_in_progress = 0  # not counting long polls
        self._calls_changed = Signal()
        self._acknowledgements = Signal()
        self._person_context = PersonContext(
            bot_user=self.bot_user,
            files=self._files,
            callbacks=callbacks,
            clock=clock,
            push_update=self.push_update,
        )

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 = any free port) in the running event loop."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        self._release = asyncio.Event()
        app = web.Application(client_max_size=_MAX_REQUEST_BYTES)
        for http_method in ("GET", "POST"):
            app.router.add_route(http_method, "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{file_path:.*}", self._handle_file)
        # No access log: request URLs contain the bot token and, for GET calls, message texts.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self._host = host
        self._port = int(runner.addresses[0][1])
        self._feed.open()
        logger.info("sandbox Bot API listening on %s:%d", host, self._port)

    async def stop(self) -> None:
        """Stop serving; ends webhook delivery and wakes waiting long polls."""
        self._release.set()
        await self._feed.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            logger.info("sandbox Bot API stopped")

    # --- public state ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the sandbox has not been started")
        return self._port

    @property
    def on_real_time(self) -> bool:
        """Whether messages are dated by the real clock, as a real process's own clock reads it
        (the tests' fake clock would make a real process see them as days old, or not yet sent)."""
        return self._clock is time.time

    @property
    def base_url(self) -> str:
        return f"{self._origin()}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self._origin()}/file/bot"

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
        }

    @property
    def webhook_url(self) -> str | None:
        webhook = self._feed.webhook
        return webhook.config.url if webhook else None

    @property
    def webhook_secret(self) -> str | None:
        webhook = self._feed.webhook
        return webhook.config.secret if webhook else None

    @property
    def webhook_posts(self) -> int:
        """Webhook POSTs sent and waiting for the bot's answer."""
        webhook = self._feed.webhook
        return webhook.posting if webhook else 0

    def person(
        self,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "cs",
    ) -> Person:
        """The person with this id, created on first use; their private chat id is user_id."""
        existing = self.people.get(user_id)
        if existing is not None:
            return existing
        person = Person(
            self._person_context,
            user_id,
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        self.people[user_id] = person
        return person

    def my_commands(
        self, *, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        """What setMyCommands stored for exactly this scope and language ([] if nothing)."""
        return self._menus.menu(scope, language_code)

    def fail_next(
        self, method: str, status: int = 500, *, times: int = 1, retry_after: int = 5
    ) -> None:
        """Answer the next `times` calls of a Bot API method with an error (e.g. 500 or 502),
        as Telegram sometimes does; 429 comes with `retry_after` seconds."""
        self._faults.setdefault(method.lower(), []).extend([(status, retry_after)] * times)

    def drop_next(self, method: str, *, times: int = 1) -> None:
        """Close the connection without any answer on the next `times` calls of a Bot API
        method (after reading the request), as a network failure or a crashing proxy does."""
        key = method.lower()
        self._drops[key] = self._drops.get(key, 0) + times

    def hold_next(self, method: str, *, times: int = 1) -> None:
        """Keep the next `times` calls of a method waiting, unanswered and without effect,
        until `release_held` or the end: a bot killed meanwhile dies with the call in flight."""
        key = method.lower()
        self._holds[key] = self._holds.get(key, 0) + times

    def release_held(self) -> None:
        """Answer the held calls with 502 Bad Gateway (they never took effect)."""
        self._release.set()

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by getUpdates or the webhook."""
        return len(self._updates)

    async def push_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update for the bot (update_id is assigned when missing); its id."""
        update_id = self._updates.push(update)
        self.journal[update_id] = JournalEntry.of(update_id, update)
        logger.debug("queued update %d", update_id)
        return update_id

    def inject(self, faults: Faults) -> None:
        """From now on, fail the bot's calls as `faults` says (Faults() for none); what was
        injected so far stays in `self.faults.injected`."""
        earlier = self.faults
        self.faults = FaultDraw(faults)
        self.faults.injected = earlier.injected
        self.faults.by_chat = earlier.by_chat

    async def wait_until_acknowledged(self, update_id: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until the bot has confirmed the update (asked getUpdates past it)."""
        entry = self.journal[update_id]
        if not await self._acknowledgements.wait_until(
            lambda: entry.acknowledged_at is not None, timeout
        ):
            raise AssertionError(f"Update {update_id} was not acknowledged within {timeout} s.")

    def _acknowledged(self, update_ids: list[int]) -> None:
        self._acknowledgements.notify()
        now = time.monotonic()
        for update_id in update_ids:
            entry = self.journal.get(update_id)
            if entry is not None and entry.acknowledged_at is None:
                entry.acknowledged_at = now
                person = self.people.get(entry.chat_id) if entry.chat_id is not None else None
                if person is not None:  # someone waiting for an answer may look again
                    person.chat.changed.notify()

    async def wait_for_calls(
        self,
        condition: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109
    ) -> bool:
        """Wait until condition() holds, looking again whenever a Bot API call ends; False if
        `timeout` seconds pass first."""
        return await self._calls_changed.wait_until(condition, timeout)

    async def wait_for_calls_to_end(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every client connection is closed and no call is being handled: after a
        bot was killed, what it had sent has all been taken in and answered (a request written
        just before it died is still read). Long polls left waiting do not count: they change
        nothing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        server = self._runner.server if self._runner is not None else None
        while server is not None and server.connections:
            if loop.time() > deadline:
                raise AssertionError(f"Connections to the stand-in still open after {timeout} s.")
            await asyncio.sleep(0.01)  # closed connections are not announced: look again
        await asyncio.sleep(0)  # a request read last gets its handler started
        remaining = max(deadline - loop.time(), 0.0)
        if not await self._calls_changed.wait_until(
            lambda: self._calls_in_progress == 0, remaining
        ):
            raise AssertionError(f"Bot API calls were still in progress after {timeout} s.")

    async def wait_for_long_poll(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until a getUpdates call is parked waiting for updates."""
        await self._feed.wait_for_long_poll(timeout)

    # --- HTTP -----------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        long_poll = request.match_info["method"].lower() == "getupdates"
        self._calls_in_progress += 0 if long_poll else 1
        try:
            return await self._answer_api(request)
        finally:
            self._calls_in_progress -= 0 if long_poll else 1
            self._calls_changed.notify()

    async def _answer_api(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        if self._drops.get(name.lower()):
            self._drops[name.lower()] -= 1
            return await self._drop_connection(request, name)
        if self._holds.get(name.lower()):
            self._holds[name.lower()] -= 1
            return await self._hold(request, name)
        try:
            result = await self._call(request, name)
            response = web.json_response({"ok": True, "result": result})
        except _Dropped:
            return await self._drop_connection(request, name)
        except ApiError as error:
            response = self._error_response(name, error)
        except Exception:
            logger.exception("the sandbox failed while handling %s", name)
            response = self._error_response(name, ApiError(500, "Internal Server Error"))
        await self._emulate_latency()
        return response

    async def _hold(self, request: web.Request, name: str) -> web.Response:
        await request.read()
        self.held += 1
        self._calls_changed.notify()
        try:
            await self._release.wait()
        finally:
            self.held -= 1
        return self._error_response(name, ApiError(502, "Bad Gateway"))

    async def _drop_connection(self, request: web.Request, name: str) -> web.Response:
        await request.read()
        if request.transport is not None:
            request.transport.close()
        logger.debug("%s: connection dropped without an answer", name)
        return web.Response()  # never reaches the client: the connection is gone

    async def _call(self, request: web.Request, name: str) -> Any:
        self._check_token(request.match_info["token"])
        method, handler = self._resolve(name)
        api_request = await read_request(request, method)
        fault = self.faults.draw(method, _chat_of(api_request))
        if fault is not None and fault != "timeout":
            self._inject(method, fault, api_request)
        result = await handler(api_request)
        if method in _SENDING_METHODS:
            self.stats.messages_sent += 1
        if fault == "timeout":
            sent = result.get("message_id") if isinstance(result, dict) else None
            self.faults.record(method, fault, _chat_of(api_request), sent)
            # Done, but the answer comes after the client has given up waiting.
            await asyncio.sleep(self.faults.faults.hold_seconds)
        logger.debug("%s answered", method)
        return result

    def _inject(self, method: str, fault: str, request: ApiRequest) -> None:
        """Fail the call before it does anything."""
        self.faults.record(method, fault, _chat_of(request))
        if fault == "drop":
            raise _Dropped
        raise _injected_error(int(fault), self.faults.faults.retry_after)

    async def _handle_file(self, request: web.Request) -> web.Response:
        try:
            self._check_token(request.match_info["token"])
            stored = self._files.by_path(request.match_info["file_path"])
            if stored is None:
                raise ApiError(404, "Not Found")
            response = web.Response(
                body=stored.content, content_type=stored.mime_type or "application/octet-stream"
            )
        except ApiError as error:
            response = self._error_response("file download", error)
        await self._emulate_latency()
        return response

    def _check_token(self, token: str) -> None:
        if token != self.token:
            raise ApiError(401, "Unauthorized")

    def _resolve(self, name: str) -> tuple[str, Handler]:
        # Telegram treats method names case-insensitively; stats use the canonical spelling.
        entry = self._handlers.get(name.lower())
        self.stats.requests[entry[0] if entry else name] += 1
        if entry is None:
            if name not in self.unimplemented:
                self.unimplemented.append(name)
            logger.error("Bot API method %s is not implemented by the sandbox", name)
            raise ApiError(404, f"Not Found: method {name} is not implemented by the sandbox")
        faults = self._faults.get(name.lower())
        if faults:
            raise _injected_error(*faults.pop(0))
        return entry

    def _error_response(self, name: str, error: ApiError) -> web.Response:
        self.stats.http_errors[error.status] += 1
        if error.status == 429:
            self.stats.http_429 += 1
        logger.debug("%s failed with HTTP %d", name, error.status)
        return web.json_response(error.payload(), status=error.status)

    async def _emulate_latency(self) -> None:
        if self.rtt_ms > 0:
            await asyncio.sleep(self.rtt_ms / 1000)

    def _origin(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def _method_table(self) -> dict[str, tuple[str, Handler]]:
        handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            **self._feed.methods(),
            **self._chats.methods(),
            **self._menus.methods(),
            "logOut": self._acknowledge,
            "close": self._acknowledge,
        }
        return {name.lower(): (name, handler) for name, handler in handlers.items()}

    # --- bot identity ---------------------------------------------------------------------

    async def _get_me(self, request: ApiRequest) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _acknowledge(self, request: ApiRequest) -> bool:
        return True


class _Dropped(Exception):
    """An injected fault: close the connection without answering."""


def _chat_of(request: ApiRequest) -> int | None:
    value = request.params.get("chat_id")
    return value if isinstance(value, int) else None


def _injected_error(status: int, retry_after: int) -> ApiError:
    """The error Telegram answers with that status; a 429 says when to try again."""
    if status == 429:
        return ApiError.too_many_requests(retry_after)
    return ApiError(status, _FAULT_DESCRIPTIONS.get(status, "Internal Server Error"))
