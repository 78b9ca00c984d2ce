"""Planning a case conference (the coordinator): a plan with every default, one screen to adjust
who is invited, the length, the window and the place, then the poll sent to everyone."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, ConversationHandler, MessageHandler

from bot.core.i18n import Translator
from bot.core.method_tables import ConferenceKind
from bot.services import addresses, guests, method, planning
from bot.services.board import AlreadyPlanned, ConferenceError
from bot.services.guests import (
    AlreadyInvited,
    BadName,
    DuplicateGuest,
    GuestChoice,
    GuestError,
    MailOff,
    NoContact,
    TooManyGuests,
)
from bot.services.method import BadText
from bot.services.planning import Defaults, NoCandidates, Plan
from handlers.address_text import unusable_address
from handlers.common import (
    TYPED,
    Callback,
    Context,
    Dialog,
    HandlerList,
    alert,
    answer,
    esc,
    keyboard,
    no_longer_active,
    paged_keyboard,
    paginate,
    parse_callback,
    parse_id,
    parse_number,
    pressed_ids,
    say_below,
)
from handlers.method_texts import GOAL_PROMPT, kind_line, next_kind, too_long
from handlers.poll_messages import NOT_YOURS, deliver
from handlers.task_screens import delete_typed_text
from handlers.usecase import refused_by, use_case

PLANNING = "planning"
PLACE = "place"
GOAL = "goal"
GUEST_NAME = "guest_name"
GUEST_ADDRESS = "guest_address"
PLAN = "plan"
NAMED = "guest"  # user_data: the named guest's name, while their address is typed
GUEST_PAGE = 10
CHOICES_PAGE = 20  # institutions on the plan's screen at a time (Telegram shows 100 buttons)
CHOICE_PAGE = "plan_page"  # user_data: the page of institutions shown
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
            mail_enabled=context.runtime.settings.mail_enabled,
        )
    if not case.done:
        return ConversationHandler.END
    context.user_data.pop(CHOICE_PAGE, None)  # type: ignore[union-attr]
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
        invited_by_mail = await guests.guest_views(case.session, plan.guests)
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
        _("Invited: {count}").format(
            count=len(plan.invited) + len(plan.guardians) + len(plan.guests)
        ),
    ]
    if plan.guardians:
        lines.append(
            _("Guardians: {links} by a one-time link, {offline} without Telegram").format(
                links=links, offline=offline
            )
        )
    for guest in invited_by_mail:
        # The coordinator alone sees a guest's address.
        lines.append(f"✉ {esc(guest.name)} &lt;{esc(guest.email)}&gt;")
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
        kind_line(ConferenceKind(plan.kind), tr),
        _("Goal: written ({count} characters).").format(count=len(plan.goal))
        if plan.goal
        else _("Goal: not written yet. Invitations say it is in the bot; tap 🎯 Goal to write it."),
    ]
    rows: list[list[tuple[str, str]]] = []
    choices = view.choices
    nav: list[tuple[str, str]] = []
    if len(choices) > CHOICES_PAGE:  # a district of many institutions: a page at a time
        page = paginate(choices, int((context.user_data or {}).get(CHOICE_PAGE, 0)), CHOICES_PAGE)
        choices, nav = page.items, page.nav_row(f"pl:{plan.case_id}:c")
    for choice in choices:
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
    if nav:
        rows.append(nav)
    guardian_row = [
        ("+ " + _("Guardian, link"), f"pl:{plan.case_id}:g:link"),
        ("+ " + _("Guardian, offline"), f"pl:{plan.case_id}:g:offline"),
    ]
    if plan.guardians:
        guardian_row.append(("− " + _("Guardian"), f"pl:{plan.case_id}:g:x"))
    rows.append(guardian_row)
    # A guest's buttons name it by its key, not its place: pressed twice, or on an older
    # plan's message, they cannot act on the guest who moved up into its place.
    for planned, shown in zip(plan.guests, invited_by_mail, strict=True):
        mark = "★" if shown.required else "☆"
        rows.append(
            [
                (f"{mark} ✉ {shown.name}", f"pl:{plan.case_id}:q:{planned.key}"),
                ("✖ " + _("Remove"), f"pl:{plan.case_id}:u:{planned.key}"),
            ]
        )
    rows.append([("+ " + _("Guest by e-mail"), f"pl:{plan.case_id}:e")])
    rows.append(
        [
            ("⏱ " + _("{minutes} min").format(minutes=plan.minutes), f"pl:{plan.case_id}:d"),
            ("📅 " + _("Later"), f"pl:{plan.case_id}:w"),
            ("📍 " + _("Place"), f"pl:{plan.case_id}:p"),
        ]
    )
    rows.append(
        [("🏷 " + _("Kind"), f"pl:{plan.case_id}:k"), ("🎯 " + _("Goal"), f"pl:{plan.case_id}:o")]
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
    if parts[1] in GUEST_STEPS:
        return await _guest_step(update, context, plan, parts[1:])
    match parts[1:]:
        case ["i", raw] if (institution := parse_id(raw)) is not None:
            if any(guest.institution_id == institution for guest in plan.guests):
                await alert(
                    update,
                    context.tr.gettext(
                        "It is invited by e-mail. Remove that guest first to invite it here."
                    ),
                )
                return PLANNING
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
        case ["k"]:
            plan.kind = next_kind(ConferenceKind(plan.kind)).value
        case ["o"]:
            await say_below(
                update,
                context,
                context.tr.gettext(GOAL_PROMPT).format(limit=method.GOAL_MAX),
            )
            return GOAL
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


GUEST_STEPS = frozenset({"q", "u", "e", "ep", "ei", "en", "b", "c"})


async def _guest_step(update: Update, context: Context, plan: Plan, parts: list[str]) -> str | int:
    """The plan's guest buttons (required or not, remove, the picker, add one), and the pages
    of a long list of institutions."""
    match parts:
        case ["q", key] if (guest := guests.guest_by_key(plan.guests, key)) is not None:
            guest.required = not guest.required
        case ["u", key] if guests.guest_by_key(plan.guests, key) is not None:
            if not await _remove_guest(update, context, plan, key):
                return PLANNING
        case ["e"]:
            return await _pick_guest(update, context, plan, 0)
        case ["ep", "p", raw] if (page := parse_number(raw, digits=4)) is not None:
            return await _pick_guest(update, context, plan, page)
        case ["ei", raw] if (institution := parse_id(raw)) is not None:
            if not await _add_institution_guest(update, context, plan, institution):
                return PLANNING
        case ["en"]:
            if (off := _mail_off(context)) is not None:
                await alert(update, off)
                return PLANNING
            await answer(
                update,
                context.tr.gettext("Type the guest's name (at most {limit} characters).").format(
                    limit=guests.MAX_NAME
                ),
            )
            return GUEST_NAME
        case ["b"]:
            pass
        case ["c", "p", raw] if (page := parse_number(raw, digits=4)) is not None:
            context.user_data[CHOICE_PAGE] = page  # type: ignore[index]
        case _:
            await no_longer_active(update, context)
            return PLANNING
    _keep(context, plan)
    return await _show_plan(update, context, plan, new_message=False)


def _mail_off(context: Context) -> str | None:
    if context.runtime.settings.mail_enabled:
        return None
    return context.tr.gettext(
        "Guests cannot be invited by e-mail: this Round Table sends no e-mail yet (ask the "
        "administrator)."
    )


async def _pick_guest(update: Update, context: Context, plan: Plan, page: int) -> str:
    """The district's institutions with a contact address, paged, and "Someone else"."""
    if (off := _mail_off(context)) is not None:
        await alert(update, off)
        return PLANNING
    async with use_case(update, context, NOT_YOURS) as case:
        choices = await guests.guest_choices(case.session, case.actor, plan.case_id, now=case.now)
    if not case.done:
        return PLANNING
    _ = context.tr.gettext
    shown = paginate(choices, page, GUEST_PAGE)
    if choices:
        text = _(
            "Invite a guest by e-mail: an institution's contact address (page {page} of {pages}), "
            "or someone else. They get the invitation by e-mail; you enter their answers to the "
            "poll."
        ).format(page=shown.number + 1, pages=shown.count)
    else:
        text = _(
            "No institution has a contact address yet (an administrator sets them with "
            "/contacts). Invite someone else by their address?"
        )
    case_id = plan.case_id

    def button(choice: GuestChoice) -> tuple[str, str]:
        return ("✉ " + choice.name, f"pl:{case_id}:ei:{choice.institution_id}")

    extra = [
        [("+ " + _("Someone else"), f"pl:{case_id}:en")],
        [(_("Back to the plan"), f"pl:{case_id}:b")],
    ]
    await answer(update, text, paged_keyboard(shown, button, f"pl:{case_id}:ep", extra))
    return PLANNING


