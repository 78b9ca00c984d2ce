"""What the record dialog, the task dialogs and closing a case share: their refusals, the ids
of a pressed button, the draft of a typed step, the people a task can go to, the two screens
they come back to (the record, a task's edit screen), and the record document sent to the chat."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from telegram import InlineKeyboardMarkup, InputFile, Update
from telegram.error import TelegramError

from bot.core.i18n import N_, Translator
from bot.core.models import TaskStatus
from bot.core.record import RecordDocument, record_docx, record_filename
from bot.services import records, task_edits, tasks
from bot.services.board import PollClosed
from bot.services.errors import PermissionDenied
from handlers.common import (
    Context,
    answer,
    esc,
    keyboard,
    no_longer_active,
    paged_keyboard,
    paginate,
    parse_callback,
    pressed_ids,
)
from handlers.method_texts import method_button
from handlers.task_texts import (
    capitalised,
    due_text,
    notes_button,
    owner_text,
    short,
    task_line,
)
from handlers.usecase import refusal, use_case

logger = logging.getLogger(__name__)

# Not the presser's, a conference not held yet, or a task or record that has moved on.
TASK_REFUSALS = (
    refusal(PermissionDenied, say=N_("This is not yours to change.")),
    refusal(records.NotHeldYet, say=N_("The case conference has not taken place yet.")),
    refusal(tasks.TaskError, PollClosed),
)
DRAFT = "task_draft"  # the task being added, in the dialog's (encrypted) user data
EDITABLE = 12  # task buttons on the record screen (a plan rarely has more)
PEOPLE_PAGE = 8  # people to choose from on one page, with ◀ ▶ below them


async def pressed(
    update: Update, context: Context, namespace: str, count: int = 1
) -> list[int] | None:
    """The ids after the action in a button's data, whichever action it names (`rc:o:12` →
    [12]); data that does not read so is answered as a stale button."""
    query = update.callback_query
    parts = parse_callback(query.data if query else None, namespace)
    if not parts:
        await no_longer_active(update, context)
        return None
    return await pressed_ids(update, context, f"{namespace}:{parts[0]}", count)


# Typed steps: the summary, a task, a due date, the review, a note.


def task_draft(context: Context) -> dict[str, Any]:
    data = context.user_data
    assert data is not None
    found: dict[str, Any] = data.setdefault(DRAFT, {})
    return found


def begin_draft(context: Context, **values: int) -> None:
    """A typed step starts afresh: what an earlier, abandoned one left is forgotten."""
    found = task_draft(context)
    found.clear()
    found.update(values)


async def fits(update: Update, text: str, limit: int, too_long: str) -> bool:
    """1 to `limit` characters, or the person is told how long it was (`too_long` says what
    takes how many) and asked again."""
    if text and len(text) <= limit:
        return True
    assert update.message is not None
    await update.message.reply_text(too_long.format(length=len(text), limit=limit))
    return False


async def delete_typed_text(update: Update) -> None:
    """A summary or a note may hold personal data: it does not stay in the chat."""
    if update.message is not None:
        try:
            await update.message.delete()
        except TelegramError as error:
            logger.info("could not delete a typed summary: %s", type(error).__name__)


async def _show(
    update: Update, context: Context, text: str, markup: InlineKeyboardMarkup, *, below: bool
) -> None:
    """A screen in place of the pressed message, or `below` it as a new message."""
    if below and update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, text, reply_markup=markup)
    else:
        await answer(update, text, markup)


def people_keyboard(
    choices: list[records.OwnerChoice],
    page: int,
    chosen: str,
    namespace: str,
    extra: Sequence[Sequence[tuple[str, str]]] = (),
) -> InlineKeyboardMarkup:
    """A page of the people a task can go to (its owner, or who takes it over), each as "name
    (institution)" with the data "<chosen>:<member id>"; the pages' buttons are "<namespace>:p:N"
    and the `extra` rows stay on every page."""

    def person(choice: records.OwnerChoice) -> tuple[str, str]:
        return f"{choice.name} ({choice.institution})", f"{chosen}:{choice.member_id}"

    return paged_keyboard(paginate(choices, page, PEOPLE_PAGE), person, namespace, extra)


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
    lines += ["   • " + task_line(item, tr, owner=True) for item in view.tasks]
    if view.review_at is not None:
        lines.append(_("Review conference: {when}.").format(when=tr.datetime(view.review_at)))
    elif view.review_id is not None:
        lines.append(_("Review conference: a poll for its date is running."))
    elif view.review_by is not None:
        lines.append(_("Review conference: by {date}.").format(date=tr.day(view.review_by)))
    if view.recorded_at is not None:
        lines.append("✅ " + _("Finished; the owners have their tasks."))
    lines += _circulation_lines(view.circulated, tr)
    return "\n".join(lines)


def _circulation_lines(circulated: records.Circulated | None, tr: Translator) -> list[str]:
    """Where the draft's comments stand, or when the final record went out."""
    if circulated is None:
        return []
    if circulated.final_at is not None:
        return [
            "📄 "
            + tr.gettext("Final record sent {when}.").format(when=tr.datetime(circulated.final_at))
        ]
    return [
        "📝 "
        + tr.gettext(
            "Draft sent for comments until {when}. Commented: {commented}; no comments: "
            "{none}; no answer: {missing}."
        ).format(
            when=tr.datetime(circulated.comments_until),
            commented=circulated.commented,
            none=circulated.no_comments,
            missing=circulated.unanswered,
        )
    ]


