"""A task once the record is finished (`tk:` buttons). Its owner marks it done, writes a note,
asks for more time, and lists their open tasks (/tasks); the coordinator edits it (another due
date, another owner, cancelling it), reads the owner's notes, decides on more time and reminds
again.

Every message names a case by its code and a task by its title only (bot.services.tasks).
"""

from __future__ import annotations

from datetime import timedelta

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler

from bot.core.i18n import Translator
from bot.services import task_edits, tasks
from handlers.common import (
    TYPED_TEXT,
    Context,
    Dialog,
    HandlerList,
    acknowledge,
    answer,
    chunks,
    consuming,
    esc,
    keyboard,
    no_longer_active,
    paged_keyboard,
    paginate,
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
    show_record,
    task_draft,
)
from handlers.task_texts import QUICK_DUE, from_compact, owner_buttons, short, task_line, task_text
from handlers.usecase import on_pressed, use_case

DONE_NOTE, NOTE = ("done_note", "note")
TASKS_PAGE = 10  # /tasks: a page's lines stay far below Telegram's 4,096 characters


# The owner's task.


async def _own(update: Update, context: Context) -> tasks.TaskItem | None:
    """The pressed button's task, if it is the presser's own and still open."""
    ids = await pressed(update, context, "tk")
    if ids is None:
        return None
    async with use_case(update, context, *TASK_REFUSALS) as case:
        item = await tasks.own_task(
            case.session, case.actor, context.runtime.cipher, ids[0], now=case.now
        )
    return item if case.done else None


async def show_task(update: Update, context: Context) -> None:
    item = await _own(update, context)
    if item is None:
        return
    await answer(update, task_text(item, context.tr, "📌"), owner_buttons(item.id, context.tr))


async def ask_done_note(update: Update, context: Context) -> str | int:
    item = await _own(update, context)
    if item is None:
        return ConversationHandler.END
    begin_draft(context, task=item.id)
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
    ids = await pressed(update, context, "tk")
    if ids is None:
        return ConversationHandler.END
    return await _complete(update, context, ids[0], None)


async def typed_done_note(update: Update, context: Context) -> str | int:
    assert update.message is not None
    text = (update.message.text or "").strip()
    if not await fits(update, text, tasks.NOTE_MAX, _note_too_long(context.tr)):
        return DONE_NOTE
    await delete_typed_text(update)
    return await _complete(update, context, int(task_draft(context).get("task", 0)), text)


async def _complete(update: Update, context: Context, task_id: int, note: str | None) -> int:
    async with use_case(update, context, *TASK_REFUSALS) as case:
        await tasks.complete(
            case.session, case.actor, context.runtime.cipher, task_id, note, now=case.now
        )
    task_draft(context).clear()
    if case.done:
        await answer(update, "✅ " + context.tr.gettext("Marked as done. Thank you!"))
    return ConversationHandler.END


def _note_too_long(tr: Translator) -> str:
    return tr.gettext("That is {length} characters; a note takes 1 to {limit}.")


async def ask_note(update: Update, context: Context) -> str | int:
    item = await _own(update, context)
    if item is None:
        return ConversationHandler.END
    begin_draft(context, task=item.id)
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
    if not await fits(update, text, tasks.NOTE_MAX, _note_too_long(context.tr)):
        return NOTE
    task_id = int(task_draft(context).get("task", 0))
    async with use_case(update, context, *TASK_REFUSALS) as case:
        await tasks.add_note(
            case.session, case.actor, context.runtime.cipher, task_id, text, now=case.now
        )
    task_draft(context).clear()
    await delete_typed_text(update)
    if case.done:
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


async def _quick_due(update: Update, context: Context) -> tuple[int, int] | None:
    """The pressed button's task and days ("tk:x:<task>:<days>", "tk:u:…"), if the days are
    one of the quick choices; anything else is answered as a stale button."""
    ids = await pressed(update, context, "tk", 2)
    if ids is None:
        return None
    task_id, days = ids
    if days not in QUICK_DUE:
        await no_longer_active(update, context)
        return None
    return task_id, days


async def more_time(update: Update, context: Context) -> None:
    quick = await _quick_due(update, context)
    if quick is None:
        return
    task_id, days = quick
    async with use_case(update, context, *TASK_REFUSALS) as case:
        asked = await tasks.ask_more_time(
            case.session, case.actor, task_id, timedelta(days=days), now=case.now
        )
    if case.done:
        await answer(
            update,
            context.tr.gettext("Asked the coordinator to move it to {date}.").format(
                date=context.tr.day(asked)
            ),
        )


async def my_tasks(update: Update, context: Context, page: int = 0) -> None:
    runtime = context.runtime
    tr = context.tr
    async with runtime.database.reading() as session:
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
    lines = [head] + ["• " + task_line(item, tr) for item in shown.items]

    def button(item: tasks.TaskItem) -> tuple[str, str]:
        return f"📌 {item.case_code} · {short(item.title)}", f"tk:v:{item.id}"

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


# The coordinator's: the edit screen, the notes, more time, reminding again, another owner.