def _guest_refused(context: Context, error: GuestError) -> str:
    _ = context.tr.gettext
    match error:
        case MailOff():
            return _mail_off(context) or ""
        case DuplicateGuest():
            return _("That address is invited already.")
        case AlreadyInvited():
            return _("That institution is invited already.")
        case TooManyGuests():
            return _("At most {n} guests.").format(n=guests.MAX_GUESTS)
        case NoContact():
            return _("That institution has no contact address (any more).")
    return _("Please type the name as text of at most {limit} characters.").format(
        limit=guests.MAX_NAME
    )


async def _add_institution_guest(
    update: Update, context: Context, plan: Plan, institution_id: int
) -> bool:
    try:
        async with use_case(update, context, NOT_YOURS) as case:
            required = await planning.required_by_default(case.session, institution_id)
            await guests.add_institution_guest(
                case.session,
                case.actor,
                plan.case_id,
                plan.guests,
                invited=plan.invited,
                institution_id=institution_id,
                required=required,
                mail_enabled=context.runtime.settings.mail_enabled,
                now=case.now,
            )
    except GuestError as error:
        await alert(update, _guest_refused(context, error))
        return False
    return case.done


async def _remove_guest(update: Update, context: Context, plan: Plan, key: str) -> bool:
    """Whether the guest was removed (else the refusal was answered)."""
    async with use_case(update, context, NOT_YOURS) as case:
        await guests.remove_guest(
            case.session, case.actor, plan.case_id, plan.guests, key, now=case.now
        )
    return case.done


