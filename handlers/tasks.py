"""After the table: recording the outcome, the owners' tasks, and the coordinator's overview.

Callback data: `rc:` the record (coordinator), `tk:` a task, `cc:` closing a case. Every
message names a case by its code and a task by its title only (bot.services.tasks).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardMarkup, InputFile, Update
from telegram.error import TelegramError
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.core import outbox
from bot.core.i18n import Translator
from bot.core.models import InvitationKind, TaskParty, TaskStatus
from bot.core.outbox import Kind, Notification, Outgoing
from bot.core.record import owner_label, record_docx, record_filename
from bot.services import (
    cases,
    conferences,
    invitations,
    leavers,
    overview,
    records,
    task_edits,
    tasks,
)
from bot.services.conferences import Collision, Passed, PollClosed, TooFar
from bot.services.errors import PermissionDenied
from bot.services.members import Actor
from handlers.common import (
    MAX_TEXT,
    Context,
    Dialog,
    HandlerList,
    acknowledge,
    alert,
    answer,
    callback_ids,
    chunks,
    clip,
    consuming,
    ends_on_other_commands,
    esc,
    keyboard,
    no_longer_active,
    paged_keyboard,
    paginate,
    parse_callback,
    parse_id,
    parse_number,
    recipient_tr,
)
from handlers.conference import board_markup, board_text

logger = logging.getLogger(__name__)

T = TypeVar("T")

SUMMARY, TITLE, OWNER, DUE, REVIEW, DONE_NOTE, NOTE = (
    "summary",
    "title",
    "owner",
    "due",
    "review",
    "done_note",
    "note",
)
DRAFT = "task_draft"  # the task being added, in the dialog's (encrypted) user data
QUICK_DUE = (7, 14, 30)
EDITABLE = 12  # task buttons on the record screen (a plan rarely has more)
PEOPLE_PAGE = 8  # people to choose from on one page, with ◀ ▶ below them
TASKS_PAGE = 10  # /tasks: a page's lines stay far below Telegram's 4,096 characters


def _short(title: str, limit: int = 30) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"


# Small helpers.


async def _run(
    update: Update, context: Context, work: Callable[[AsyncSession, Actor, datetime], Awaitable[T]]
) -> T | None:
    """One use case in one transaction; refusals and stale presses get their answer."""
    runtime = context.runtime
    tr = context.tr
    try:
        async with runtime.database.transaction() as session:
            result = await work(session, context.require_actor(), runtime.clock.now())
    except PermissionDenied:
        await alert(update, tr.gettext("This is not yours to change."))
    except records.NotHeldYet:
        await alert(update, tr.gettext("The case conference has not taken place yet."))
    except (tasks.TaskError, PollClosed):
        await no_longer_active(update, context)
    else:
        outbox.wake(context.application)
        return result
    return None


async def _pressed(
    update: Update, context: Context, namespace: str, count: int = 1
) -> list[int] | None:
    """The ids after the action in a button's data (`rc:o:12` → [12]); data that does not read
    so is answered as a stale button."""
    query = update.callback_query
    parts = parse_callback(query.data if query else None, namespace)
    ids = callback_ids(update, f"{namespace}:{parts[0]}", count) if parts else None
    if ids is None:
        await no_longer_active(update, context)
    return ids


def _due_text(item: tasks.TaskItem, tr: Translator) -> str:
    if item.status is TaskStatus.DONE:
        return "✅ " + tr.gettext("done")
    if item.overdue:
        return "⚠️ " + tr.gettext("overdue since {date}").format(date=tr.day(item.due_on))
    return tr.gettext("due {date}").format(date=tr.day(item.due_on))


def _task_line(item: tasks.TaskItem, tr: Translator, *, owner: bool = False) -> str:
    line = f"{esc(item.case_code)} · «{esc(item.title)}» · {_due_text(item, tr)}"
    if owner:
        line += " · " + esc(_owner(item, tr))
    return line


def _owner(item: tasks.TaskItem, tr: Translator) -> str:
    return owner_label(item.party, item.owner, tr)


def _owner_buttons(task_id: int, tr: Translator) -> InlineKeyboardMarkup:
    return keyboard(
        [
            [("✅ " + tr.gettext("Done"), f"tk:d:{task_id}")],
            [
                ("⏳ " + tr.gettext("Need more time"), f"tk:m:{task_id}"),
                ("📝 " + tr.gettext("Note"), f"tk:n:{task_id}"),
            ],
        ]
    )


def parse_day(text: str, today: date) -> date | None:
    """A date as people type it: 3.2.2027, 3. 2. 2027, 3.2. (the next such day), 2027-02-03."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        match = re.fullmatch(r"(\d{1,2})\.\s*(\d{1,2})\.\s*(\d{4})?", text)
        if match is None:
            return None
        day, month = int(match.group(1)), int(match.group(2))
        if match.group(3):
            return date(int(match.group(3)), month, day)
        value = date(today.year, month, day)
        return value if value >= today else date(today.year + 1, month, day)
    except ValueError:
        return None


def parse_moment(text: str, today: date, zone: ZoneInfo) -> datetime | None:
    """A date and a time: 3.2.2027 10:00."""
    match = re.fullmatch(r"(.+?)\s+(\d{1,2})[:.](\d{2})", text.strip())
    if match is None:
        return None
    day = parse_day(match.group(1), today)
    hour, minute = int(match.group(2)), int(match.group(3))
    if day is None or hour > 23 or minute > 59:
        return None
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def _today(context: Context) -> date:
    return context.runtime.clock.now().astimezone(context.tr.zone).date()


# The record: one screen, edited in place.


def record_text(view: records.RecordView, tr: Translator) -> str:
    _ = tr.gettext
    came = sum(1 for a in view.attendance if a.attended)
    lines = [
        "📝 "
        + _("Record of the case conference {code}, {when}").format(
            code=view.case_code, when=tr.datetime(view.starts_at)
        ),
        "",
        _("Attendance: {came} of {all} came.").format(came=came, all=len(view.attendance)),
        _("Summary: written.") if view.summary else _("Summary: not written yet."),
        tr.ngettext("Plan: {count} task.", "Plan: {count} tasks.", len(view.tasks)).format(
            count=len(view.tasks)
        ),
    ]
    lines += ["   • " + _task_line(item, tr, owner=True) for item in view.tasks]
    if view.review_at is not None:
        lines.append(_("Review conference: {when}.").format(when=tr.datetime(view.review_at)))
    elif view.review_id is not None:
        lines.append(_("Review conference: a poll for its date is running."))
    elif view.review_by is not None:
        lines.append(_("Review conference: by {date}.").format(date=tr.day(view.review_by)))
    if view.recorded_at is not None:
        lines.append("✅ " + _("Finished; the owners have their tasks."))
    return "\n".join(lines)


