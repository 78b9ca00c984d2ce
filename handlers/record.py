"""The record of a held case conference (`rc:` buttons), one screen edited in place: who came,
the summary, the plan's tasks, the review conference; finishing sends the owners their tasks
and the coordinator the record document.

Its dialog takes what is typed for the record, and also a task's new due date typed from the
coordinator's edit screen (`tk:y`): both ask for a date in the same step.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler

from bot.core.i18n import Translator
from bot.core.models import TaskParty
from bot.services import circulation, decisions, method, records, task_edits, tasks
from bot.services.decisions import Collision, Passed, TooFar
from handlers.attendance_screen import attendance_markup, attendance_text
from handlers.board_text import send_board
from handlers.common import (
    TYPED_TEXT,
    Context,
    Dialog,
    HandlerList,
    acknowledge,
    answer,
    consuming,
    esc,
    keyboard,
    no_longer_active,
    parse_callback,
    parse_id,
    parse_number,
)
from handlers.task_screens import (
    TASK_REFUSALS,
    begin_draft,
    delete_typed_text,
    edit_screen,
    fits,
    people_keyboard,
    pressed,
    send_record,
    show_record,
    task_draft,
)
from handlers.task_texts import QUICK_DUE
from handlers.usecase import on_pressed, use_case
from scheduling.typed import parse_day, parse_moment

logger = logging.getLogger(__name__)

SUMMARY, TITLE, OWNER, DUE, REVIEW = ("summary", "title", "owner", "due", "review")


def _today(context: Context) -> date:
    return context.runtime.clock.now().astimezone(context.tr.zone).date()


# The record screen and the attendance.


async def open_record(update: Update, context: Context) -> None:
    ids = await pressed(update, context, "rc")
    if ids is None:
        return
    await show_record(update, context, ids[0])


async def _paged(update: Update, context: Context, action: str) -> tuple[int, int] | None:
    """The conference and the page of an attendance button ("rc:a:12", "rc:h:12:p:3:y")."""
    query = update.callback_query
    match parse_callback(query.data if query else None, "rc"):
        case [a, raw] if a == action and (conference := parse_id(raw)) is not None:
            return conference, 0
        case [a, raw, "p", n, *_] if a == action and (conference := parse_id(raw)) is not None:
            if (page := parse_number(n, digits=4)) is not None:
                return conference, page
    await no_longer_active(update, context)
    return None


async def show_attendance(update: Update, context: Context) -> None:
    if (found := await _paged(update, context, "a")) is not None:
        await _attendance(update, context, found[0], page=found[1])


async def _attendance(
    update: Update, context: Context, conference_id: int, *, page: int = 0, shown: int = 0
) -> None:
    """The attendance screen (handlers.attendance_screen) at `page`, or at the page of the
    invitation `shown`."""
    tr = context.tr
    async with use_case(update, context, *TASK_REFUSALS) as case:
        view = await records.record_view(
            case.session, case.actor, context.runtime.cipher, conference_id, now=case.now
        )
        child = await method.child_present(case.session, conference_id)
    if not case.done:
        return
    await answer(
        update,
        attendance_text(view, tr),
        attendance_markup(view, tr, child=child, page=page, shown=shown),
    )


async def toggle_attendance(update: Update, context: Context) -> None:
    done = await on_pressed(update, context, "rc:t", records.toggle_attendance, *TASK_REFUSALS)
    if done is not None:
        await _attendance(update, context, done.result, shown=done.id)


async def toggle_child(update: Update, context: Context) -> None:
    """The child on the attendance sheet: came, or not."""
    if (found := await _paged(update, context, "h")) is None:
        return
    data = update.callback_query.data if update.callback_query else ""
    present = {"y": True, "n": False}.get((data or "").rsplit(":", 1)[-1])
    async with use_case(update, context, *TASK_REFUSALS) as case:
        await method.toggle_child_present(
            case.session, case.actor, found[0], now=case.now, present=present
        )
    if case.done:
        await _attendance(update, context, found[0], page=found[1])


# Typed parts of the record: the summary, a task, the review date.


async def _ask(
    update: Update,
    context: Context,
    step: str,
    prompt: str,
    markup: InlineKeyboardMarkup | None = None,
) -> str | int:
    """A typed part of the record (the summary, a task, the review) begins for the pressed
    button's held conference, if the presser may write its record: the prompt, and the dialog
    waits in `step` for the text; if not (said), the dialog ends."""
    ids = await pressed(update, context, "rc")
    if ids is None:
        return ConversationHandler.END
    async with use_case(update, context, *TASK_REFUSALS) as case:
        conference_id = await records.recordable(case.session, case.actor, ids[0], now=case.now)
    if not case.done:
        return ConversationHandler.END
    begin_draft(context, conference=conference_id, screen=_pressed_message(update))
    await answer(update, prompt, markup)
    return step


def _pressed_message(update: Update) -> int:
    """The id of the message whose button was pressed: the screen a typed step replaces."""
    query = update.callback_query
    return query.message.message_id if query is not None and query.message is not None else 0


async def _drop_screen(update: Update, context: Context, screen: int) -> None:
    """The screen above a typed answer goes: the one sent below it next takes its place, so the
    coordinator's chat holds one screen of the record, not one per step."""
    if not screen or update.effective_chat is None:
        return
    try:
        await context.bot.delete_message(update.effective_chat.id, screen)
    except TelegramError as error:  # too old (48 hours) or gone already: it stays, harmless
        logger.info("could not delete a replaced screen: %s", type(error).__name__)