async def edit_task(update: Update, context: Context) -> None:
    ids = await pressed(update, context, "tk")
    if ids is not None:
        await edit_screen(update, context, ids[0])


async def read_notes(update: Update, context: Context) -> None:
    """The owner's notes, on explicit request: protected, and the reading is audited."""
    ids = await pressed(update, context, "tk")
    query = update.callback_query
    if ids is None or query is None or update.effective_chat is None:
        return
    async with use_case(update, context, *TASK_REFUSALS) as case:
        item, notes = await task_edits.read_notes(
            case.session, case.actor, context.runtime.cipher, ids[0], now=case.now
        )
    if not case.done:
        return
    await acknowledge(query)
    tr = context.tr
    head = tr.gettext("Notes on {code} «{title}»:")
    paragraphs = ["🗒 " + head.format(code=item.case_code, title=esc(item.title))]
    for note in notes:
        mark = "✅ " if note.kind == "done" else ""
        paragraphs.append(f"{mark}{esc(note.author)}, {tr.datetime(note.at)}:\n{esc(note.text)}")
    # Many notes take several messages; the reading was audited once, above.
    for text in chunks(paragraphs, separator="\n\n"):
        await context.bot.send_message(update.effective_chat.id, text, protect_content=True)


async def move_quick(update: Update, context: Context) -> None:
    quick = await _quick_due(update, context)
    if quick is None:
        return
    task_id, days = quick
    async with use_case(update, context, *TASK_REFUSALS) as case:
        await task_edits.move_due_in(case.session, case.actor, task_id, days, now=case.now)
    if case.done:
        await edit_screen(update, context, task_id)


async def ask_cancel_task(update: Update, context: Context) -> None:
    done = await on_pressed(update, context, "tk:c", task_edits.cancellable_task, *TASK_REFUSALS)
    if done is None:
        return
    tr = context.tr
    await answer(
        update,
        tr.gettext("Cancel this task? Its owner is told it is no longer needed."),
        keyboard(
            [
                [("🗑 " + tr.gettext("Yes, cancel the task"), f"tk:z:{done.id}")],
                [("↩️ " + tr.gettext("Keep it"), f"tk:e:{done.id}")],
            ]
        ),
    )


async def confirm_cancel_task(update: Update, context: Context) -> None:
    done = await on_pressed(update, context, "tk:z", task_edits.cancel_task, *TASK_REFUSALS)
    if done is not None:
        await show_record(update, context, done.result)


async def decide(update: Update, context: Context) -> None:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "tk") or []
    if len(parts) != 3 or parts[0] not in ("g", "r"):
        await no_longer_active(update, context)
        return
    task_id, asked = parse_id(parts[1]), from_compact(parts[2])
    if task_id is None or asked is None:
        await no_longer_active(update, context)
        return
    approve = parts[0] == "g"
    async with use_case(update, context, *TASK_REFUSALS) as case:
        owner = await task_edits.decide_more_time(
            case.session, case.actor, task_id, asked, approve, now=case.now
        )
    if not case.done:
        return
    tr = context.tr
    text = (
        tr.gettext("More time given to {name}: due {date} now.")
        if approve
        else tr.gettext("More time refused to {name}; the due date stays.")
    )
    await answer(update, text.format(name=esc(owner.name), date=tr.day(asked)))


async def remind_again(update: Update, context: Context) -> None:
    done = await on_pressed(update, context, "tk:a", task_edits.remind_again, *TASK_REFUSALS)
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
    async with use_case(update, context, *TASK_REFUSALS) as case:
        choices = await task_edits.reassign_choices(case.session, case.actor, task_id, now=case.now)
    if not case.done:
        return
    markup = people_keyboard(choices, page, f"tk:w:{task_id}", f"tk:o:{task_id}")
    await answer(update, context.tr.gettext("Who takes the task over?"), markup)


async def reassign(update: Update, context: Context) -> None:
    ids = await pressed(update, context, "tk", 2)
    if ids is None:
        return
    async with use_case(update, context, *TASK_REFUSALS) as case:
        await task_edits.reassign(case.session, case.actor, ids[0], ids[1], now=case.now)
    if case.done:
        await answer(update, context.tr.gettext("The task has a new owner, who is told now."))


# Wiring.


def handlers() -> HandlerList:
    task = Dialog("task")
    return [
        task.conversation(
            entry_points=[
                CallbackQueryHandler(task.entry(ask_done_note), pattern=r"^tk:d:\d+$"),
                CallbackQueryHandler(task.entry(ask_note), pattern=r"^tk:n:\d+$"),
            ],
            states={
                DONE_NOTE: [
                    MessageHandler(TYPED_TEXT, task.step(typed_done_note)),
                    CallbackQueryHandler(task.step(done_without_note), pattern=r"^tk:k:\d+$"),
                ],
                NOTE: [MessageHandler(TYPED_TEXT, task.step(typed_note))],
            },
        ),
    ]


def command_handlers() -> HandlerList:
    return [
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
        CommandHandler("tasks", consuming(my_tasks)),
        CallbackQueryHandler(consuming(my_tasks_page), pattern=r"^tk:p:"),
    ]