def record_markup(view: records.RecordView, tr: Translator) -> InlineKeyboardMarkup:
    _ = tr.gettext
    conf = view.conference_id
    rows = [
        [("👥 " + _("Attendance"), f"rc:a:{conf}"), ("✏️ " + _("Summary"), f"rc:s:{conf}")],
        [("➕ " + _("Add a task"), f"rc:n:{conf}")],
    ]
    editable = [item for item in view.tasks if item.status is TaskStatus.OPEN][:EDITABLE]
    rows += [[("✏️ " + _short(item.title), f"tk:e:{item.id}")] for item in editable]
    if view.recorded_at is None:
        rows.append([("✅ " + _("Finish: send the tasks and the record"), f"rc:e:{conf}")])
    else:
        rows.append([("📄 " + _("The record document"), f"rc:r:{conf}")])
        rows.append([("📄 " + _("The record with the child's name"), f"rc:c:{conf}")])
        if view.review_id is None:
            rows.append(
                [
                    ("📅 " + _("Review: start the poll"), f"cf:n:{view.case_id}"),
                    ("🗓 " + _("Review: fix the date"), f"rc:v:{conf}"),
                ]
            )
    return keyboard(rows)


async def _show_record(
    update: Update, context: Context, conference_id: int, *, below: bool = False
) -> None:
    """The record screen in place of the pressed message, or `below` it as a new message."""
    runtime = context.runtime
    view = await _run(
        update,
        context,
        lambda session, actor, now: records.record_view(
            session, actor, runtime.cipher, conference_id, now=now
        ),
    )
    if view is None:
        return
    text, markup = record_text(view, context.tr), record_markup(view, context.tr)
    if below and update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, text, reply_markup=markup)
    else:
        await answer(update, text, markup)


async def open_record(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "rc")
    if ids is None:
        return
    await _show_record(update, context, ids[0])


def attendance_text(view: records.RecordView, tr: Translator) -> str:
    return tr.gettext(
        "👥 Attendance at {code}: one tap per participant changes came → a colleague came "
        "instead → did not come."
    ).format(code=view.case_code)


def _attendance_label(item: records.Attendance, tr: Translator) -> str:
    name = item.label
    if item.kind is not InvitationKind.INSTITUTION:
        name = tr.gettext("Guardian {number}").format(number=item.number)
    if not item.attended:
        return f"❌ {name}"
    who = item.person or "—"
    if item.instead_of:
        who = tr.gettext("{name} instead of {other}").format(name=who, other=item.instead_of)
    return f"✅ {name}: {who}"


async def show_attendance(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "rc")
    if ids is None:
        return
    await _attendance(update, context, ids[0])


async def _attendance(update: Update, context: Context, conference_id: int) -> None:
    runtime = context.runtime
    tr = context.tr
    view = await _run(
        update,
        context,
        lambda session, actor, now: records.record_view(
            session, actor, runtime.cipher, conference_id, now=now
        ),
    )
    if view is None:
        return
    rows = [[(_attendance_label(a, tr), f"rc:t:{a.invitation_id}")] for a in view.attendance]
    rows.append([("⬅️ " + tr.gettext("Back"), f"rc:o:{conference_id}")])
    await answer(update, attendance_text(view, tr), keyboard(rows))


async def toggle_attendance(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "rc")
    if ids is None:
        return
    conference_id = await _run(
        update,
        context,
        lambda session, actor, now: records.toggle_attendance(session, actor, ids[0], now=now),
    )
    if conference_id is not None:
        await _attendance(update, context, conference_id)


# Typed parts of the record: the summary, a task, the review date.


def _draft(context: Context) -> dict[str, Any]:
    data = context.user_data
    assert data is not None
    draft: dict[str, Any] = data.setdefault(DRAFT, {})
    return draft


def _begin(context: Context, **values: int) -> None:
    """A typed step starts afresh: what an earlier, abandoned one left is forgotten."""
    draft = _draft(context)
    draft.clear()
    draft.update(values)


async def _fits(update: Update, text: str, limit: int, refusal: str) -> bool:
    """1 to `limit` characters, or the person is told how long it was (`refusal` says what
    takes how many) and asked again."""
    if text and len(text) <= limit:
        return True
    assert update.message is not None
    await update.message.reply_text(refusal.format(length=len(text), limit=limit))
    return False


async def _recordable(update: Update, context: Context) -> int | None:
    """The pressed button's held conference, if the presser may write its record."""
    ids = await _pressed(update, context, "rc")
    if ids is None:
        return None
    return await _run(
        update,
        context,
        lambda session, actor, now: records.recordable(session, actor, ids[0], now=now),
    )


async def ask_summary(update: Update, context: Context) -> str | int:
    conference_id = await _recordable(update, context)
    if conference_id is None:
        return ConversationHandler.END
    _begin(context, conference=conference_id)
    await answer(
        update,
        context.tr.gettext(
            "Type the summary of the situation in one message (at most {limit} characters). "
            "It is stored encrypted and appears only in the record document."
        ).format(limit=records.SUMMARY_MAX),
    )
    return SUMMARY


async def typed_summary(update: Update, context: Context) -> str | int:
    assert update.message is not None
    tr = context.tr
    text = update.message.text or ""
    conference_id = int(_draft(context).get("conference", 0))
    refusal = tr.gettext("That is {length} characters; the summary takes 1 to {limit}.")
    if not await _fits(update, text.strip(), records.SUMMARY_MAX, refusal):
        return SUMMARY
    runtime = context.runtime
    done = await _run(
        update,
        context,
        lambda session, actor, now: records.set_summary(
            session, actor, runtime.cipher, conference_id, text, now=now
        ),
    )
    await _delete_typed(update)
    if done is None:  # refused or stale: _run has said so
        return ConversationHandler.END
    await update.message.reply_text(tr.gettext("The summary is saved."))
    await _show_record(update, context, conference_id, below=True)
    return ConversationHandler.END