async def ask_summary(update: Update, context: Context) -> str | int:
    prompt = context.tr.gettext(
        "Type the summary of the situation in one message (at most {limit} characters). "
        "It is stored encrypted and appears only in the record document."
    ).format(limit=records.SUMMARY_MAX)
    return await _ask(update, context, SUMMARY, prompt)


async def typed_summary(update: Update, context: Context) -> str | int:
    assert update.message is not None
    tr = context.tr
    text = update.message.text or ""
    conference_id = int(task_draft(context).get("conference", 0))
    too_long = tr.gettext("That is {length} characters; the summary takes 1 to {limit}.")
    if not await fits(update, text.strip(), records.SUMMARY_MAX, too_long):
        return SUMMARY
    async with use_case(update, context, *TASK_REFUSALS) as case:
        await records.set_summary(
            case.session, case.actor, context.runtime.cipher, conference_id, text, now=case.now
        )
    await delete_typed_text(update)
    if not case.done:  # refused or stale: the runner has said so
        return ConversationHandler.END
    await _drop_screen(update, context, int(task_draft(context).get("screen", 0)))
    await show_record(update, context, conference_id, below=True)
    return ConversationHandler.END


async def ask_title(update: Update, context: Context) -> str | int:
    prompt = context.tr.gettext(
        "What is the task? A short title (at most {limit} characters), without the "
        "child's name: it is shown in the owner's chat."
    ).format(limit=records.TITLE_MAX)
    cancel = keyboard([[("✖️ " + context.tr.gettext("Cancel"), "rc:x")]])
    return await _ask(update, context, TITLE, prompt, cancel)


async def typed_title(update: Update, context: Context) -> str | int:
    assert update.message is not None
    tr = context.tr
    title = " ".join((update.message.text or "").split())
    too_long = tr.gettext("That is {length} characters; a title takes 1 to {limit}.")
    if not await fits(update, title, records.TITLE_MAX, too_long):
        return TITLE
    draft = task_draft(context)
    draft["title"] = title
    conference_id = int(draft.get("conference", 0))
    async with use_case(update, context, *TASK_REFUSALS) as case:
        choices = await records.owner_choices(case.session, case.actor, conference_id, now=case.now)
    if not case.done:
        return ConversationHandler.END
    text, markup = _owner_screen(choices, 0, draft, tr)
    await _drop_screen(update, context, int(draft.get("screen", 0)))
    sent = await update.message.reply_text(text, reply_markup=markup)
    draft["screen"] = sent.message_id  # the next steps edit this one
    return OWNER