async def typed_guest_name(update: Update, context: Context) -> str | int:
    message = update.effective_message
    plan = _plan(context)
    if plan is None or message is None:
        return ConversationHandler.END
    try:
        name = guests.check_name(message.text or "")
    except BadName as error:
        await answer(update, _guest_refused(context, error))
        return GUEST_NAME
    context.user_data[NAMED] = name  # type: ignore[index]
    await answer(
        update, context.tr.gettext("Type the e-mail address of {name}.").format(name=esc(name))
    )
    return GUEST_ADDRESS


async def typed_guest_address(update: Update, context: Context) -> str | int:
    message = update.effective_message
    plan = _plan(context)
    name = (context.user_data or {}).get(NAMED)
    if plan is None or message is None or not isinstance(name, str):
        return ConversationHandler.END
    _ = context.tr.gettext
    try:
        async with use_case(update, context, NOT_YOURS) as case:
            await guests.add_named_guest(
                case.session,
                case.actor,
                plan.case_id,
                plan.guests,
                name=name,
                address=message.text or "",
                mail_enabled=context.runtime.settings.mail_enabled,
                now=case.now,
            )
    except addresses.InvalidAddress:
        await answer(update, unusable_address(context.tr))
        return GUEST_ADDRESS
    except GuestError as error:
        await answer(update, _guest_refused(context, error))
        context.user_data.pop(NAMED, None)  # type: ignore[union-attr]
        return await _show_plan(update, context, plan, new_message=True)
    if not case.done:
        return ConversationHandler.END
    context.user_data.pop(NAMED, None)  # type: ignore[union-attr]
    _keep(context, plan)
    return await _show_plan(update, context, plan, new_message=True)


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


async def typed_goal(update: Update, context: Context) -> str | int:
    message = update.effective_message
    plan = _plan(context)
    if plan is None or message is None:
        return ConversationHandler.END
    text = message.text or ""
    try:
        plan.goal = method.check_text(text, method.GOAL_MAX)
    except BadText as error:
        await answer(update, too_long(context.tr, error.limit, len(text.strip())))
        return GOAL
    _keep(context, plan)
    await delete_typed_text(update)  # it may name the child: it goes from the chat
    return await _show_plan(update, context, plan, new_message=True)


async def _send_poll(update: Update, context: Context, plan: Plan) -> str | int:
    _ = context.tr.gettext
    already = refused_by(AlreadyPlanned, answer=_planned_already_instead)
    try:
        async with use_case(update, context, NOT_YOURS, already) as case:
            started = await planning.start_poll(
                case.session,
                case.actor,
                plan,
                now=case.now,
                defaults=_defaults(context),
                mail_enabled=context.runtime.settings.mail_enabled,
            )
            if not isinstance(started, NoCandidates):
                await method.start(
                    case.session,
                    context.runtime.cipher,
                    started.conference_id,
                    ConferenceKind(plan.kind),
                    plan.goal,
                    now=case.now,
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

    def buttons() -> HandlerList:
        """The plan's buttons, which work in every step."""
        return [CallbackQueryHandler(dialog.step(adjust_plan), pattern=r"^pl:")]

    def typed(callback: Callback) -> HandlerList:
        """A typed step: the text, or a button of the plan shown above."""
        return [MessageHandler(TYPED, dialog.step(callback)), *buttons()]

    return [
        dialog.conversation(
            entry_points=[CallbackQueryHandler(dialog.entry(plan_conference), pattern=r"^cf:n:")],
            states={
                PLANNING: buttons(),
                PLACE: typed(typed_place),
                GOAL: typed(typed_goal),
                GUEST_NAME: typed(typed_guest_name),
                GUEST_ADDRESS: typed(typed_guest_address),
            },
        )
    ]