async def _delete_typed(update: Update) -> None:
    """A summary or a note may hold personal data: it does not stay in the chat."""
    if update.message is not None:
        try:
            await update.message.delete()
        except TelegramError as error:
            logger.info("could not delete a typed summary: %s", type(error).__name__)


async def ask_title(update: Update, context: Context) -> str | int:
    conference_id = await _recordable(update, context)
    if conference_id is None:
        return ConversationHandler.END
    _begin(context, conference=conference_id)
    await answer(
        update,
        context.tr.gettext(
            "What is the task? A short title (at most {limit} characters), without the "
            "child's name: it is shown in the owner's chat."
        ).format(limit=records.TITLE_MAX),
        keyboard([[("✖️ " + context.tr.gettext("Cancel"), "rc:x")]]),
    )
    return TITLE


async def typed_title(update: Update, context: Context) -> str | int:
    assert update.message is not None
    tr = context.tr
    title = " ".join((update.message.text or "").split())
    refusal = tr.gettext("That is {length} characters; a title takes 1 to {limit}.")
    if not await _fits(update, title, records.TITLE_MAX, refusal):
        return TITLE
    draft = _draft(context)
    draft["title"] = title
    conference_id = int(draft.get("conference", 0))
    choices = await _run(
        update,
        context,
        lambda session, actor, now: records.owner_choices(session, actor, conference_id, now=now),
    )
    if choices is None:
        return ConversationHandler.END
    text, markup = _owner_screen(choices, 0, draft, tr)
    await update.message.reply_text(text, reply_markup=markup)
    return OWNER


def _owner_screen(
    choices: list[records.OwnerChoice], page: int, draft: dict[str, Any], tr: Translator
) -> tuple[str, InlineKeyboardMarkup]:
    """A page of the people a task can go to. Before the party is chosen: "Who owns it?", with
    the child and a guardian on every page; after it: who follows it up."""
    shown = paginate(choices, page, PEOPLE_PAGE)

    def person(choice: records.OwnerChoice) -> tuple[str, str]:
        return f"{choice.name} ({choice.institution})", f"rc:w:{choice.member_id}"

    if "party" in draft:
        text = tr.gettext("Who follows it up and gets the reminders?")
        return text, paged_keyboard(shown, person, "rc:w")
    parties = [
        ("🧒 " + tr.gettext("The child"), "rc:w:c"),
        ("👪 " + tr.gettext("A guardian"), "rc:w:g"),
    ]
    extra = [parties, [("✖️ " + tr.gettext("Cancel"), "rc:x")]]
    return tr.gettext("Who owns it?"), paged_keyboard(shown, person, "rc:w", extra)


async def chose_owner(update: Update, context: Context) -> str | int:
    query = update.callback_query
    assert query is not None
    tr = context.tr
    parts = parse_callback(query.data, "rc") or []
    draft = _draft(context)
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
        choices = await _run(
            update,
            context,
            lambda session, actor, now: records.owner_choices(
                session, actor, conference_id, now=now
            ),
        )
        if choices is None:
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
    if len(parts) != 2 or "owner" not in _draft(context):
        await no_longer_active(update, context)
        return ConversationHandler.END
    if parts[1] == "x":
        await answer(update, context.tr.gettext("Type the due date, e.g. 15.3.2027."))
        return DUE
    days = parse_number(parts[1], digits=3)
    if days is None or days not in QUICK_DUE:
        await no_longer_active(update, context)
        return ConversationHandler.END
    conference_id = int(_draft(context)["conference"])
    async with context.runtime.database.transaction() as session:
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
        if "task" in _draft(context):
            return await _move(update, context, int(_draft(context)["task"]), day)
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
    draft = dict(_draft(context))
    runtime = context.runtime
    conference_id = int(draft["conference"])
    added = await _run(
        update,
        context,
        lambda session, actor, now: records.add_task(
            session,
            actor,
            runtime.cipher,
            conference_id,
            title=str(draft["title"]),
            owner_id=int(draft["owner"]),
            due_on=due_on,
            party=TaskParty(draft.get("party", TaskParty.MEMBER.value)),
            now=now,
        ),
    )
    _draft(context).clear()
    if added is not None:
        # Only now: a refusal must be the pressed button's answer (a second one is not shown).
        if update.callback_query is not None:
            await acknowledge(update.callback_query)
        await _show_record(update, context, conference_id, below=True)
    return ConversationHandler.END


async def cancel_draft(update: Update, context: Context) -> str | int:
    conference_id = int(_draft(context).get("conference", 0))
    _draft(context).clear()
    if conference_id:
        await _show_record(update, context, conference_id)
    return ConversationHandler.END


async def ask_review(update: Update, context: Context) -> str | int:
    conference_id = await _recordable(update, context)
    if conference_id is None:
        return ConversationHandler.END
    _begin(context, conference=conference_id)
    await answer(
        update,
        context.tr.gettext(
            "Type the date and time of the review conference, e.g. 15.3.2027 10:00. Everyone "
            "invited last time gets the invitation."
        ),
    )
    return REVIEW


async def typed_review(update: Update, context: Context) -> str | int:
    assert update.message is not None
    tr = context.tr
    moment = parse_moment(update.message.text or "", _today(context), tr.zone)
    if moment is None:
        await update.message.reply_text(
            tr.gettext("Please type a date and a time, like 15.3.2027 10:00.")
        )
        return REVIEW
    conference_id = int(_draft(context).get("conference", 0))
    result = await _run(
        update,
        context,
        lambda session, actor, now: conferences.fix_review(
            session, actor, conference_id, moment, now=now
        ),
    )
    if result is None:
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
    _draft(context).clear()
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
    board = await update.message.reply_text(
        board_text(result.board, tr), reply_markup=board_markup(result.board, tr)
    )
    async with context.runtime.database.transaction() as session:
        await conferences.set_board(session, result.conference_id, board.chat_id, board.message_id)
    await _show_record(update, context, conference_id, below=True)
    return ConversationHandler.END


# Finishing and the document.


async def finish(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "rc")
    if ids is None:
        return
    told = await _run(
        update,
        context,
        lambda session, actor, now: records.finish_record(session, actor, ids[0], now=now),
    )
    if told is None:
        return
    await _show_record(update, context, ids[0])
    await _document(update, context, ids[0], with_name=False)


