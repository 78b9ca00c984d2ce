"""A local stand-in for the Telegram Bot API: an aiohttp server plus the chats it serves."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

import aiohttp
from aiohttp import web

from .callbacks import CallbackRegistry
from .content import check_commands, check_reply_markup, render_caption, render_text
from .errors import ApiError
from .faults import FaultDraw, Faults
from .files import FileStore, StoredFile
from .flood import FloodGate, FloodLimits
from .html_text import FormattedText
from .models import BotMessage, CallbackAnswer, JournalEntry, SandboxStats, inline_keyboard
from .params import ApiRequest, read_request
from .people import Person, PersonContext
from .updates import UpdateQueue
from .waiting import Signal
from .webhook import WebhookConfig, WebhookDelivery

logger = logging.getLogger(__name__)

Handler = Callable[[ApiRequest], Awaitable[Any]]
PollOutcome = Literal["ready", "superseded", "closed", "timeout"]

_SENDING_METHODS = frozenset(
    {"sendMessage", "sendDocument", "sendPhoto", "copyMessage", "forwardMessage"}
)
_DELETE_WINDOW_SECONDS = 48 * 3600
_MAX_DELETE_BATCH = 100
_MAX_UPDATES_PER_CALL = 100
_MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files for bots
_MAX_REQUEST_BYTES = 51 * 1024 * 1024  # 50 MB uploads plus the form around them
_MAX_CALLBACK_ANSWER = 200
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_LANGUAGE_CODE = re.compile(r"(?:[a-z]{2})?")
_SCOPE_TYPES = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)
# Telegram's wording for the statuses fail_next can inject; anything else reads as a 500.
_FAULT_DESCRIPTIONS = {
    400: "Bad Request: injected failure",
    403: "Forbidden: bot was blocked by the user",
    502: "Bad Gateway",
}
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)


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
        self._callbacks = CallbackRegistry()
        self._updates = UpdateQueue(on_confirmed=self._acknowledged)
        self._flood_gate = FloodGate(flood)
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._webhook: WebhookDelivery | None = None
        self._poll_generation = 0
        self._parked_polls = 0
        self._polls_changed = Signal()
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
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
            callbacks=self._callbacks,
            clock=clock,
            push_update=self.push_update,
        )

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 = any free port) in the running event loop."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        self._stopping = False
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
        self._session = aiohttp.ClientSession()
        if self._webhook is not None:
            self._webhook = self._start_delivery(self._webhook.config)
        logger.info("sandbox Bot API listening on %s:%d", host, self._port)

    async def stop(self) -> None:
        """Stop serving; ends webhook delivery and wakes waiting long polls."""
        self._stopping = True
        self._release.set()
        self._updates.changed.notify()
        if self._webhook is not None:
            await self._webhook.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
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
        return self._webhook.config.url if self._webhook else None

    @property
    def webhook_secret(self) -> str | None:
        return self._webhook.config.secret if self._webhook else None

    @property
    def webhook_posts(self) -> int:
        """Webhook POSTs sent and waiting for the bot's answer."""
        return self._webhook.posting if self._webhook else 0

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
        return list(self._commands.get(_commands_key(scope, language_code), []))

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
        if not await self._polls_changed.wait_until(lambda: self._parked_polls > 0, timeout):
            raise AssertionError(f"No getUpdates long poll was waiting within {timeout} s.")

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
        if fault == "429":
            retry_after = self.faults.faults.retry_after
            raise ApiError(
                429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
            )
        status = int(fault)
        raise ApiError(status, _FAULT_DESCRIPTIONS.get(status, "Internal Server Error"))

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
            status, retry_after = faults.pop(0)
            if status == 429:
                raise ApiError(
                    429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
                )
            raise ApiError(status, _FAULT_DESCRIPTIONS.get(status, "Internal Server Error"))
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
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "editMessageCaption": self._edit_message_caption,
            "deleteMessage": self._delete_message,
            "deleteMessages": self._delete_messages,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
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

    # --- updates --------------------------------------------------------------------------

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
        self._updates.set_allowed(_string_list(request, "allowed_updates"))
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
        self._updates.set_allowed(_string_list(request, "allowed_updates"))
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

    # --- messages -------------------------------------------------------------------------

    async def _send_message(self, request: ApiRequest) -> dict[str, Any]:
        person = self._reachable_person(request)
        text = render_text(
            request.text("text"), request.text("parse_mode"), _list(request, "entities")
        )
        markup = check_reply_markup(request.object("reply_markup"))
        self._throttle(person.chat_id)
        message = self._new_bot_message(person, request, markup)
        message.text = text.text
        message.entities = text.entities
        message.html = request.text("text") if _is_html(request) else None
        person.chat.add(message)
        return person.chat.to_dict(message)

    async def _send_document(self, request: ApiRequest) -> dict[str, Any]:
        person = self._reachable_person(request)
        stored = self._document_file(request)
        caption = render_caption(
            request.text("caption"),
            request.text("parse_mode"),
            _list(request, "caption_entities"),
        )
        markup = check_reply_markup(request.object("reply_markup"))
        self._throttle(person.chat_id)
        message = self._new_bot_message(person, request, markup)
        message.document = stored.document_dict()
        if caption is not None:
            message.caption = caption.text
            message.caption_entities = caption.entities
            message.html = request.text("caption") if _is_html(request) else None
        person.chat.add(message)
        return person.chat.to_dict(message)

    async def _edit_message_text(self, request: ApiRequest) -> dict[str, Any]:
        person, message = self._message_to_edit(request)
        if message.text is None:
            raise ApiError.bad_request("there is no text in the message to edit")
        text = render_text(
            request.text("text"), request.text("parse_mode"), _list(request, "entities")
        )
        # Without reply_markup Telegram drops the inline keyboard, so None is a real value.
        markup = check_reply_markup(request.object("reply_markup"))
        if _same_content(message, text, markup):
            raise ApiError.bad_request(_NOT_MODIFIED)
        edited = replace(
            message,
            text=text.text,
            entities=text.entities,
            html=request.text("text") if _is_html(request) else None,
            reply_markup=markup,
            edited=True,
            edit_date=self._now(),
        )
        person.chat.update(edited, "edited")
        return person.chat.to_dict(edited)

    async def _edit_message_caption(self, request: ApiRequest) -> dict[str, Any]:
        person, message = self._message_to_edit(request)
        if message.text is not None:
            raise ApiError.bad_request("there is no caption in the message to edit")
        caption = render_caption(
            request.text("caption"),
            request.text("parse_mode"),
            _list(request, "caption_entities"),
        )
        markup = check_reply_markup(request.object("reply_markup"))
        text = caption.text if caption is not None else None
        entities = caption.entities if caption is not None else []
        if (
            message.caption == text
            and message.caption_entities == entities
            and _normal_markup(message.reply_markup) == _normal_markup(markup)
        ):
            raise ApiError.bad_request(_NOT_MODIFIED)
        edited = replace(
            message,
            caption=text,
            caption_entities=entities,
            html=request.text("caption") if _is_html(request) else None,
            reply_markup=markup,
            edited=True,
            edit_date=self._now(),
        )
        person.chat.update(edited, "edited")
        return person.chat.to_dict(edited)

    async def _edit_message_reply_markup(self, request: ApiRequest) -> dict[str, Any]:
        person, message = self._message_to_edit(request)
        markup = check_reply_markup(request.object("reply_markup"))
        if _normal_markup(markup) == _normal_markup(message.reply_markup):
            raise ApiError.bad_request(_NOT_MODIFIED)
        edited = replace(message, reply_markup=markup, edited=True, edit_date=self._now())
        person.chat.update(edited, "edited")
        return person.chat.to_dict(edited)

    async def _delete_message(self, request: ApiRequest) -> bool:
        person = self._person_for(request)
        message = person.chat.messages.get(request.message_id())
        if message is None or message.deleted:
            raise ApiError.bad_request("message to delete not found")
        if self._clock() - message.date > _DELETE_WINDOW_SECONDS:
            raise ApiError.bad_request("message can't be deleted for everyone")
        person.chat.update(replace(message, deleted=True), "deleted")
        return True

    async def _delete_messages(self, request: ApiRequest) -> bool:
        """Like Telegram: 1 to 100 ids; messages that cannot be found or deleted are skipped."""
        person = self._person_for(request)
        ids = request.object("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= _MAX_DELETE_BATCH:
            raise ApiError.bad_request("message_ids must be a list of 1 to 100 identifiers")
        for message_id in ids:
            message = person.chat.messages.get(message_id) if isinstance(message_id, int) else None
            if message is None or message.deleted:
                continue
            if self._clock() - message.date > _DELETE_WINDOW_SECONDS:
                continue
            person.chat.update(replace(message, deleted=True), "deleted")
        return True

    async def _answer_callback_query(self, request: ApiRequest) -> bool:
        text = request.text("text")
        if text is not None and len(text) > _MAX_CALLBACK_ANSWER:
            raise ApiError.bad_request("MESSAGE_TOO_LONG")
        answer = CallbackAnswer(text=text, show_alert=request.flag("show_alert"))
        self._callbacks.answer(request.text("callback_query_id") or "", answer)
        return True

    def _new_bot_message(
        self, person: Person, request: ApiRequest, markup: dict[str, Any] | None
    ) -> BotMessage:
        return BotMessage(
            message_id=person.chat.new_message_id(),
            chat_id=person.chat_id,
            from_bot=True,
            date=self._now(),
            text=None,
            html=None,
            caption=None,
            reply_markup=markup,
            document=None,
            protect_content=request.flag("protect_content"),
            edited=False,
            deleted=False,
        )

    def _message_to_edit(self, request: ApiRequest) -> tuple[Person, BotMessage]:
        if request.text("inline_message_id"):
            raise ApiError.bad_request("MESSAGE_ID_INVALID")  # no inline mode in the sandbox
        person = self._reachable_person(request)
        message = person.chat.messages.get(request.message_id())
        if message is None or message.deleted:
            raise ApiError.bad_request("message to edit not found")
        if not message.from_bot:
            raise ApiError.bad_request("message can't be edited")
        return person, message

    def _person_for(self, request: ApiRequest) -> Person:
        person = self.people.get(request.chat_id())
        if person is None:
            raise ApiError.bad_request("chat not found")
        return person

    def _reachable_person(self, request: ApiRequest) -> Person:
        person = self._person_for(request)
        if person.blocked:
            self.stats.forbidden[person.chat_id] += 1
            raise ApiError.forbidden("bot was blocked by the user")
        return person

    def _throttle(self, chat_id: int) -> None:
        retry_after = self._flood_gate.acquire(chat_id)
        if retry_after is not None:
            raise ApiError(
                429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
            )

    def _now(self) -> int:
        return int(self._clock())

    # --- files ----------------------------------------------------------------------------

    def _document_file(self, request: ApiRequest) -> StoredFile:
        reference = request.text("document") or ""
        upload = request.uploads.get("document")
        if upload is None and reference.startswith("attach://"):
            upload = request.uploads.get(reference.removeprefix("attach://"))
        if upload is not None:
            if not upload.content:
                raise ApiError.bad_request("file must be non-empty")
            return self._files.add(
                upload.content,
                kind="document",
                file_name=upload.file_name,
                mime_type=upload.content_type,
            )
        if not reference:
            raise ApiError.bad_request("there is no document in the request")
        stored = self._files.by_id(reference)
        if stored is None:
            raise ApiError.bad_request("wrong file identifier/HTTP URL specified")
        return stored

    async def _get_file(self, request: ApiRequest) -> dict[str, Any]:
        stored = self._files.by_id(request.text("file_id") or "")
        if stored is None:
            raise ApiError.bad_request("invalid file_id")
        if stored.size > _MAX_DOWNLOAD_BYTES:
            raise ApiError.bad_request("file is too big")
        return stored.file_dict()

    # --- commands -------------------------------------------------------------------------

    async def _set_my_commands(self, request: ApiRequest) -> bool:
        commands = check_commands(request.object("commands"))
        key = _request_commands_key(request)
        if commands:
            self._commands[key] = commands
        else:
            self._commands.pop(key, None)
        return True

    async def _get_my_commands(self, request: ApiRequest) -> list[dict[str, str]]:
        return list(self._commands.get(_request_commands_key(request), []))

    async def _delete_my_commands(self, request: ApiRequest) -> bool:
        self._commands.pop(_request_commands_key(request), None)
        return True


class _Dropped(Exception):
    """An injected fault: close the connection without answering."""


def _chat_of(request: ApiRequest) -> int | None:
    value = request.params.get("chat_id")
    return value if isinstance(value, int) else None


def _request_commands_key(request: ApiRequest) -> tuple[str, str]:
    scope = request.object("scope")
    if scope is not None and not (isinstance(scope, dict) and scope.get("type") in _SCOPE_TYPES):
        raise ApiError.bad_request("can't parse BotCommandScope JSON object")
    language_code = request.text("language_code") or ""
    if not _LANGUAGE_CODE.fullmatch(language_code):
        raise ApiError.bad_request("invalid language code specified")
    return _commands_key(scope, language_code)


def _commands_key(scope: dict[str, Any] | None, language_code: str) -> tuple[str, str]:
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code


def _list(request: ApiRequest, name: str) -> list[Any] | None:
    value = request.object(name)
    if value is not None and not isinstance(value, list):
        raise ApiError.bad_request(f"can't parse {name} JSON array")
    return value


def _string_list(request: ApiRequest, name: str) -> list[str] | None:
    values = _list(request, name)
    if values is not None and not all(isinstance(value, str) for value in values):
        raise ApiError.bad_request(f"can't parse {name} JSON array")
    return values


def _is_html(request: ApiRequest) -> bool:
    return (request.text("parse_mode") or "").lower() == "html"


def _normal_markup(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    # An empty inline keyboard shows the same as none at all.
    if not markup or ("inline_keyboard" in markup and not any(inline_keyboard(markup))):
        return None
    return markup


def _same_content(message: BotMessage, text: FormattedText, markup: dict[str, Any] | None) -> bool:
    return (
        message.text == text.text
        and message.entities == text.entities
        and _normal_markup(message.reply_markup) == _normal_markup(markup)
    )
