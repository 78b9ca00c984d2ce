"""Answering the poll (the participants): a time tapped through yes, if need be and no, the answer
sent, the board and the offer following it; calendar files whose busy times the polls and the
planning avoid."""

from __future__ import annotations

import logging
from datetime import timedelta

from telegram import Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import CallbackQueryHandler, MessageHandler, filters

from bot.core.calendar_reader import read_busy
from bot.core.i18n import Translator
from bot.services import polls
from bot.transport.telegram.http import AiohttpRequest, TooBig
from handlers.board_text import numbered
from handlers.common import (
    Context,
    HandlerList,
    acknowledge,
    answer,
    consuming,
    edit,
    esc,
    keyboard,
    pressed_ids,
)
from handlers.poll_messages import POLL_REFUSALS, poll_markup, poll_text, redraw_poll, show_answered
from handlers.usecase import use_case
from scheduling.busy import MAX_BYTES, BusyImportError

logger = logging.getLogger(__name__)

BUSY_HORIZON = timedelta(days=120)


async def tap_time(update: Update, context: Context) -> None:
    ids = await pressed_ids(update, context, "pv", 2)
    if ids is None:
        return
    async with use_case(update, context, *POLL_REFUSALS) as case:
        view = await polls.toggle(case.session, case.actor, ids[0], ids[1], now=case.now)
    if not case.done:
        return
    await answer(
        update,
        poll_text(view, context.tr),
        poll_markup(view, context.tr, context.runtime.settings),
    )


async def send_answer(update: Update, context: Context) -> None:
    ids = await pressed_ids(update, context, "ps", 2)
    if ids is None:
        return
    async with use_case(update, context, *POLL_REFUSALS) as case:
        done = await polls.send_answer(case.session, case.actor, ids[0], ids[1], now=case.now)
        live = numbered(done.board)
    if not case.done:
        return
    tr = context.tr
    assert update.callback_query is not None
    await acknowledge(update.callback_query, tr.gettext("Thank you, your answer was sent."))
    await edit(
        update.callback_query,
        poll_text(done.view, tr),
        poll_markup(done.view, tr, context.runtime.settings),
    )
    await show_answered(context, done.others, live, done.offer)


# Calendar files.


async def calendar_file(update: Update, context: Context) -> None:
    """An .ics export from Outlook or Google: its busy times, and nothing else, are kept."""
    message = update.effective_message
    if message is None or message.document is None:
        return
    document = message.document
    tr = context.tr
    _ = tr.gettext
    runtime = context.runtime
    actor = context.require_actor()
    if (document.file_size or 0) > MAX_BYTES:
        await answer(update, _too_big(tr))
        return
    try:
        data = await _download(context, document.file_id)
    except TooBig:
        await answer(update, _too_big(tr))
        return
    except TelegramError as error:
        logger.warning("could not download a calendar file: %s", type(error).__name__)
        await answer(update, _("I could not download that file. Please send it again."))
        return
    now = runtime.clock.now()
    until = now + BUSY_HORIZON
    try:
        read = await read_busy(
            data,
            start=now,
            end=until,
            zone=runtime.settings.zone,
            seconds=runtime.settings.calendar_seconds,
        )
    except BusyImportError as error:
        if error.reason == "too_big":
            text = _too_big(tr)
        elif error.reason == "too_many":
            text = _(
                "That calendar has too many events in the next four months for me to read. "
                "Export a shorter period, e.g. the next two months."
            )
        else:
            text = _(
                "That does not look like a calendar file. Export your calendar as .ics (in "
                "Outlook: File › Save Calendar; in Google Calendar: Settings › Export) and send it "
                "here."
            )
        await answer(update, text)
        return
    intervals = read.intervals
    async with use_case(update, context) as case:
        await polls.save_busy(case.session, case.actor, intervals, now=now, until=until)
        redraw = await polls.mark_busy_in_polls(case.session, case.actor, intervals, now=now)
    text = tr.ngettext(
        "I read {n} busy time from your calendar, up to {until}.",
        "I read {n} busy times from your calendar, up to {until}.",
        len(intervals),
    ).format(n=len(intervals), until=tr.date(until))
    if read.skipped:  # said, so that a file of broken events is not taken for a free calendar
        text += " " + tr.ngettext(
            "{n} event in the file could not be read and was left out.",
            "{n} events in the file could not be read and were left out.",
            read.skipped,
        ).format(n=read.skipped)
    text += "\n" + _(
        "I keep only when you are busy – no titles, places or people – and avoid those times "
        "when planning conferences {institution} is invited to."
    ).format(institution=esc(actor.institution_name))
    if redraw:
        text += "\n" + _(
            "In your open polls, the times you are busy are now ❌: check them and Send."
        )
    for view in redraw:
        await redraw_poll(context, view)
    await answer(update, text, keyboard([[(_("Forget my busy times"), "bt:x")]]))


async def _download(context: Context, file_id: str) -> bytes:
    """An uploaded file, never more than MAX_BYTES of it: neither the size the upload claims
    nor the size getFile gives is taken on trust (`TooBig` past the limit)."""
    try:
        file = await context.bot.get_file(file_id)
    except BadRequest as error:
        if "too big" in error.message.lower():  # over the 20 MB Telegram lets bots download
            raise TooBig(MAX_BYTES) from error
        raise
    if (file.file_size or 0) > MAX_BYTES:
        raise TooBig(MAX_BYTES)
    request = context.bot.request
    if file.file_path is None or not isinstance(request, AiohttpRequest):
        data = bytes(await file.download_as_bytearray())  # the bot's own request class aside
    else:
        data = await request.retrieve_at_most(file.file_path, MAX_BYTES)
    if len(data) > MAX_BYTES:
        raise TooBig(MAX_BYTES)
    return data


def _too_big(tr: Translator) -> str:
    return tr.gettext(
        "That file is too big for me (over 2 MB). Export a shorter period of your calendar, e.g. "
        "the next three months."
    )


async def forget_busy(update: Update, context: Context) -> None:
    async with use_case(update, context) as case:
        forgot = await polls.forget_busy(case.session, case.actor, now=case.now)
    _ = context.tr.gettext
    await answer(
        update,
        _("Your busy times are deleted.") if forgot else _("I hold no busy times of yours."),
    )


def is_calendar(document: object) -> bool:
    name = (getattr(document, "file_name", None) or "").lower()
    mime = (getattr(document, "mime_type", None) or "").lower()
    return name.endswith((".ics", ".ical", ".ifb")) or mime in {"text/calendar", "application/ics"}


class _CalendarFilter(filters.MessageFilter):
    def filter(self, message: object) -> bool:
        return is_calendar(getattr(message, "document", None))


CALENDAR_FILE = _CalendarFilter(name="calendar file")


def handlers() -> HandlerList:
    return [
        CallbackQueryHandler(consuming(tap_time), pattern=r"^pv:"),
        CallbackQueryHandler(consuming(send_answer), pattern=r"^ps:"),
        CallbackQueryHandler(consuming(forget_busy), pattern=r"^bt:x$"),
        MessageHandler(filters.Document.ALL & CALENDAR_FILE, consuming(calendar_file)),
    ]