async def send_document(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "rc")
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
    runtime = context.runtime
    record = await _run(
        update,
        context,
        lambda session, actor, now: records.record_document(
            session, actor, runtime.cipher, conference_id, with_name=with_name, now=now
        ),
    )
    if record is None or update.effective_chat is None:
        return False
    file = InputFile(record_docx(record, context.tr), filename=record_filename(record))
    await context.bot.send_document(
        update.effective_chat.id,
        file,
        caption=context.tr.gettext(
            "The record of {code}: only you have it; edit and print it."
        ).format(code=record.code),
        protect_content=True,
    )
    return True


# The coordinator edits a task: the due date, the owner, or cancelling it.


def edit_text(item: tasks.TaskItem, notes: int, tr: Translator) -> str:
    lines = [
        "✏️ "
        + tr.gettext("Case {code}: «{title}»").format(code=item.case_code, title=esc(item.title)),
        tr.gettext("Owner: {owner}").format(owner=esc(_owner(item, tr))),
        _capitalised(_due_text(item, tr)),
    ]
    if notes:
        note = tr.ngettext("The owner wrote {count} note.", "The owner wrote {count} notes.", notes)
        lines.append(note.format(count=notes))
    return "\n".join(lines)


def _notes_button(task_id: int, tr: Translator) -> tuple[str, str]:
    return ("🗒 " + tr.gettext("Read the notes"), f"tk:l:{task_id}")


def edit_markup(item: tasks.TaskItem, notes: int, tr: Translator) -> InlineKeyboardMarkup:
    _ = tr.gettext
    return keyboard(
        ([[_notes_button(item.id, tr)]] if notes else [])
        + [
            [
                (_("Due in 1 week"), f"tk:u:{item.id}:7"),
                (_("in 2 weeks"), f"tk:u:{item.id}:14"),
                (_("in 1 month"), f"tk:u:{item.id}:30"),
            ],
            [("📅 " + _("Another due date…"), f"tk:y:{item.id}")],
            [("👤 " + _("Another owner"), f"tk:o:{item.id}")],
            [("🗑 " + _("Cancel the task"), f"tk:c:{item.id}")],
            [("⬅️ " + _("Back to the record"), f"rc:o:{item.conference_id}")],
        ]
    )


async def _edit_screen(
    update: Update, context: Context, task_id: int, *, below: bool = False
) -> None:
    """The task's edit screen in place of the pressed message, or `below` as a new message."""
    cipher = context.runtime.cipher
    found = await _run(
        update,
        context,
        lambda session, actor, now: task_edits.coordinator_task(
            session, actor, cipher, task_id, now=now
        ),
    )
    if found is None:
        return
    item, notes = found
    text, markup = edit_text(item, notes, context.tr), edit_markup(item, notes, context.tr)
    if below and update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, text, reply_markup=markup)
    else:
        await answer(update, text, markup)


async def read_notes(update: Update, context: Context) -> None:
    """The owner's notes, on explicit request: protected, and the reading is audited."""
    ids = await _pressed(update, context, "tk")
    query = update.callback_query
    if ids is None or query is None or update.effective_chat is None:
        return
    cipher = context.runtime.cipher
    found = await _run(
        update,
        context,
        lambda session, actor, now: task_edits.read_notes(session, actor, cipher, ids[0], now=now),
    )
    if found is None:
        return
    await acknowledge(query)
    item, notes = found
    tr = context.tr
    head = tr.gettext("Notes on {code} «{title}»:")
    paragraphs = ["🗒 " + head.format(code=item.case_code, title=esc(item.title))]
    for note in notes:
        mark = "✅ " if note.kind == "done" else ""
        paragraphs.append(f"{mark}{esc(note.author)}, {tr.datetime(note.at)}:\n{esc(note.text)}")
    # Many notes take several messages; the reading was audited once, above.
    for text in chunks(paragraphs, separator="\n\n"):
        await context.bot.send_message(update.effective_chat.id, text, protect_content=True)


async def edit_task(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "tk")
    if ids is not None:
        await _edit_screen(update, context, ids[0])


async def move_quick(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "tk", 2)
    if ids is None:
        return
    task_id, days = ids
    if days not in QUICK_DUE:
        await no_longer_active(update, context)
        return
    moved = await _run(
        update,
        context,
        lambda session, actor, now: task_edits.move_due_in(session, actor, task_id, days, now=now),
    )
    if moved is not None:
        await _edit_screen(update, context, task_id)


async def ask_due_date(update: Update, context: Context) -> str | int:
    ids = await _pressed(update, context, "tk")
    if ids is None or not await _run(
        update,
        context,
        lambda session, actor, now: task_edits.movable_task(session, actor, ids[0], now=now),
    ):
        return ConversationHandler.END
    _begin(context, task=ids[0])
    await answer(update, context.tr.gettext("Type the due date, e.g. 15.3.2027."))
    return DUE


async def _move(update: Update, context: Context, task_id: int, due_on: date) -> str | int:
    """A typed due date for a task: the edit screen again, below the typed date."""
    moved = await _run(
        update,
        context,
        lambda session, actor, now: task_edits.move_due(session, actor, task_id, due_on, now=now),
    )
    _draft(context).clear()
    if moved is not None:
        await _edit_screen(update, context, task_id, below=True)
    return ConversationHandler.END


async def ask_cancel_task(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "tk")
    if ids is None or not await _run(
        update,
        context,
        lambda session, actor, now: task_edits.cancellable_task(session, actor, ids[0], now=now),
    ):
        return
    tr = context.tr
    await answer(
        update,
        tr.gettext("Cancel this task? Its owner is told it is no longer needed."),
        keyboard(
            [
                [("🗑 " + tr.gettext("Yes, cancel the task"), f"tk:z:{ids[0]}")],
                [("↩️ " + tr.gettext("Keep it"), f"tk:e:{ids[0]}")],
            ]
        ),
    )


async def confirm_cancel_task(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "tk")
    if ids is None:
        return
    conference_id = await _run(
        update,
        context,
        lambda session, actor, now: task_edits.cancel_task(session, actor, ids[0], now=now),
    )
    if conference_id is not None:
        await _show_record(update, context, conference_id)


# Task owners.


async def _item(context: Context, task_id: int) -> tasks.TaskItem | None:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        return await tasks.task_item(session, runtime.cipher, task_id, now=runtime.clock.now())


def _capitalised(text: str) -> str:
    """ "due Dec 11" → "Due Dec 11" (str.capitalize would lower the month)."""
    return text[:1].upper() + text[1:]