def _owner_screen(
    choices: list[records.OwnerChoice], page: int, draft: dict[str, Any], tr: Translator
) -> tuple[str, InlineKeyboardMarkup]:
    """A page of the people a task can go to. Before the party is chosen: "Who owns it?", with
    the child and a guardian on every page; after it: who follows it up."""
    if "party" in draft:
        text = tr.gettext("Who follows it up and gets the reminders?")
        return text, people_keyboard(choices, page, "rc:w", "rc:w")
    parties = [
        ("🧒 " + tr.gettext("The child"), "rc:w:c"),
        ("👪 " + tr.gettext("A guardian"), "rc:w:g"),
    ]
    extra = [parties, [("✖️ " + tr.gettext("Cancel"), "rc:x")]]
    return tr.gettext("Who owns it?"), people_keyboard(choices, page, "rc:w", "rc:w", extra)


async def chose_owner(update: Update, context: Context) -> str | int:
    query = update.callback_query
    assert query is not None
    tr = context.tr
    parts = parse_callback(query.data, "rc") or []
    draft = task_draft(context)
    page = 0
    if len(parts) == 3 and parts[1] == "p" and "title" in draft:
        # Another page: a garbled number changes nothing, and the dialog goes on.
        found = parse_number(parts[2], digits=4)
        if found is None:
            await no_longer_active(update, context)
            return OWNER
        page = found
    elif "title" not in draft or len(parts) != 2:
        await no_longer_active(update, context)
        return ConversationHandler.END
    if len(parts) == 3 or parts[1] in ("c", "g"):
        if len(parts) == 2:
            party = TaskParty.CHILD if parts[1] == "c" else TaskParty.GUARDIAN
            draft["party"] = party.value
        conference_id = int(draft["conference"])
        async with use_case(update, context, *TASK_REFUSALS) as case:
            choices = await records.owner_choices(
                case.session, case.actor, conference_id, now=case.now
            )
        if not case.done:
            return ConversationHandler.END
        await answer(update, *_owner_screen(choices, page, draft, tr))
        return OWNER
    member_id = parse_id(parts[1])
    if member_id is None:
        await no_longer_active(update, context)
        return ConversationHandler.END
    draft["owner"] = member_id
    draft.setdefault("party", TaskParty.MEMBER.value)
    rows = [
        [
            (tr.gettext("1 week"), "rc:d:7"),
            (tr.gettext("2 weeks"), "rc:d:14"),
            (tr.gettext("1 month"), "rc:d:30"),
        ],
        [("📅 " + tr.gettext("A date…"), "rc:d:x")],
    ]
    await answer(update, tr.gettext("By when?"), keyboard(rows))
    return DUE


async def chose_due(update: Update, context: Context) -> str | int:
    query = update.callback_query
    assert query is not None
    parts = parse_callback(query.data, "rc") or []
    if len(parts) != 2 or "owner" not in task_draft(context):
        await no_longer_active(update, context)
        return ConversationHandler.END
    if parts[1] == "x":
        await answer(update, context.tr.gettext("Type the due date, e.g. 15.3.2027."))
        return DUE
    days = parse_number(parts[1], digits=3)
    if days is None or days not in QUICK_DUE:
        await no_longer_active(update, context)
        return ConversationHandler.END
    conference_id = int(task_draft(context)["conference"])
    async with context.runtime.database.reading() as session:
        due_on = await task_edits.quick_due(
            session, conference_id, days, now=context.runtime.clock.now()
        )
    return await _add_task(update, context, due_on)


async def typed_due(update: Update, context: Context) -> str | int:
    assert update.message is not None
    day = parse_day(update.message.text or "", _today(context))
    if day is None or day < _today(context):
        await update.message.reply_text(
            context.tr.gettext("That is not a date from today on. Type it like 15.3.2027, please.")
        )
        return DUE
    try:
        if "task" in task_draft(context):
            return await _move(update, context, int(task_draft(context)["task"]), day)
        return await _add_task(update, context, day)
    except tasks.DueOutOfRange as refused:
        # Nothing was saved and the draft is kept: the same question, another date.
        await update.message.reply_text(_out_of_range_text(day, refused, context.tr))
        return DUE