def record_markup(view: records.RecordView, tr: Translator) -> InlineKeyboardMarkup:
    _ = tr.gettext
    conf = view.conference_id
    rows = [
        [("👥 " + _("Attendance"), f"rc:a:{conf}"), ("✏️ " + _("Summary"), f"rc:s:{conf}")],
        [("➕ " + _("Add a task"), f"rc:n:{conf}")],
    ]
    commenting = view.circulated is not None and view.circulated.final_at is None
    if view.recorded_at is None or commenting:
        rows.append([method_button(conf, tr)])  # until the record is final
    editable = [item for item in view.tasks if item.status is TaskStatus.OPEN][:EDITABLE]
    rows += [[("✏️ " + short(item.title), f"tk:e:{item.id}")] for item in editable]
    if view.recorded_at is None:
        rows.append([("✅ " + _("Finish: send the tasks to their owners"), f"rc:e:{conf}")])
    else:
        rows.append([("📄 " + _("The record document"), f"rc:r:{conf}")])
        rows.append([("📄 " + _("The record with the child's name"), f"rc:c:{conf}")])
        if commenting:
            rows.append([("📤 " + _("Send the final record"), f"rk:f:{conf}")])
        if view.review_id is None:
            rows.append(
                [
                    ("📅 " + _("Review: start the poll"), f"cf:n:{view.case_id}"),
                    ("🗓 " + _("Review: fix the date"), f"rc:v:{conf}"),
                ]
            )
    return keyboard(rows)


async def show_record(
    update: Update, context: Context, conference_id: int, *, below: bool = False
) -> None:
    """The record screen in place of the pressed message, or `below` it as a new message."""
    async with use_case(update, context, *TASK_REFUSALS) as case:
        view = await records.record_view(
            case.session, case.actor, context.runtime.cipher, conference_id, now=case.now
        )
    if not case.done:
        return
    tr = context.tr
    await _show(update, context, record_text(view, tr), record_markup(view, tr), below=below)


async def send_record(context: Context, chat_id: int, record: RecordDocument, caption: str) -> None:
    """The record document to the chat, in the presser's language, protected: only they have
    it; `caption` says which record it is."""
    file = InputFile(record_docx(record, context.tr), filename=record_filename(record))
    await context.bot.send_document(chat_id, file, caption=caption, protect_content=True)


# The coordinator's screen of a task: the due date, the owner, or cancelling it.


def edit_text(item: tasks.TaskItem, notes: int, tr: Translator) -> str:
    lines = [
        "✏️ "
        + tr.gettext("Case {code}: «{title}»").format(code=item.case_code, title=esc(item.title)),
        tr.gettext("Owner: {owner}").format(owner=esc(owner_text(item, tr))),
        capitalised(due_text(item, tr)),
    ]
    if notes:
        note = tr.ngettext("The owner wrote {count} note.", "The owner wrote {count} notes.", notes)
        lines.append(note.format(count=notes))
    return "\n".join(lines)


def edit_markup(item: tasks.TaskItem, notes: int, tr: Translator) -> InlineKeyboardMarkup:
    _ = tr.gettext
    return keyboard(
        ([[notes_button(item.id, tr)]] if notes else [])
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


async def edit_screen(
    update: Update, context: Context, task_id: int, *, below: bool = False
) -> None:
    """The task's edit screen in place of the pressed message, or `below` as a new message."""
    async with use_case(update, context, *TASK_REFUSALS) as case:
        item, notes = await task_edits.coordinator_task(
            case.session, case.actor, context.runtime.cipher, task_id, now=case.now
        )
    if not case.done:
        return
    tr = context.tr
    await _show(
        update, context, edit_text(item, notes, tr), edit_markup(item, notes, tr), below=below
    )