def task_text(item: tasks.TaskItem, tr: Translator, head: str) -> str:
    return "\n".join(
        [
            head,
            tr.gettext("Case {code}: «{title}»").format(code=item.case_code, title=esc(item.title)),
            _capitalised(_due_text(item, tr)),
        ]
    )


async def _own(update: Update, context: Context) -> tasks.TaskItem | None:
    """The pressed button's task, if it is the presser's own and still open."""
    ids = await _pressed(update, context, "tk")
    if ids is None:
        return None
    cipher = context.runtime.cipher
    return await _run(
        update,
        context,
        lambda session, actor, now: tasks.own_task(session, actor, cipher, ids[0], now=now),
    )


async def show_task(update: Update, context: Context) -> None:
    item = await _own(update, context)
    if item is None:
        return
    await answer(update, task_text(item, context.tr, "📌"), _owner_buttons(item.id, context.tr))


async def ask_done_note(update: Update, context: Context) -> str | int:
    item = await _own(update, context)
    if item is None:
        return ConversationHandler.END
    _begin(context, task=item.id)
    tr = context.tr
    await answer(
        update,
        tr.gettext(
            "Type a short note for the coordinator (at most {limit} characters), or tap Done "
            "without a note."
        ).format(limit=tasks.NOTE_MAX),
        keyboard([[("✅ " + tr.gettext("Done without a note"), f"tk:k:{item.id}")]]),
    )
    return DONE_NOTE


async def done_without_note(update: Update, context: Context) -> str | int:
    ids = await _pressed(update, context, "tk")
    if ids is None:
        return ConversationHandler.END
    return await _complete(update, context, ids[0], None)


async def typed_done_note(update: Update, context: Context) -> str | int:
    assert update.message is not None
    text = (update.message.text or "").strip()
    if not await _fits(update, text, tasks.NOTE_MAX, _note_refusal(context.tr)):
        return DONE_NOTE
    await _delete_typed(update)
    return await _complete(update, context, int(_draft(context).get("task", 0)), text)


async def _complete(update: Update, context: Context, task_id: int, note: str | None) -> int:
    runtime = context.runtime
    done = await _run(
        update,
        context,
        lambda session, actor, now: tasks.complete(
            session, actor, runtime.cipher, task_id, note, now=now
        ),
    )
    _draft(context).clear()
    if done is not None:
        await answer(update, "✅ " + context.tr.gettext("Marked as done. Thank you!"))
    return ConversationHandler.END


def _note_refusal(tr: Translator) -> str:
    return tr.gettext("That is {length} characters; a note takes 1 to {limit}.")


async def ask_note(update: Update, context: Context) -> str | int:
    item = await _own(update, context)
    if item is None:
        return ConversationHandler.END
    _begin(context, task=item.id)
    await answer(
        update,
        context.tr.gettext("Type a short progress note (at most {limit} characters).").format(
            limit=tasks.NOTE_MAX
        ),
    )
    return NOTE


async def typed_note(update: Update, context: Context) -> str | int:
    assert update.message is not None
    text = (update.message.text or "").strip()
    if not await _fits(update, text, tasks.NOTE_MAX, _note_refusal(context.tr)):
        return NOTE
    runtime = context.runtime
    task_id = int(_draft(context).get("task", 0))
    done = await _run(
        update,
        context,
        lambda session, actor, now: tasks.add_note(
            session, actor, runtime.cipher, task_id, text, now=now
        ),
    )
    _draft(context).clear()
    await _delete_typed(update)
    if done is not None:
        await update.message.reply_text(context.tr.gettext("The note is saved."))
    return ConversationHandler.END


async def ask_more_time(update: Update, context: Context) -> None:
    item = await _own(update, context)
    if item is None:
        return
    tr = context.tr
    rows = [
        [
            (tr.gettext("+1 week"), f"tk:x:{item.id}:7"),
            (tr.gettext("+2 weeks"), f"tk:x:{item.id}:14"),
            (tr.gettext("+1 month"), f"tk:x:{item.id}:30"),
        ]
    ]
    await answer(
        update,
        tr.gettext("How much more time do you need for «{title}» (due {date})?").format(
            title=esc(item.title), date=tr.day(item.due_on)
        ),
        keyboard(rows),
    )


async def more_time(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "tk", 2)
    if ids is None:
        return
    task_id, days = ids
    if days not in QUICK_DUE:
        await no_longer_active(update, context)
        return
    asked = await _run(
        update,
        context,
        lambda session, actor, now: tasks.ask_more_time(
            session, actor, task_id, timedelta(days=days), now=now
        ),
    )
    if asked is not None:
        await answer(
            update,
            context.tr.gettext("Asked the coordinator to move it to {date}.").format(
                date=context.tr.day(asked)
            ),
        )


def _compact(day: date) -> str:
    return day.strftime("%Y%m%d")


def _from_compact(part: str) -> date | None:
    try:
        return datetime.strptime(part, "%Y%m%d").date()
    except ValueError:
        return None


async def decide(update: Update, context: Context) -> None:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "tk") or []
    if len(parts) != 3 or parts[0] not in ("g", "r"):
        await no_longer_active(update, context)
        return
    task_id, asked = parse_id(parts[1]), _from_compact(parts[2])
    if task_id is None or asked is None:
        await no_longer_active(update, context)
        return
    approve = parts[0] == "g"
    owner = await _run(
        update,
        context,
        lambda session, actor, now: task_edits.decide_more_time(
            session, actor, task_id, asked, approve, now=now
        ),
    )
    if owner is None:
        return
    tr = context.tr
    text = (
        tr.gettext("More time given to {name}: due {date} now.")
        if approve
        else tr.gettext("More time refused to {name}; the due date stays.")
    )
    await answer(update, text.format(name=esc(owner.name), date=tr.day(asked)))


async def remind_again(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "tk")
    if ids is None:
        return
    done = await _run(
        update,
        context,
        lambda session, actor, now: task_edits.remind_again(session, actor, ids[0], now=now),
    )
    if done is not None and update.callback_query is not None:
        await acknowledge(update.callback_query, context.tr.gettext("Reminded again."))