def _out_of_range_text(day: date, refused: tasks.DueOutOfRange, tr: Translator) -> str:
    if day < refused.earliest:  # the district's day began after the check above
        return tr.gettext("That is not a date from today on. Type it like 15.3.2027, please.")
    return tr.gettext(
        "That is too far ahead: a task is due by {date} at the latest. Type an earlier date, "
        "please."
    ).format(date=tr.date(refused.latest))


async def _add_task(update: Update, context: Context, due_on: date) -> str | int:
    draft = dict(task_draft(context))
    conference_id = int(draft["conference"])
    typed = update.callback_query is None  # a typed date: the record goes below it
    async with use_case(update, context, *TASK_REFUSALS) as case:
        await records.add_task(
            case.session,
            case.actor,
            context.runtime.cipher,
            conference_id,
            title=str(draft["title"]),
            owner_id=int(draft["owner"]),
            due_on=due_on,
            party=TaskParty(draft.get("party", TaskParty.MEMBER.value)),
            now=case.now,
        )
    task_draft(context).clear()
    if case.done:
        # Only now: a refusal must be the pressed button's answer (a second one is not shown).
        # The record replaces the pressed screen; below a typed date it is sent anew and the
        # screen above the date goes.
        if typed:
            await _drop_screen(update, context, int(draft.get("screen", 0)))
        await show_record(update, context, conference_id, below=typed)
    return ConversationHandler.END


async def cancel_draft(update: Update, context: Context) -> str | int:
    conference_id = int(task_draft(context).get("conference", 0))
    task_draft(context).clear()
    if conference_id:
        await show_record(update, context, conference_id)
    return ConversationHandler.END


async def ask_review(update: Update, context: Context) -> str | int:
    prompt = context.tr.gettext(
        "Type the date and time of the review conference, e.g. 15.3.2027 10:00. Everyone "
        "invited last time gets the invitation."
    )
    return await _ask(update, context, REVIEW, prompt)


async def typed_review(update: Update, context: Context) -> str | int:
    assert update.message is not None
    tr = context.tr
    moment = parse_moment(update.message.text or "", _today(context), tr.zone)
    if moment is None:
        await update.message.reply_text(
            tr.gettext("Please type a date and a time, like 15.3.2027 10:00.")
        )
        return REVIEW
    conference_id = int(task_draft(context).get("conference", 0))
    async with use_case(update, context, *TASK_REFUSALS) as case:
        result = await decisions.fix_review(
            case.session,
            case.actor,
            conference_id,
            moment,
            now=case.now,
            mail_enabled=context.runtime.settings.mail_enabled,
        )
    if not case.done:
        return ConversationHandler.END
    if isinstance(result, Passed):
        await update.message.reply_text(tr.gettext("That time has passed. Type a later one."))
        return REVIEW
    if isinstance(result, TooFar):
        await update.message.reply_text(
            tr.ngettext(
                "That is too far ahead: the review conference meets within {n} month, by {date} "
                "at the latest. Type an earlier date, please.",
                "That is too far ahead: the review conference meets within {n} months, by {date} "
                "at the latest. Type an earlier date, please.",
                result.months,
            ).format(n=result.months, date=tr.date(result.latest))
        )
        return REVIEW
    if isinstance(result, Collision):
        await update.message.reply_text(
            tr.gettext("That clashes with {code} at {when}. Type another time.").format(
                code=result.other_code, when=tr.datetime(result.other_starts_at)
            )
        )
        return REVIEW
    screen = int(task_draft(context).get("screen", 0))
    task_draft(context).clear()
    await _drop_screen(update, context, screen)
    await update.message.reply_text(
        tr.gettext(
            "The review conference {code} is set: {when}, {place}. Invitations go out now."
        ).format(
            code=result.case_code,
            when=tr.datetime(result.starts_at),
            place=esc(result.place),
        )
    )
    # The live attendance message, as after a poll's Confirm: answers, New date, Cancel.
    await send_board(context, update.message.chat_id, result.board)
    await show_record(update, context, conference_id, below=True)
    return ConversationHandler.END


# A task's due date typed from the coordinator's edit screen.


async def ask_due_date(update: Update, context: Context) -> str | int:
    done = await on_pressed(update, context, "tk:y", task_edits.movable_task, *TASK_REFUSALS)
    if done is None:
        return ConversationHandler.END
    begin_draft(context, task=done.id, screen=_pressed_message(update))
    await answer(update, context.tr.gettext("Type the due date, e.g. 15.3.2027."))
    return DUE


