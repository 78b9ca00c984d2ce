"""The coordinator's cases: /agenda (the case conferences ahead) and closing a case (`cc:`
buttons)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.core.i18n import N_, Translator
from bot.services import tasks
from bot.services.errors import PermissionDenied
from handlers.common import (
    Context,
    HandlerList,
    answer,
    consuming,
    esc,
    keyboard,
    no_longer_active,
    parse_callback,
    parse_id,
)
from handlers.task_screens import TASK_REFUSALS, pressed
from handlers.usecase import refusal, use_case

OUTCOMES = {"f": tasks.Outcome.FULFILLED, "h": tasks.Outcome.HANDED_OVER, "o": tasks.Outcome.OTHER}


# /agenda


async def agenda(update: Update, context: Context) -> None:
    tr = context.tr
    async with use_case(
        update, context, refusal(PermissionDenied, say=N_("Only coordinators have an agenda."))
    ) as run:
        items = await tasks.agenda(run.session, run.actor, now=run.now)
    if not run.done:
        return
    if not items:
        await answer(update, tr.gettext("No case conferences in the next four weeks."))
        return
    lines = [tr.gettext("Your case conferences in the next four weeks:")]
    lines += [
        f"• {tr.datetime(item.starts_at)} · {item.case_code} · {esc(item.place)}" for item in items
    ]
    await answer(update, "\n".join(lines))


# Closing a case.


def outcome_label(outcome: tasks.Outcome, tr: Translator) -> str:
    return {
        tasks.Outcome.FULFILLED: tr.gettext("Plan fulfilled"),
        tasks.Outcome.HANDED_OVER: tr.gettext("Handed to another authority"),
        tasks.Outcome.OTHER: tr.gettext("Other"),
    }[outcome]


async def ask_close(update: Update, context: Context) -> None:
    ids = await pressed(update, context, "cc")
    if ids is None:
        return
    async with use_case(update, context, *TASK_REFUSALS) as run:
        await tasks.closable_case(run.session, run.actor, ids[0], now=run.now)
    if not run.done:
        return
    tr = context.tr
    rows = [[(outcome_label(o, tr), f"cc:{code}:{ids[0]}")] for code, o in OUTCOMES.items()]
    rows.append([("↩️ " + tr.gettext("Keep it open"), "cc:k:0")])
    await answer(
        update,
        tr.gettext(
            "Close the case? Open tasks and everything pending for it are cancelled. Choose the "
            "outcome:"
        ),
        keyboard(rows),
    )


async def close_case(update: Update, context: Context) -> None:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "cc") or []
    if len(parts) != 2 or parts[0] not in {*OUTCOMES, "k"}:
        await no_longer_active(update, context)
        return
    tr = context.tr
    if parts[0] == "k":
        await answer(update, tr.gettext("The case stays open."))
        return
    case_id = parse_id(parts[1])
    if case_id is None:
        await no_longer_active(update, context)
        return
    outcome = OUTCOMES[parts[0]]
    async with use_case(update, context, *TASK_REFUSALS) as run:
        code = await tasks.close_case(run.session, run.actor, case_id, outcome, now=run.now)
    if run.done:
        await answer(
            update,
            tr.gettext("The case {code} is closed: {outcome}.").format(
                code=code, outcome=outcome_label(outcome, tr)
            ),
        )


def command_handlers() -> HandlerList:
    return [
        CallbackQueryHandler(consuming(ask_close), pattern=r"^cc:c:\d+$"),
        CallbackQueryHandler(consuming(close_case), pattern=r"^cc:[fhok]:\d+$"),
        CommandHandler("agenda", consuming(agenda)),
    ]