async def reassign_choices(update: Update, context: Context) -> None:
    """The people who can take a task over, a page at a time: "tk:o:<task>" shows the first
    page, "tk:o:<task>:p:<page>" another."""
    query = update.callback_query
    task_id: int | None
    page: int | None
    match parse_callback(query.data if query else None, "tk"):
        case ["o", raw_task]:
            task_id, page = parse_id(raw_task), 0
        case ["o", raw_task, "p", raw_page]:
            task_id, page = parse_id(raw_task), parse_number(raw_page, digits=4)
        case _:
            task_id = page = None
    if task_id is None or page is None:
        await no_longer_active(update, context)
        return
    choices = await _run(
        update,
        context,
        lambda session, actor, now: task_edits.reassign_choices(session, actor, task_id, now=now),
    )
    if choices is None:
        return

    def person(choice: records.OwnerChoice) -> tuple[str, str]:
        return f"{choice.name} ({choice.institution})", f"tk:w:{task_id}:{choice.member_id}"

    markup = paged_keyboard(paginate(choices, page, PEOPLE_PAGE), person, f"tk:o:{task_id}")
    await answer(update, context.tr.gettext("Who takes the task over?"), markup)


async def reassign(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "tk", 2)
    if ids is None:
        return
    done = await _run(
        update,
        context,
        lambda session, actor, now: task_edits.reassign(session, actor, ids[0], ids[1], now=now),
    )
    if done is not None:
        await answer(update, context.tr.gettext("The task has a new owner, who is told now."))


async def my_tasks(update: Update, context: Context, page: int = 0) -> None:
    runtime = context.runtime
    tr = context.tr
    async with runtime.database.transaction() as session:
        items = await tasks.my_tasks(
            session, context.require_actor(), runtime.cipher, now=runtime.clock.now()
        )
    if not items:
        await answer(update, tr.gettext("You have no open tasks."))
        return
    shown = paginate(items, page, TASKS_PAGE)
    if shown.count == 1:
        head = tr.gettext("Your open tasks ({count}):").format(count=len(items))
    else:
        head = tr.gettext("Your open tasks ({count}), page {page} of {pages}:").format(
            count=len(items), page=shown.number + 1, pages=shown.count
        )
    lines = [head] + ["• " + _task_line(item, tr) for item in shown.items]

    def button(item: tasks.TaskItem) -> tuple[str, str]:
        return f"📌 {item.case_code} · {_short(item.title)}", f"tk:v:{item.id}"

    await answer(update, "\n".join(lines), paged_keyboard(shown, button, "tk"))


async def my_tasks_page(update: Update, context: Context) -> None:
    """Another page of /tasks: "tk:p:<page>"."""
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "tk") or []
    page = parse_number(parts[1], digits=4) if len(parts) == 2 else None
    if page is None:
        await no_longer_active(update, context)
        return
    await my_tasks(update, context, page)


async def agenda(update: Update, context: Context) -> None:
    runtime = context.runtime
    tr = context.tr
    try:
        async with runtime.database.transaction() as session:
            items = await overview.agenda(session, context.require_actor(), now=runtime.clock.now())
    except PermissionDenied:
        await answer(update, tr.gettext("Only coordinators have an agenda."))
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


OUTCOMES = {"f": cases.Outcome.FULFILLED, "h": cases.Outcome.HANDED_OVER, "o": cases.Outcome.OTHER}


def outcome_label(outcome: cases.Outcome, tr: Translator) -> str:
    return {
        cases.Outcome.FULFILLED: tr.gettext("Plan fulfilled"),
        cases.Outcome.HANDED_OVER: tr.gettext("Handed to another authority"),
        cases.Outcome.OTHER: tr.gettext("Other"),
    }[outcome]


async def ask_close(update: Update, context: Context) -> None:
    ids = await _pressed(update, context, "cc")
    if ids is None or not await _run(
        update,
        context,
        lambda session, actor, now: cases.closable_case(session, actor, ids[0], now=now),
    ):
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
    code = await _run(
        update,
        context,
        lambda session, actor, now: cases.close_case(session, actor, case_id, outcome, now=now),
    )
    if code is not None:
        await answer(
            update,
            tr.gettext("The case {code} is closed: {outcome}.").format(
                code=code, outcome=outcome_label(outcome, tr)
            ),
        )


# What the outbox sends.


async def render_ended(context: Context, row: Notification) -> Outgoing | None:
    conference_id = int(row.payload["conference"])
    async with context.runtime.database.transaction() as session:
        code = await records.still_to_record(session, conference_id, row.payload.get("sequence"))
    if code is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    return Outgoing(
        tr.gettext(
            "The case conference {code} has ended. Record the outcome: attendance, a summary, "
            "the plan and the review."
        ).format(code=code),
        keyboard([[("📝 " + tr.gettext("Record the outcome"), f"rc:o:{conference_id}")]]),
    )


async def _current(context: Context, row: Notification) -> tasks.TaskItem | None:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        task = await tasks.notification_task(
            session, int(row.payload["task"]), row.payload.get("version")
        )
        if task is None:
            return None
        return await tasks.task_item(session, runtime.cipher, task.id, now=runtime.clock.now())


async def render_assigned(context: Context, row: Notification) -> Outgoing | None:
    item = await _current(context, row)
    if item is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    head = "📌 " + tr.gettext("A task for you from the case conference:")
    if item.party is not TaskParty.MEMBER:
        head += "\n" + tr.gettext("You follow it up: {owner}.").format(owner=esc(_owner(item, tr)))
    return Outgoing(task_text(item, tr, head), _owner_buttons(item.id, tr))


async def render_nudge(context: Context, row: Notification) -> Outgoing | None:
    item = await _current(context, row)
    if item is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    return Outgoing(
        task_text(item, tr, "⏰ " + tr.gettext("Reminder of your task:")),
        _owner_buttons(item.id, tr),
    )


async def render_alert(context: Context, row: Notification) -> Outgoing | None:
    item = await _current(context, row)
    if item is None or not item.overdue:
        return None
    tr = await recipient_tr(context, row.member_id)
    text = tr.gettext("A task is a week overdue:") + "\n" + _task_line(item, tr, owner=True)
    markup = keyboard(
        [
            [
                ("🔔 " + tr.gettext("Remind again"), f"tk:a:{item.id}"),
                ("👤 " + tr.gettext("Reassign"), f"tk:o:{item.id}"),
            ]
        ]
    )
    return Outgoing(text, markup)


async def render_more_time(context: Context, row: Notification) -> Outgoing | None:
    item = await _current(context, row)
    if item is None or item.asked_due_on is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    asked = item.asked_due_on
    text = tr.gettext("{name} asks for more time: {code} «{title}» from {due} to {asked}.").format(
        name=esc(item.owner),
        code=item.case_code,
        title=esc(item.title),
        due=tr.day(item.due_on),
        asked=tr.day(asked),
    )
    markup = keyboard(
        [
            [
                ("✅ " + tr.gettext("Give it"), f"tk:g:{item.id}:{_compact(asked)}"),
                ("❌ " + tr.gettext("Refuse"), f"tk:r:{item.id}:{_compact(asked)}"),
            ]
        ]
    )
    return Outgoing(text, markup)


