"""The one place where Round Table is wired: handlers in order, persistence, errors, start-up."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlparse

from pydantic import SecretStr
from telegram import Bot, LinkPreviewOptions, Update
from telegram._utils.types import JSONDict
from telegram.constants import ParseMode
from telegram.error import BadRequest, InvalidToken, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ContextTypes,
    Defaults,
    ExtBot,
)

from bot.core.runtime import Runtime
from bot.transport.mail import code_mail, notices
from bot.transport.mail.delivery import MailDispatcher, MailKind
from bot.transport.mail.imap import MailboxReader
from bot.transport.mail.smtp import SmtpSender
from bot.transport.telegram import delivery
from bot.transport.telegram.http import AiohttpRequest
from bot.transport.telegram.ledger import HandledUpdates
from bot.transport.telegram.persistence import DatabasePersistence
from bot.transport.telegram.polling import Poller, retry_after_seconds
from bot.transport.telegram.processor import OrderedUpdateProcessor, note_telegram_call
from bot.transport.telegram.webhook import WebhookServer
from bot.transport.web.pages import WebPages
from bot.transport.web.server import WebServer
from handlers import (
    board,
    case_notices,
    cases,
    circulation,
    circulation_notices,
    conference_notices,
    confidentiality,
    confidentiality_notices,
    contacts,
    email,
    guard,
    invitations,
    invite,
    mail_notices,
    mail_replies,
    members,
    method,
    plan,
    poll,
    record,
    referral,
    referral_notices,
    start,
    task_notices,
    tasks,
    triage,
    web_answers,
)
from handlers.common import RUNTIME_KEY, Context, Data
from handlers.errors import answer_lost, on_error
from handlers.menus import set_stranger_menus
from handlers.sweep import sweep

logger = logging.getLogger(__name__)

MAX_CONCURRENT_UPDATES = 64
# Connections to Telegram for the handlers' calls: one per update in flight and a few for the
# jobs. Not more: an idle pool costs memory, and HTTPXRequest even walked it on every call.
CONNECTION_POOL = MAX_CONCURRENT_UPDATES + 8
GUARD_GROUP = -1
MAILBOX_JOB = "mailbox"
WEB_KEY = "web_pages"
WEB_SERVER_KEY = "web_server"  # the page's own server in long-polling mode, once it listens

RoundTableApp = Application[Any, Context, Data, Data, Data, Any]


def build_application(runtime: Runtime) -> RoundTableApp:
    settings = runtime.settings
    if settings.token is None:
        raise ValueError("a token is needed to build the application")
    processor = OrderedUpdateProcessor(MAX_CONCURRENT_UPDATES)
    defaults = Defaults(
        parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)
    )
    application = (
        ApplicationBuilder()
        .token(settings.token.get_secret_value())
        .base_url(settings.bot_api_url)
        .base_file_url(settings.bot_file_url)
        .defaults(defaults)
        .context_types(ContextTypes(context=Context, bot_data=dict, chat_data=dict, user_data=dict))
        .persistence(DatabasePersistence(runtime.database, runtime.cipher))
        .concurrent_updates(processor)
        # aiohttp, not python-telegram-bot's default httpx: the same errors, a tenth of the CPU per
        # call under Telegram's network delay (bot/transport/telegram/http.py, `python -m bench
        # http`).
        .request(AiohttpRequest(connection_pool_size=CONNECTION_POOL))
        .get_updates_request(AiohttpRequest(connection_pool_size=1))
        # Updates come by bot.transport.telegram.polling or bot.transport.telegram.webhook: the
        # Updater confirms them too early.
        .updater(None)
        # Replies to a person's own taps are not bulk messages: Telegram's 30 a second for
        # everybody is the outbox's budget (its own pacer), not a cap on answering people.
        # Groups keep their 20 a minute, and a 429 is still waited out and retried.
        .rate_limiter(_NotingRateLimiter(overall_max_rate=0, max_retries=3))
        .build()
    )
    processor.after_each_update(application.update_persistence)
    processor.keep_ledger(HandledUpdates(runtime.database))
    processor.retry_when_back(runtime.database, application.process_update)
    # The dialogs that can show a person where they are, after an answer lost on the way.
    where_you_are = {referral.DIALOG: referral.where_you_are}
    processor.answer_instead(functools.partial(answer_lost, application, where_you_are))
    application.bot_data[RUNTIME_KEY] = runtime

    # Order matters. The guard runs first, in its own group, and stops strangers' updates.
    application.add_handlers(guard.handlers(), group=GUARD_GROUP)
    # Then each dialog in a group of its own: a command reaches every dialog, so the one it
    # starts begins and the others end; what a dialog takes stops there (handlers.common).
    dialogs = [
        start.join_handlers(),
        invite.handlers(),
        members.handlers(),
        email.handlers(),
        contacts.handlers(),
        referral.handlers(),
        triage.handlers(),
        plan.handlers(),
        method.handlers(),
        invitations.handlers(),
        record.handlers() + tasks.handlers(),
        circulation.handlers(),
        referral.command_handlers()
        + triage.command_handlers()
        + poll.handlers()
        + board.handlers()
        + method.command_handlers()
        + invitations.command_handlers()
        + record.command_handlers()
        + circulation.command_handlers()
        + tasks.command_handlers()
        + cases.command_handlers(),
        confidentiality.handlers() + start.general_handlers(),
        # Last: stale buttons and messages no dialog is waiting for.
        start.last_resort_handlers(),
    ]
    for group, dialog in enumerate(dialogs):
        application.add_handlers(dialog, group=group)
    application.add_error_handler(on_error)
    job_queue = application.job_queue
    assert job_queue is not None  # python-telegram-bot[job-queue] is a dependency
    job_queue.run_repeating(
        sweep, interval=settings.sweep_seconds, first=settings.sweep_seconds, name="sweep"
    )
    if settings.imap_url is not None:
        # The calendars' answers, read from the organizer's mailbox (bot.transport.mail.imap).
        reader = MailboxReader(
            settings.imap_url.get_secret_value(),
            runtime.database,
            clock=runtime.clock,
            cipher=runtime.cipher,
            organizer=settings.mail_from or "",
            on_applied=mail_replies.after_reply(application),
        )
        job_queue.run_repeating(
            reader.job, interval=settings.imap_seconds, first=1.0, name=MAILBOX_JOB
        )
    application.bot_data[delivery.DISPATCHER_KEY] = delivery.Dispatcher(
        runtime,
        {
            **conference_notices.outbox_kinds(),
            **case_notices.outbox_kinds(),
            **referral_notices.outbox_kinds(),
            **task_notices.outbox_kinds(),
            **circulation_notices.outbox_kinds(),
            **mail_notices.outbox_kinds(),
            **confidentiality_notices.outbox_kinds(),
        },
        _outbox_bot(runtime, defaults),
        per_second=settings.outbox_per_second,
        concurrency=settings.outbox_concurrency,
    )
    if settings.mail_enabled:
        application.bot_data[delivery.MAIL_KEY] = _mail_dispatcher(runtime, application)
    if settings.web_url is not None:
        # The poll's web page (bot.transport.web): served by `serve`.
        application.bot_data[WEB_KEY] = WebPages(runtime, web_answers.after_answer(application))
    # At start: whatever is due, including what a crash left in flight.
    delivery.wake(application)
    return application


def mail_kinds(runtime: Runtime) -> dict[str, MailKind]:
    """The mail rows' renderers, by the outbox kind of their rows: the one place where they are
    assembled."""
    return {**notices.mail_kinds(runtime), **code_mail.code_kinds(runtime)}


def _mail_dispatcher(runtime: Runtime, application: RoundTableApp) -> MailDispatcher:
    """The outbox's mail rows, sent over SMTP (bot.transport.mail.delivery), as a JobQueue job
    woken with the chat's outbox (delivery.wake); a refused address's chat notice wakes the
    chat's outbox in turn."""
    settings = runtime.settings
    assert settings.smtp_url is not None and settings.mail_from is not None
    sender = SmtpSender(
        settings.smtp_url.get_secret_value(),
        settings.mail_from,
        connections=settings.mail_concurrency,
    )
    return MailDispatcher(
        runtime,
        mail_kinds(runtime),
        sender,
        concurrency=settings.mail_concurrency,
        per_second=settings.mail_per_second,
        on_planned=lambda: delivery.wake(application),
    )


