"""What the outbox sends about records and tasks: the record to write, a task to its owner
(assigned, reminded, moved, more time decided, cancelled, given to someone else), the
coordinator's news of a task (overdue, more time asked, done), the Monday digest, and a
leaver's handover. Each is read when it is sent; one that no longer applies is not sent."""

from __future__ import annotations

from collections.abc import Callable

from telegram import InlineKeyboardMarkup

from bot.core.i18n import N_, Translator
from bot.core.models import TaskParty, TaskStatus
from bot.core.outbox import Notification
from bot.services import invitations, leavers, overview, records, task_edits, tasks
from bot.transport.telegram.delivery import Kind, Outgoing
from handlers.common import MAX_TEXT, Context, clip, esc, keyboard, recipient_tr
from handlers.task_texts import (
    compact,
    notes_button,
    owner_buttons,
    owner_text,
    quoted,
    short,
    task_line,
    task_text,
)


async def render_ended(context: Context, row: Notification) -> Outgoing | None:
    conference_id = int(row.payload["conference"])
    async with context.runtime.database.reading() as session:
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
    async with runtime.database.reading() as session:
        task = await tasks.notification_task(
            session, int(row.payload["task"]), row.payload.get("version")
        )
        if task is None:
            return None
        return await tasks.task_item(session, runtime.cipher, task.id, now=runtime.clock.now())


async def _item(context: Context, task_id: int) -> tasks.TaskItem | None:
    runtime = context.runtime
    async with runtime.database.reading() as session:
        return await tasks.task_item(session, runtime.cipher, task_id, now=runtime.clock.now())


async def render_assigned(context: Context, row: Notification) -> Outgoing | None:
    item = await _current(context, row)
    if item is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    head = "📌 " + tr.gettext("A task for you from the case conference:")
    if item.party is not TaskParty.MEMBER:
        head += "\n" + tr.gettext("You follow it up: {owner}.").format(
            owner=esc(owner_text(item, tr))
        )
    return Outgoing(task_text(item, tr, head), owner_buttons(item.id, tr))


async def render_nudge(context: Context, row: Notification) -> Outgoing | None:
    return await _task_again(context, row, "⏰ ", N_("Reminder of your task:"))


async def render_alert(context: Context, row: Notification) -> Outgoing | None:
    item = await _current(context, row)
    if item is None or not item.overdue:
        return None
    tr = await recipient_tr(context, row.member_id)
    text = tr.gettext("A task is a week overdue:") + "\n" + task_line(item, tr, owner=True)
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
                ("✅ " + tr.gettext("Give it"), f"tk:g:{item.id}:{compact(asked)}"),
                ("❌ " + tr.gettext("Refuse"), f"tk:r:{item.id}:{compact(asked)}"),
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
        text.format(title=esc(item.title), date=tr.day(item.due_on)), owner_buttons(item.id, tr)
    )


async def render_done(context: Context, row: Notification) -> Outgoing | None:
    item = await _item(context, int(row.payload["task"]))
    if item is None or item.status is not TaskStatus.DONE:
        return None
    async with context.runtime.database.reading() as session:
        notes = await task_edits.note_count(session, item.id)
    tr = await recipient_tr(context, row.member_id)
    return Outgoing(
        "✅ "
        + tr.gettext("{name} has done {code} «{title}».").format(
            name=esc(item.owner), code=item.case_code, title=esc(item.title)
        ),
        keyboard([[notes_button(item.id, tr)]]) if notes else None,
    )


async def render_changed(context: Context, row: Notification) -> Outgoing | None:
    return await _task_again(
        context, row, "🗓 ", N_("The coordinator moved the due date of your task:")
    )


async def _task_again(context: Context, row: Notification, mark: str, head: str) -> Outgoing | None:
    """The task as it is now, for its owner under `mark` and the message `head` (marked with
    N_), with the owner's buttons."""
    item = await _current(context, row)
    if item is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    return Outgoing(task_text(item, tr, mark + tr.gettext(head)), owner_buttons(item.id, tr))


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
    async with runtime.database.reading() as session:
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
        return f"{item.code} {quoted(item.title, tr)}"

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
        rows.append([("✏️ " + f"{item.code} · {short(item.title)}", f"tk:e:{item.id}")])
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
    async with runtime.database.reading() as session:
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
        [("👤 " + f"{task.case_code} · {short(task.title)}", f"tk:o:{task.task_id}")]
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