async def render_decided(context: Context, row: Notification) -> Outgoing | None:
    item = await _item(context, int(row.payload["task"]))
    if item is None or item.status is not TaskStatus.OPEN:
        return None
    tr = await recipient_tr(context, row.member_id)
    if row.payload.get("approved"):
        text = "✅ " + tr.gettext("More time given: «{title}» is due {date} now.")
    else:
        text = "❌ " + tr.gettext("No more time: «{title}» stays due {date}.")
    return Outgoing(
        text.format(title=esc(item.title), date=tr.day(item.due_on)), _owner_buttons(item.id, tr)
    )


async def render_done(context: Context, row: Notification) -> Outgoing | None:
    item = await _item(context, int(row.payload["task"]))
    if item is None or item.status is not TaskStatus.DONE:
        return None
    async with context.runtime.database.transaction() as session:
        notes = await task_edits.note_count(session, item.id)
    tr = await recipient_tr(context, row.member_id)
    return Outgoing(
        "✅ "
        + tr.gettext("{name} has done {code} «{title}».").format(
            name=esc(item.owner), code=item.case_code, title=esc(item.title)
        ),
        keyboard([[_notes_button(item.id, tr)]]) if notes else None,
    )


async def render_changed(context: Context, row: Notification) -> Outgoing | None:
    item = await _current(context, row)
    if item is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    head = "🗓 " + tr.gettext("The coordinator moved the due date of your task:")
    return Outgoing(task_text(item, tr, head), _owner_buttons(item.id, tr))


async def render_cancelled(context: Context, row: Notification) -> Outgoing | None:
    item = await _item(context, int(row.payload["task"]))
    if item is None or item.status is not TaskStatus.CANCELLED:
        return None
    tr = await recipient_tr(context, row.member_id)
    return Outgoing(
        "✖️ "
        + tr.gettext("{code} «{title}» is cancelled: you need not do it any more.").format(
            code=item.case_code, title=esc(item.title)
        )
    )


async def render_released(context: Context, row: Notification) -> Outgoing | None:
    item = await _item(context, int(row.payload["task"]))
    if item is None or item.status is not TaskStatus.OPEN or item.owner_id == row.member_id:
        return None
    tr = await recipient_tr(context, row.member_id)
    return Outgoing(
        "👤 "
        + tr.gettext("{code} «{title}» is {name}'s task now: you need not do it any more.").format(
            code=item.case_code, title=esc(item.title), name=esc(item.owner)
        )
    )


async def render_digest(context: Context, row: Notification) -> Outgoing | None:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        digest = await overview.digest(
            session, runtime.cipher, row.member_id, now=runtime.clock.now()
        )
    if digest is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    return Outgoing(*digest_message(digest, tr))


def digest_message(
    digest: overview.Digest, tr: Translator
) -> tuple[str, InlineKeyboardMarkup | None]:
    _ = tr.gettext
    head = "🗓 " + _("Your week")
    if not digest:
        return "\n".join([head, _("Nothing is waiting for you this week.")]), None

    def section(
        title: str, items: list[overview.DigestItem], render: Callable[[overview.DigestItem], str]
    ) -> tuple[str, list[str]]:
        return title.format(count=len(items)), ["• " + render(item) for item in items]

    def task(item: overview.DigestItem) -> str:
        return f"{item.code} «{esc(item.title)}»"

    def when(item: overview.DigestItem) -> str:
        return f"{item.code}, {tr.datetime(item.when)}" if item.when else item.code

    def poll(item: overview.DigestItem) -> str:
        if item.when is None:
            return item.code
        return _("{code}, answers until {when}").format(code=item.code, when=tr.datetime(item.when))

    sections = [
        section(_("Referrals waiting ({count}):"), digest.referrals, lambda i: i.code),
        section(_("Polls running ({count}):"), digest.polls, poll),
        section(_("Conferences this week ({count}):"), digest.this_week, when),
        section(_("Conferences next week ({count}):"), digest.next_week, when),
        section(_("Records to write ({count}):"), digest.to_record, lambda i: i.code),
        section(_("Tasks overdue ({count}):"), digest.overdue, task),
        section(_("Tasks due this week ({count}):"), digest.due_this_week, task),
    ]
    text = _digest_text(head, [(title, lines) for title, lines in sections if lines], tr)
    rows: list[list[tuple[str, str]]] = []
    for item in digest.referrals[:5]:
        rows.append([("📥 " + item.code, f"rf:o:{item.id}")])
    for item in digest.polls[:5]:
        rows.append([("📊 " + item.code, f"cf:b:{item.id}")])
    for item in digest.to_record[:5]:
        rows.append([("📝 " + item.code, f"rc:o:{item.id}")])
    for item in digest.overdue[:5]:
        rows.append([("✏️ " + f"{item.code} · {_short(item.title)}", f"tk:e:{item.id}")])
    return text, keyboard(rows) if rows else None


def _digest_text(head: str, sections: list[tuple[str, list[str]]], tr: Translator) -> str:
    """The digest is one message (the outbox sends one per row): when all of it does not fit,
    each section shows as many of its first lines as let the whole fit, and how many more."""
    longest = max(len(lines) for _title, lines in sections)
    for shown in range(longest, -1, -1):
        text = [head]
        for title, lines in sections:
            text += ["", title, *lines[:shown]]
            if len(lines) > shown:
                more = len(lines) - shown
                text.append(
                    tr.ngettext("… and {count} more", "… and {count} more", more).format(count=more)
                )
        joined = "\n".join(text)
        if len(joined) <= MAX_TEXT:
            return joined
    return clip(joined, MAX_TEXT)  # only the headings left, and still too long: never so far