async def _move(update: Update, context: Context, task_id: int, due_on: date) -> str | int:
    """A typed due date for a task: the edit screen again, below the typed date."""
    async with use_case(update, context, *TASK_REFUSALS) as case:
        await task_edits.move_due(case.session, case.actor, task_id, due_on, now=case.now)
    screen = int(task_draft(context).get("screen", 0))
    task_draft(context).clear()
    if case.done:
        await _drop_screen(update, context, screen)
        await edit_screen(update, context, task_id, below=True)
    return ConversationHandler.END


# Finishing and the document.


async def finish(update: Update, context: Context) -> None:
    done = await on_pressed(update, context, "rc:e", circulation.finish, *TASK_REFUSALS)
    if done is None:
        return
    await show_record(update, context, done.id)
    await _document(update, context, done.id, with_name=False)


async def send_document(update: Update, context: Context) -> None:
    ids = await pressed(update, context, "rc")
    query = update.callback_query
    if ids is None or query is None:
        return
    # Answered once the document is out: a refusal must be the button's answer, not a second
    # answer Telegram no longer shows.
    if await _document(update, context, ids[0], with_name=(query.data or "").startswith("rc:c:")):
        await acknowledge(query)


async def _document(
    update: Update, context: Context, conference_id: int, *, with_name: bool
) -> bool:
    """The record document to the presser, if they may have it (else the refusal is said)."""
    async with use_case(update, context, *TASK_REFUSALS) as case:
        record = await records.record_document(
            case.session,
            case.actor,
            context.runtime.cipher,
            conference_id,
            with_name=with_name,
            now=case.now,
        )
    if not case.done or update.effective_chat is None:
        return False
    caption = context.tr.gettext("The record of {code}: only you have it; edit and print it.")
    await send_record(context, update.effective_chat.id, record, caption.format(code=record.code))
    return True


# Wiring.


def handlers() -> HandlerList:
    record = Dialog("record")
    return [
        record.conversation(
            entry_points=[
                CallbackQueryHandler(record.entry(ask_summary), pattern=r"^rc:s:\d+$"),
                CallbackQueryHandler(record.entry(ask_title), pattern=r"^rc:n:\d+$"),
                CallbackQueryHandler(record.entry(ask_review), pattern=r"^rc:v:\d+$"),
                CallbackQueryHandler(record.entry(ask_due_date), pattern=r"^tk:y:\d+$"),
            ],
            states={
                SUMMARY: [MessageHandler(TYPED_TEXT, record.step(typed_summary))],
                TITLE: [MessageHandler(TYPED_TEXT, record.step(typed_title))],
                OWNER: [CallbackQueryHandler(record.step(chose_owner), pattern=r"^rc:w:")],
                DUE: [
                    CallbackQueryHandler(record.step(chose_due), pattern=r"^rc:d:"),
                    MessageHandler(TYPED_TEXT, record.step(typed_due)),
                ],
                REVIEW: [MessageHandler(TYPED_TEXT, record.step(typed_review))],
            },
            fallbacks=[
                CallbackQueryHandler(record.step(cancel_draft), pattern=r"^rc:x$"),
                CommandHandler("cancel", record.step(cancel_draft)),
            ],
        ),
    ]


def command_handlers() -> HandlerList:
    return [
        CallbackQueryHandler(consuming(open_record), pattern=r"^rc:o:\d+$"),
        CallbackQueryHandler(consuming(show_attendance), pattern=r"^rc:a:\d+(:p:\d+)?$"),
        CallbackQueryHandler(consuming(toggle_attendance), pattern=r"^rc:t:\d+$"),
        CallbackQueryHandler(consuming(toggle_child), pattern=r"^rc:h:\d+(:p:\d+(:[yn])?)?$"),
        CallbackQueryHandler(consuming(finish), pattern=r"^rc:e:\d+$"),
        CallbackQueryHandler(consuming(send_document), pattern=r"^rc:[rc]:\d+$"),
    ]
