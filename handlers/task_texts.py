"""How a task reads, alike on the record, the owner's and the coordinator's screens and in the
notices: a case by its code and a task by its title only (bot.services.tasks), and the owner's
buttons under it."""

from __future__ import annotations

from datetime import date, datetime

from telegram import InlineKeyboardMarkup

from bot.core.i18n import Translator
from bot.core.models import TaskStatus
from bot.core.record import owner_label
from bot.services import tasks
from handlers.common import esc, keyboard

QUICK_DUE = (7, 14, 30)


def short(title: str, limit: int = 30) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"


def due_text(item: tasks.TaskItem, tr: Translator) -> str:
    if item.status is TaskStatus.DONE:
        return "✅ " + tr.gettext("done")
    if item.overdue:
        return "⚠️ " + tr.gettext("overdue since {date}").format(date=tr.day(item.due_on))
    return tr.gettext("due {date}").format(date=tr.day(item.due_on))


def quoted(title: str, tr: Translator) -> str:
    """A task's title in the quotation marks of the reader's language („…“ in Czech)."""
    return tr.gettext("«{title}»").format(title=esc(title))


def task_line(item: tasks.TaskItem, tr: Translator, *, owner: bool = False) -> str:
    line = f"{esc(item.case_code)} · {quoted(item.title, tr)} · {due_text(item, tr)}"
    if owner:
        line += " · " + esc(owner_text(item, tr))
    return line


def owner_text(item: tasks.TaskItem, tr: Translator) -> str:
    return owner_label(item.party, item.owner, tr)


def capitalised(text: str) -> str:
    """ "due Dec 11" → "Due Dec 11" (str.capitalize would lower the month)."""
    return text[:1].upper() + text[1:]


def task_text(item: tasks.TaskItem, tr: Translator, head: str) -> str:
    return "\n".join(
        [
            head,
            tr.gettext("Case {code}: «{title}»").format(code=item.case_code, title=esc(item.title)),
            capitalised(due_text(item, tr)),
        ]
    )


def owner_buttons(task_id: int, tr: Translator) -> InlineKeyboardMarkup:
    return keyboard(
        [
            [("✅ " + tr.gettext("Done"), f"tk:d:{task_id}")],
            [
                ("⏳ " + tr.gettext("Need more time"), f"tk:m:{task_id}"),
                ("📝 " + tr.gettext("Note"), f"tk:n:{task_id}"),
            ],
        ]
    )


def notes_button(task_id: int, tr: Translator) -> tuple[str, str]:
    return ("🗒 " + tr.gettext("Read the notes"), f"tk:l:{task_id}")


def compact(day: date) -> str:
    """A day in a button's data (the asked due date of "Give it" and "Refuse")."""
    return day.strftime("%Y%m%d")


def from_compact(part: str) -> date | None:
    try:
        return datetime.strptime(part, "%Y%m%d").date()
    except ValueError:
        return None