class _NotingRateLimiter(AIORateLimiter):
    """The handlers' rate limiter, which also notes every call that went through: an update
    that failed after answering something is not handled again
    (bot.transport.telegram.processor)."""

    async def process_request(  # noqa: PLR0917 - the signature is BaseRateLimiter's
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        result = await super().process_request(
            callback, args, kwargs, endpoint, data, rate_limit_args
        )
        note_telegram_call()
        return result


def _outbox_bot(runtime: Runtime, defaults: Defaults) -> ExtBot[Any]:
    """The outbox's own connection to Telegram, whose rate limiter never retries a 429 itself:
    the dispatcher puts the row back until the time Telegram gave and holds its pacer, so a
    flood wait neither freezes the handlers' replies nor keeps a send slot waiting."""
    settings = runtime.settings
    assert settings.token is not None
    return ExtBot(
        settings.token.get_secret_value(),
        base_url=settings.bot_api_url,
        base_file_url=settings.bot_file_url,
        defaults=defaults,
        request=AiohttpRequest(connection_pool_size=settings.outbox_concurrency + 1),
        rate_limiter=AIORateLimiter(max_retries=0),
    )


async def _announce(application: RoundTableApp) -> None:
    """What Telegram should show before anyone talks to the bot: the strangers' menus."""
    runtime: Runtime = application.bot_data[RUNTIME_KEY]
    await set_stranger_menus(application.bot, runtime.settings.default_locale, runtime.translator)


async def _reach_telegram(bot: Bot, stop: asyncio.Event) -> bool:
    """Initialize the bot (getMe), waiting out Telegram's trouble (see _until_answered)."""
    return await _until_answered(bot.initialize, stop, "at start")


async def _until_answered(
    call: Callable[[], Awaitable[object]], stop: asyncio.Event, when: str
) -> bool:
    """Make the call, waiting out Telegram's 429s, 5xx and network trouble: a hiccup at start
    must not end the process. A token Telegram refuses, or a request it calls bad, still does.
    False when told to stop meanwhile."""
    pause = 1.0
    while not stop.is_set():
        try:
            await call()
            return True
        except (InvalidToken, BadRequest):
            raise
        except RetryAfter as error:
            wait = retry_after_seconds(error)
        except TelegramError as error:
            wait, pause = pause, min(pause * 2, 30.0)
            logger.warning("Telegram did not answer %s: %s", when, type(error).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
    return False


async def _start_webhook(
    application: RoundTableApp, secret: SecretStr, stop: asyncio.Event
) -> WebhookServer:
    """Listen for Telegram's POSTs (bot.transport.telegram.webhook), then tell Telegram where to
    send them."""
    settings = application.bot_data[RUNTIME_KEY].settings
    processor = application.update_processor
    assert isinstance(processor, OrderedUpdateProcessor) and settings.webhook_url
    pages: WebPages | None = application.bot_data.get(WEB_KEY)
    server = WebhookServer(
        application.bot,
        application.update_queue,
        secret=secret.get_secret_value(),
        path=urlparse(settings.webhook_url).path,
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        pages=None if pages is None else pages.add_routes,
    )
    processor.when_done(server.handled)
    await server.start()
    await _until_answered(
        lambda: application.bot.set_webhook(
            settings.webhook_url,
            secret_token=secret.get_secret_value(),
            allowed_updates=Update.ALL_TYPES,
            # Each POST waits for its update: as many at once as the processor handles.
            max_connections=MAX_CONCURRENT_UPDATES,
        ),
        stop,
        "setWebhook",
    )
    return server


async def serve(application: RoundTableApp, stop: asyncio.Event) -> None:
    """Run until stop is set: long polling, or webhook mode when a webhook URL is configured.

    Only the one active process of a bot serves (`roundtable run` holds the lock of
    bot.transport.telegram.standby first): it takes over what the outbox of a process before
    it left in flight.
    When stop is set the outbox sends nothing more, no update is fetched any more, and the
    updates already fetched are handled before this returns.
    """
    runtime: Runtime = application.bot_data[RUNTIME_KEY]
    settings = runtime.settings
    dispatcher: delivery.Dispatcher = application.bot_data[delivery.DISPATCHER_KEY]
    processor = application.update_processor
    assert isinstance(processor, OrderedUpdateProcessor)
    receiver: Poller | WebhookServer
    for bot in (application.bot, dispatcher.bot):
        if not await _reach_telegram(bot, stop):
            return
    mail: MailDispatcher | None = application.bot_data.get(delivery.MAIL_KEY)
    pages: WebPages | None = application.bot_data.get(WEB_KEY)
    web_server: WebServer | None = None
    async with application, dispatcher.bot:
        await dispatcher.take_over()
        if mail is not None:
            await mail.take_over()
        await processor.ledger.load()
        await _announce(application)
        if settings.webhook_url and settings.webhook_secret:
            receiver = await _start_webhook(application, settings.webhook_secret, stop)
            logger.info("webhook mode on port %s", settings.webhook_port)
        else:
            # Not the Updater's polling: it confirms updates before they are handled.
            receiver = Poller(
                application.bot, application.update_queue, allowed_updates=Update.ALL_TYPES
            )
            processor.when_done(receiver.handled)
            await receiver.start()
            logger.info("long polling")
            if pages is not None:
                web_server = WebServer(pages, listen=settings.web_listen, port=settings.web_port)
                await web_server.start()
                logger.info("the web page on port %s", web_server.port)
        application.bot_data[WEB_SERVER_KEY] = web_server
        await application.start()
        await stop.wait()
        dispatcher.stop()
        if mail is not None:
            mail.stop()
        if isinstance(receiver, Poller):
            await receiver.stop()
            await application.stop()
        else:
            receiver.refuse()
            await application.stop()  # handles what is queued: those POSTs get their 200
            await receiver.stop()
        if web_server is not None:
            await web_server.stop()
        if mail is not None:
            await mail.close()  # the SMTP connections, once a run in progress has ended
