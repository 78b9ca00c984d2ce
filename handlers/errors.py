"""The error handler: log without personal data, reassure the user, tell the admins."""

from __future__ import annotations

import contextlib
import logging
import secrets
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationHandlerStop

from bot.core.db import unavailable
from bot.core.i18n import Translator
from bot.services import members
from bot.transport.telegram.processor import OrderedUpdateProcessor
from handlers.common import ACTIVE_DIALOG, Context, acknowledge

# Shows the person the question of the dialog they are in again, below the given text; False
# when it cannot.
WhereYouAre = Callable[[Update, Context, str], Awaitable[bool]]

logger = logging.getLogger(__name__)

# Admins hear of each kind of error (its type and where it was raised) once an hour per
# district: a bug that every press of a button repeats must not let one member flood them. The
# log keeps every occurrence with its own error id.
ALERT_EVERY = timedelta(hours=1)
_ALERTED = "alerted_errors"  # bot_data: kind of error -> when the admins were last told


async def on_error(update: object, context: Context) -> None:
    """Handle the error, then stop the update: the later handler groups must not answer it too
    (the last resort would add "I did not understand that" to the apology)."""
    await _handle(update, context)
    if isinstance(update, Update):
        raise ApplicationHandlerStop


async def _handle(update: object, context: Context) -> None:
    error = context.error
    if isinstance(error, BadRequest) and _is_harmless(error):
        return
    chat_id = (
        update.effective_chat.id if isinstance(update, Update) and update.effective_chat else None
    )
    if isinstance(error, Forbidden) and chat_id is not None:
        await mark_unreachable(context, chat_id)
        return
    error_id = secrets.token_hex(4)
    update_id = update.update_id if isinstance(update, Update) else None
    if error is not None and unavailable(error):
        # The database went away for a moment (a restart): not a bug to alert anyone about.
        # The update is handled again once it is back; after too long, the person is asked
        # to try again.
        processor = context.application.update_processor
        if isinstance(processor, OrderedUpdateProcessor) and processor.retry_later(update):
            logger.warning("error %s: no database; update %s waits for it", error_id, update_id)
            return
        logger.warning("error %s: no database while handling update %s", error_id, update_id)
        if isinstance(update, Update):
            await _reassure(update, context, error_id)
        return
    if isinstance(error, NetworkError | RetryAfter):
        # Telegram or the network hiccuped (already retried by the rate limiter): worth a line
        # in the log and a word to the user, not an alert to every admin.
        logger.warning(
            "error %s: %s while handling update %s", error_id, type(error).__name__, update_id
        )
        processor = context.application.update_processor
        if isinstance(processor, OrderedUpdateProcessor) and await processor.answered_instead(
            update
        ):
            return
        if isinstance(update, Update):
            await _reassure(update, context, error_id)
        return
    # The traceback names code and exception types; the database hides statement parameters
    # and no update content is logged, so no personal data reaches the log.
    logger.error("error %s while handling update %s", error_id, update_id, exc_info=error)
    if isinstance(update, Update):
        await _reassure(update, context, error_id)
    district_id = context.actor.district_id if context.actor is not None else None
    if _alert_due(context, error, district_id):
        await _alert_admins(context, error_id, district_id=district_id, exclude=chat_id)
    else:
        logger.info("error %s: the admins were told of this kind within the hour", error_id)


def _alert_due(context: Context, error: BaseException | None, district_id: int | None) -> bool:
    """Whether the admins are to hear of this error, and if so, noted as told."""
    frames = traceback.extract_tb(error.__traceback__) if error is not None else []
    where = (frames[-1].filename, frames[-1].lineno) if frames else ("", 0)
    kind = (district_id, type(error).__name__, *where)
    now = context.runtime.clock.now()
    alerted: dict[tuple[object, ...], datetime] = context.application.bot_data.setdefault(
        _ALERTED, {}
    )
    last = alerted.get(kind)
    if last is not None and now - last < ALERT_EVERY:
        return False
    if len(alerted) > 1000:  # forget kinds not seen within the hour
        for old in [key for key, at in alerted.items() if now - at >= ALERT_EVERY]:
            del alerted[old]
    alerted[kind] = now
    return True


