"""Planning a case conference (the coordinator): a plan with every default, one screen to adjust
who is invited, the length, the window and the place, then the poll sent to everyone."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, ConversationHandler, MessageHandler

from bot.core.i18n import Translator
from bot.services import planning
from bot.services.board import AlreadyPlanned, ConferenceError
from bot.services.planning import Defaults, NoCandidates, Plan
from handlers.common import (
    TYPED,
    Context,
    Dialog,
    HandlerList,
    alert,
    answer,
    esc,
    keyboard,
    no_longer_active,
    parse_callback,
    parse_id,
    pressed_ids,
    say_below,
)
from handlers.poll_messages import NOT_YOURS, deliver
from handlers.usecase import refused_by, use_case

PLANNING = "planning"
PLACE = "place"
PLAN = "plan"
WINDOW_STARTS = (2, 7, 12)  # working days after today: the default, a week later, two weeks


def _defaults(context: Context) -> Defaults:
    return Defaults.of(context.runtime.settings)


def _plan(context: Context) -> Plan | None:
    data = context.user_data.get(PLAN)  # type: ignore[union-attr]
    return Plan.from_data(data) if isinstance(data, dict) else None


def _keep(context: Context, plan: Plan) -> None:
    context.user_data[PLAN] = plan.to_data()  # type: ignore[index]


def _planned_already(tr: Translator, planned: Exception) -> str:
    assert isinstance(planned, AlreadyPlanned)
    return tr.gettext(
        "{code} already has a conference being planned or set. /cases shows it."
    ).format(code=planned.code)


async def _planned_already_below(update: Update, context: Context, planned: Exception) -> None:
    await say_below(update, context, _planned_already(context.tr, planned))


async def _planned_already_instead(update: Update, context: Context, planned: Exception) -> None:
    await answer(update, _planned_already(context.tr, planned))


async def plan_conference(update: Update, context: Context) -> str | int:
    """ "Plan a conference" on a case: a plan with every default, one screen to adjust it."""
    ids = await pressed_ids(update, context, "cf:n")
    if ids is None:
        return ConversationHandler.END
    already = refused_by(AlreadyPlanned, answer=_planned_already_below)
    async with use_case(update, context, NOT_YOURS, already) as case:
        plan = await planning.new_plan(
            case.session,
            case.actor,
            context.runtime.cipher,
            ids[0],
            now=case.now,
            defaults=_defaults(context),
        )
    if not case.done:
        return ConversationHandler.END
    _keep(context, plan)
    return await _show_plan(update, context, plan, new_message=True)


async def _show_plan(
    update: Update, context: Context, plan: Plan, *, new_message: bool
) -> str | int:
    """The plan's screen, and the dialog goes on; it ends if the case can no longer be planned
    (closed meanwhile)."""
    async with use_case(update, context, NOT_YOURS) as case:
        view = await planning.plan_view(
            case.session, case.actor, plan, now=case.now, defaults=_defaults(context)
        )
    if not case.done:
        return ConversationHandler.END
    settings = context.runtime.settings
    tr = context.tr
    _ = tr.gettext
    links = plan.guardians.count("link")
    offline = plan.guardians.count("offline")
    lines = [
        _("<b>Case conference for {code}</b>").format(code=view.case_code),
        _("Tap an institution to invite it or not, and ★/☆ to make it required or optional."),
        "",
        _("Invited: {count}").format(count=len(plan.invited) + len(plan.guardians)),
    ]
    if plan.guardians:
        lines.append(
            _("Guardians: {links} by a one-time link, {offline} without Telegram").format(
                links=links, offline=offline
            )
        )
    lines += [
        _("Length: {minutes} min · Place: {place}").format(
            minutes=plan.minutes, place=esc(plan.place)
        ),
        _("Window: {first} – {last}").format(
            first=tr.day(view.first_day), last=tr.day(view.last_day)
        ),
        _("Answers within {days} working days; I offer up to {slots} times.").format(
            days=settings.poll_deadline_days, slots=settings.poll_slots
        ),
    ]
    rows: list[list[tuple[str, str]]] = []
    for choice in view.choices:
        invited = choice.institution_id in plan.invited
        name = f"{'☑' if invited else '☐'} {choice.name}"
        row = [(name, f"pl:{plan.case_id}:i:{choice.institution_id}")]
        if invited:
            required = plan.invited[choice.institution_id]
            row.append(
                (
                    "★ " + _("required") if required else "☆ " + _("optional"),
                    f"pl:{plan.case_id}:r:{choice.institution_id}",
                )
            )
        rows.append(row)
    guardian_row = [
        ("+ " + _("Guardian, link"), f"pl:{plan.case_id}:g:link"),
        ("+ " + _("Guardian, offline"), f"pl:{plan.case_id}:g:offline"),
    ]
    if plan.guardians:
        guardian_row.append(("− " + _("Guardian"), f"pl:{plan.case_id}:g:x"))
    rows.append(guardian_row)
    rows.append(
        [
            ("⏱ " + _("{minutes} min").format(minutes=plan.minutes), f"pl:{plan.case_id}:d"),
            ("📅 " + _("Later"), f"pl:{plan.case_id}:w"),
            ("📍 " + _("Place"), f"pl:{plan.case_id}:p"),
        ]
    )
    rows.append(
        [("▶ " + _("Send the poll"), f"pl:{plan.case_id}:s"), (_("Cancel"), f"pl:{plan.case_id}:x")]
    )
    text = "\n".join(lines)
    if new_message:
        await say_below(update, context, text, keyboard(rows))
    else:
        await answer(update, text, keyboard(rows))
    return PLANNING


async def adjust_plan(update: Update, context: Context) -> str | int:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "pl") or []
    plan = _plan(context)
    if plan is None or len(parts) < 2 or parse_id(parts[0]) != plan.case_id:
        # A button of an earlier plan (another case): it must not change this one.
        await no_longer_active(update, context)
        return ConversationHandler.END if plan is None else PLANNING
    match parts[1:]:
        case ["i", raw] if (institution := parse_id(raw)) is not None:
            if institution in plan.invited:
                del plan.invited[institution]
            else:
                plan.invited[institution] = await _required_by_default(context, institution)
        case ["r", raw] if (institution := parse_id(raw)) in plan.invited:
            assert institution is not None
            plan.invited[institution] = not plan.invited[institution]
        case ["g", "link" | "offline" as kind] if len(plan.guardians) < planning.MAX_GUARDIANS:
            plan.guardians.append(kind)
        case ["g", "x"] if plan.guardians:
            plan.guardians.pop()
        case ["d"]:
            durations = planning.DURATIONS
            index = durations.index(plan.minutes) if plan.minutes in durations else 0
            plan.minutes = durations[(index + 1) % len(durations)]
        case ["w"]:
            index = (
                WINDOW_STARTS.index(plan.starts_after) if plan.starts_after in WINDOW_STARTS else 0
            )
            plan.starts_after = WINDOW_STARTS[(index + 1) % len(WINDOW_STARTS)]
        case ["p"]:
            await say_below(
                update,
                context,
                context.tr.gettext("Type the place (at most {limit} characters).").format(
                    limit=planning.MAX_PLACE
                ),
            )
            return PLACE
        case ["s"]:
            return await _send_poll(update, context, plan)
        case ["x"]:
            context.user_data.pop(PLAN, None)  # type: ignore[union-attr]
            await answer(update, context.tr.gettext("Cancelled. No poll was sent."))
            return ConversationHandler.END
        case _:
            await no_longer_active(update, context)
            return PLANNING
    _keep(context, plan)
    return await _show_plan(update, context, plan, new_message=False)


async def _required_by_default(context: Context, institution_id: int) -> bool:
    async with context.runtime.database.reading() as session:
        return await planning.required_by_default(session, institution_id)


async def typed_place(update: Update, context: Context) -> str | int:
    message = update.effective_message
    plan = _plan(context)
    if plan is None or message is None:
        return ConversationHandler.END
    text = (message.text or "").strip()
    if not text or len(text) > planning.MAX_PLACE:
        await answer(
            update,
            context.tr.gettext(
                "Please type the place as text of at most {limit} characters."
            ).format(limit=planning.MAX_PLACE),
        )
        return PLACE
    plan.place = text
    _keep(context, plan)
    return await _show_plan(update, context, plan, new_message=True)


async def _send_poll(update: Update, context: Context, plan: Plan) -> str | int:
    _ = context.tr.gettext
    already = refused_by(AlreadyPlanned, answer=_planned_already_instead)
    try:
        async with use_case(update, context, NOT_YOURS, already) as case:
            started = await planning.start_poll(
                case.session, case.actor, plan, now=case.now, defaults=_defaults(context)
            )
    except ConferenceError:  # nobody invited: refused, and the plan stays open to fix it
        await alert(update, _("Invite at least one institution or guardian."))
        return PLANNING
    if not case.done:
        return ConversationHandler.END
    if isinstance(started, NoCandidates):
        await say_below(
            update,
            context,
            _(
                "No time between {first} and {last} is free for you, the room and the invited. "
                "Tap 📅 Later to look further ahead, or change the length."
            ).format(
                first=context.tr.day(started.first_day), last=context.tr.day(started.last_day)
            ),
        )
        return PLANNING
    context.user_data.pop(PLAN, None)  # type: ignore[union-attr]
    await answer(
        update,
        _("The poll for {code} is on its way to the invited.").format(code=started.case_code),
    )
    await deliver(context, started)
    return ConversationHandler.END


def handlers() -> HandlerList:
    dialog = Dialog("plan")
    return [
        dialog.conversation(
            entry_points=[CallbackQueryHandler(dialog.entry(plan_conference), pattern=r"^cf:n:")],
            states={
                PLANNING: [CallbackQueryHandler(dialog.step(adjust_plan), pattern=r"^pl:")],
                PLACE: [
                    MessageHandler(TYPED, dialog.step(typed_place)),
                    CallbackQueryHandler(dialog.step(adjust_plan), pattern=r"^pl:"),
                ],
            },
        )
    ]
