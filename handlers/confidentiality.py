"""Confirming confidentiality with one tap (bot.services.confidentiality): the prompt's button.

The tap stores and audits the confirmation and brings back what was held for the member (the
outbox is woken after the commit); the polls waiting for them are sent at once. A second tap
changes nothing; a button of an older version shows the current text to confirm instead."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler

from bot.services import confidentiality
from bot.services.confidentiality import Confirmed, Prompt
from handlers.common import (
    Context,
    HandlerList,
    acknowledge,
    answer,
    consuming,
    no_longer_active,
    parse_callback,
    parse_number,
)
from handlers.confidentiality_text import NAMESPACE, prompt_markup, prompt_text
from handlers.poll_messages import send_open_polls
from handlers.usecase import use_case


async def confirm(update: Update, context: Context) -> None:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, NAMESPACE)
    version = parse_number(parts[0]) if parts and len(parts) == 1 else None
    if version is None:
        await no_longer_active(update, context)
        return
    prompt: Prompt | None = None
    async with use_case(update, context) as case:
        outcome = await confidentiality.confirm(
            case.session, case.actor.member_id, version, now=case.now
        )
        if outcome is Confirmed.STALE:
            prompt = await confidentiality.prompt_for(case.session, case.actor.member_id)
    if not case.done:
        return
    tr = context.tr
    assert query is not None
    if prompt is not None:  # the text has changed since this button: the new one, to confirm
        await answer(update, prompt_text(prompt, tr), prompt_markup(prompt, tr))
        return
    if outcome is not Confirmed.NOW:  # confirmed before, or (an old button) meanwhile
        await acknowledge(query, tr.gettext("You have already confirmed it. Thank you."))
        return
    await answer(
        update,
        tr.gettext("✅ Thank you, confirmed. Whatever of a case was waiting for you comes now."),
    )
    await send_open_polls(context)


def handlers() -> HandlerList:
    return [CallbackQueryHandler(consuming(confirm), pattern=rf"^{NAMESPACE}:")]