async def _translator_of(update: Update, context: Context) -> Translator:
    """The error handler's context is a fresh one: find the person's language again."""
    user = update.effective_user
    if user is not None:
        try:
            async with context.runtime.database.reading() as session:
                context.actor = await members.find_actor(session, user.id)
        except Exception:  # the database may be what failed; the client language will do
            logger.warning("could not look up the language for an error report")
    return context.tr


async def answer_lost(
    application: Application[Any, Any, Any, Any, Any, Any],
    dialogs: Mapping[str, WhereYouAre],
    update: object,
) -> None:
    """An update whose change was stored but whose answer never went out, which is therefore
    not handled again (bot.transport.telegram.processor.answer_instead): the person hears that it
    was saved, and where they are now, the question of the dialog they are in when it can show
    it again. Read-only: telling twice changes nothing."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    context = Context.from_update(update, application)
    user = update.effective_user
    if user is not None:
        async with context.runtime.database.reading() as session:
            context.actor = await members.find_actor(session, user.id)
    saved = context.tr.gettext(
        "Your last step was saved, but my answer to it got lost on the way. There is no need "
        "to send it again."
    )
    where = dialogs.get((context.user_data or {}).get(ACTIVE_DIALOG, ""))
    if context.actor is not None and where is not None and await where(update, context, saved):
        return
    if update.callback_query is not None:
        with contextlib.suppress(TelegramError):
            await acknowledge(update.callback_query)
    await send_safely(context, update.effective_chat.id, saved)


def _is_harmless(error: BadRequest) -> bool:
    message = error.message.lower()
    return "message is not modified" in message or "query is too old" in message


async def _reassure(update: Update, context: Context, error_id: str) -> None:
    text = (
        (await _translator_of(update, context))
        .gettext(
            "Sorry, something went wrong on our side. Nothing you entered was lost; please try "
            "again in a moment. (Error {error_id})"
        )
        .format(error_id=error_id)
    )
    if update.callback_query is not None:
        with contextlib.suppress(TelegramError):
            await update.callback_query.answer()
    if update.effective_chat is not None:
        try:
            await send_safely(context, update.effective_chat.id, text)
        except Exception:  # the apology must not raise from inside the error handler
            logger.exception("could not send the apology for error %s", error_id)


async def _alert_admins(
    context: Context, error_id: str, *, district_id: int | None, exclude: int | None
) -> None:
    """The admins of the district where it happened (all admins when nobody's district is
    known, e.g. for a stranger's update)."""
    runtime = context.runtime
    try:
        async with runtime.database.reading() as session:
            admins = await members.admin_locales(session, district_id)
    except Exception:
        logger.exception("could not look up admins for error %s", error_id)
        return
    for chat_id, locale in admins:
        if chat_id == exclude:
            continue
        text = (
            runtime.translator(locale)
            .gettext(
                "Round Table hit an error while serving a member. Error id for the log: {error_id}"
            )
            .format(error_id=error_id)
        )
        await send_safely(context, chat_id, text)


async def mark_unreachable(context: Context, chat_id: int) -> None:
    """Telegram answered Forbidden: the person blocked the bot (or is gone); noted."""
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        await members.mark_unreachable(session, chat_id, now=runtime.clock.now())


async def send_safely(
    context: Context,
    chat_id: int,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> bool:
    """Send a message that must not fail the caller; a person who blocked the bot is noted."""
    try:
        await context.bot.send_message(chat_id, text, reply_markup=markup)
    except Forbidden:
        await mark_unreachable(context, chat_id)
        return False
    except TelegramError as error:
        logger.warning("could not send to a chat: %s", type(error).__name__)
        return False
    return True