async def render_handover(context: Context, row: Notification) -> Outgoing | None:
    """To a coordinator: what a leaver held and is still open, by case code and task title
    only, with a button per task into the reassigning (tk:o)."""
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        view = await leavers.handover_view(
            session,
            runtime.cipher,
            int(row.payload["leaver"]),
            [int(i) for i in row.payload.get("tasks", [])],
            [int(i) for i in row.payload.get("invitations", [])],
            now=runtime.clock.now(),
        )
    if view is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    _ = tr.gettext
    lines = [
        "👤 "
        + _("{name} has been deactivated and gets nothing more from the bot. They held:").format(
            name=esc(view.leaver)
        )
    ]
    for task in view.tasks:
        lines.append(
            "• "
            + _("{code} «{title}», due {date}: reassign it.").format(
                code=task.case_code, title=esc(task.title), date=tr.day(task.due_on)
            )
        )
    for held in view.invitations:
        if held.colleagues:
            text = _(
                "{code}, the case conference {when}: {institution} is still invited; its other "
                "members have been asked to answer."
            )
        else:
            text = _(
                "{code}, the case conference {when}: {institution} is still invited, but nobody "
                "else of it uses the bot: invite someone of it."
            )
        lines.append(
            "• "
            + text.format(
                code=held.case_code, when=tr.slot(held.starts_at), institution=esc(held.institution)
            )
        )
    buttons = [
        [("👤 " + f"{task.case_code} · {_short(task.title)}", f"tk:o:{task.task_id}")]
        for task in view.tasks
    ]
    return Outgoing(clip("\n".join(lines), MAX_TEXT), keyboard(buttons) if buttons else None)


def outbox_kinds() -> dict[str, Kind]:
    return {
        leavers.HANDOVER: Kind(render_handover),
        invitations.ENDED: Kind(render_ended),
        tasks.ASSIGNED: Kind(render_assigned),
        tasks.NUDGE: Kind(render_nudge),
        tasks.ALERT: Kind(render_alert),
        tasks.MORE_TIME: Kind(render_more_time),
        tasks.DECIDED: Kind(render_decided),
        tasks.DONE: Kind(render_done),
        tasks.CHANGED: Kind(render_changed),
        tasks.CANCELLED: Kind(render_cancelled),
        tasks.RELEASED: Kind(render_released),
        overview.DIGEST: Kind(render_digest),
    }


# Wiring.


def handlers() -> HandlerList:
    record = Dialog("record")
    task = Dialog("task")
    text = filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND
    return [
        ConversationHandler[Context](
            entry_points=[
                CallbackQueryHandler(record.entry(ask_summary), pattern=r"^rc:s:\d+$"),
                CallbackQueryHandler(record.entry(ask_title), pattern=r"^rc:n:\d+$"),
                CallbackQueryHandler(record.entry(ask_review), pattern=r"^rc:v:\d+$"),
                CallbackQueryHandler(record.entry(ask_due_date), pattern=r"^tk:y:\d+$"),
            ],
            states={
                SUMMARY: [MessageHandler(text, record.step(typed_summary))],
                TITLE: [MessageHandler(text, record.step(typed_title))],
                OWNER: [CallbackQueryHandler(record.step(chose_owner), pattern=r"^rc:w:")],
                DUE: [
                    CallbackQueryHandler(record.step(chose_due), pattern=r"^rc:d:"),
                    MessageHandler(text, record.step(typed_due)),
                ],
                REVIEW: [MessageHandler(text, record.step(typed_review))],
            },
            fallbacks=[
                CallbackQueryHandler(record.step(cancel_draft), pattern=r"^rc:x$"),
                CommandHandler("cancel", record.step(cancel_draft)),
                ends_on_other_commands(),
            ],
            allow_reentry=True,
            name="record",
            persistent=True,
        ),
        ConversationHandler[Context](
            entry_points=[
                CallbackQueryHandler(task.entry(ask_done_note), pattern=r"^tk:d:\d+$"),
                CallbackQueryHandler(task.entry(ask_note), pattern=r"^tk:n:\d+$"),
            ],
            states={
                DONE_NOTE: [
                    MessageHandler(text, task.step(typed_done_note)),
                    CallbackQueryHandler(task.step(done_without_note), pattern=r"^tk:k:\d+$"),
                ],
                NOTE: [MessageHandler(text, task.step(typed_note))],
            },
            fallbacks=[ends_on_other_commands()],
            allow_reentry=True,
            name="task",
            persistent=True,
        ),
    ]


def command_handlers() -> HandlerList:
    return [
        CallbackQueryHandler(consuming(open_record), pattern=r"^rc:o:\d+$"),
        CallbackQueryHandler(consuming(show_attendance), pattern=r"^rc:a:\d+$"),
        CallbackQueryHandler(consuming(toggle_attendance), pattern=r"^rc:t:\d+$"),
        CallbackQueryHandler(consuming(finish), pattern=r"^rc:e:\d+$"),
        CallbackQueryHandler(consuming(send_document), pattern=r"^rc:[rc]:\d+$"),
        CallbackQueryHandler(consuming(done_without_note), pattern=r"^tk:k:\d+$"),
        CallbackQueryHandler(consuming(show_task), pattern=r"^tk:v:\d+$"),
        CallbackQueryHandler(consuming(ask_more_time), pattern=r"^tk:m:\d+$"),
        CallbackQueryHandler(consuming(more_time), pattern=r"^tk:x:\d+:\d+$"),
        CallbackQueryHandler(consuming(decide), pattern=r"^tk:[gr]:\d+:\d{8}$"),
        CallbackQueryHandler(consuming(remind_again), pattern=r"^tk:a:\d+$"),
        CallbackQueryHandler(consuming(edit_task), pattern=r"^tk:e:\d+$"),
        CallbackQueryHandler(consuming(read_notes), pattern=r"^tk:l:\d+$"),
        CallbackQueryHandler(consuming(move_quick), pattern=r"^tk:u:\d+:\d+$"),
        CallbackQueryHandler(consuming(ask_cancel_task), pattern=r"^tk:c:\d+$"),
        CallbackQueryHandler(consuming(confirm_cancel_task), pattern=r"^tk:z:\d+$"),
        CallbackQueryHandler(consuming(reassign_choices), pattern=r"^tk:o:"),
        CallbackQueryHandler(consuming(reassign), pattern=r"^tk:w:\d+:\d+$"),
        CallbackQueryHandler(consuming(ask_close), pattern=r"^cc:c:\d+$"),
        CallbackQueryHandler(consuming(close_case), pattern=r"^cc:[fhok]:\d+$"),
        CommandHandler("tasks", consuming(my_tasks)),
        CallbackQueryHandler(consuming(my_tasks_page), pattern=r"^tk:p:"),
        CommandHandler("agenda", consuming(agenda)),
    ]
