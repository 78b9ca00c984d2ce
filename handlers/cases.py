"""The coordinator's cases: /cases (each open case and its next step), /agenda (the case
conferences ahead), and closing a case (`cc:` buttons)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.core.i18n import N_
from bot.core.models import ConferenceStatus
from bot.services import cases, overview
from bot.services.errors import PermissionDenied
from handlers.common import (
    Context,
    HandlerList,
    answer,
    consuming,
    esc,
    keyboard,
    no_longer_active,
    paginate,
    parse_callback,
    parse_id,
)
from handlers.task_screens import TASK_REFUSALS
from handlers.usecase import on_pressed, refusal, use_case

PAGE_SIZE = 8
OUTCOMES = {"f": cases.Outcome.FULFILLED, "h": cases.Outcome.HANDED_OVER, "o": cases.Outcome.OTHER}


# /cases and /agenda


async def show_cases(update: Update, context: Context, page: int = 0) -> None:
    tr = context.tr
    _ = tr.gettext
    not_a_coordinator = refusal(
        PermissionDenied, say=N_("Only coordinators see the district's cases."), as_answer=True
    )
    async with use_case(update, context, not_a_coordinator) as run:
        open_cases = await cases.open_cases(run.session, run.actor, now=run.now)
        steps = await cases.case_steps(run.session, [case.id for case in open_cases], now=run.now)
    if not run.done:
        return
    if not open_cases:
        await answer(update, _("There are no open cases."))
        return
    shown = paginate(open_cases, page, PAGE_SIZE)
    lines = [_("Open cases ({count}):").format(count=len(open_cases))]
    rows: list[list[tuple[str, str]]] = []
    for case in shown.items:
        lines.append(
            _("{code} · opened {date} · case manager {name}").format(
                code=case.code, date=tr.date(case.opened_at), name=esc(case.manager)
            )
        )
        step = steps[case.id]
        conference = step.conference
        if step.to_record and conference is not None:
            lines.append("   " + _("Next step: record the outcome of the case conference."))
            rows.append(
                [("📝 " + _("Record: {code}").format(code=case.code), f"rc:o:{conference.id}")]
            )
        elif conference is None or conference.status is ConferenceStatus.HELD:
            lines.append("   " + _("Next step: plan a case conference."))
            if step.review_by is not None:
                lines.append(
                    "   " + _("Review conference by {date}.").format(date=tr.day(step.review_by))
                )
            rows.append([("📅 " + _("Plan: {code}").format(code=case.code), f"cf:n:{case.id}")])
        elif conference.status is ConferenceStatus.POLLING:
            lines.append(
                "   "
                + _("Poll for a date running, answers until {deadline}.").format(
                    deadline=tr.datetime(conference.deadline)
                )
            )
            rows.append(
                [("📊 " + _("Poll: {code}").format(code=case.code), f"cf:b:{conference.id}")]
            )
        elif conference.starts_at is not None:
            lines.append(
                "   "
                + _("Case conference on {when}, {place}.").format(
                    when=tr.datetime(conference.starts_at), place=esc(conference.place)
                )
            )
        if step.open_tasks:
            lines.append(
                "   "
                + _("Tasks open: {open}, overdue: {overdue}.").format(
                    open=step.open_tasks, overdue=step.overdue_tasks
                )
            )
        if step.recorded_id is not None and not step.to_record:  # its plan: tasks to edit
            rows.append(
                [("📝 " + _("Record: {code}").format(code=case.code), f"rc:o:{step.recorded_id}")]
            )
        rows.append([("✖️ " + _("Close: {code}").format(code=case.code), f"cc:c:{case.id}")])
    if nav := shown.nav_row("cs"):
        rows.append(nav)
    await answer(update, "\n".join(lines), keyboard(rows) if rows else None)


async def cases_page(update: Update, context: Context) -> None:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "cs") or []
    page = parse_id(parts[1]) if len(parts) == 2 else None
    await show_cases(update, context, page or 0)


async def agenda(update: Update, context: Context) -> None:
    tr = context.tr
    async with use_case(
        update, context, refusal(PermissionDenied, say=N_("Only coordinators have an agenda."))
    ) as run:
        items = await overview.agenda(run.session, run.actor, now=run.now)
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


async def ask_close(update: Update, context: Context) -> None:
    done = await on_pressed(update, context, "cc:c", cases.closable_case, *TASK_REFUSALS)
    if done is None:
        return
    tr = context.tr
    rows = [[(cases.outcome_label(o, tr), f"cc:{code}:{done.id}")] for code, o in OUTCOMES.items()]
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
        code = await cases.close_case(run.session, run.actor, case_id, outcome, now=run.now)
    if run.done:
        await answer(
            update,
            tr.gettext("The case {code} is closed: {outcome}.").format(
                code=code, outcome=cases.outcome_label(outcome, tr)
            ),
        )


def command_handlers() -> HandlerList:
    return [
        CallbackQueryHandler(consuming(ask_close), pattern=r"^cc:c:\d+$"),
        CallbackQueryHandler(consuming(close_case), pattern=r"^cc:[fhok]:\d+$"),
        CommandHandler("agenda", consuming(agenda)),
        CommandHandler("cases", consuming(show_cases)),
        CallbackQueryHandler(consuming(cases_page), pattern=r"^cs:p:"),
    ]
