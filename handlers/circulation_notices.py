"""What the outbox sends about a record circulated for comments: the draft (a protected
document with Comment / No comments) and its reminder to the participants, a comment's notice
and the end of the time for comments to the coordinator, and the final record. Each is read
when it is sent; one that no longer applies (answered, overtaken by the final, a leaver) is
not sent."""

from __future__ import annotations

from bot.core.i18n import Translator
from bot.core.outbox import Notification
from bot.core.record import record_docx, record_filename
from bot.services import circulation
from bot.services.circulation import CommentNotice
from bot.transport.telegram.delivery import Kind, Outgoing
from handlers.common import Context, esc, keyboard, recipient_tr

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def answer_buttons(invitation_id: int, tr: Translator) -> list[list[tuple[str, str]]]:
    """Under the draft and its reminder: comment, or say there is nothing to comment."""
    return [
        [
            ("💬 " + tr.gettext("Comment"), f"rk:c:{invitation_id}"),
            ("👍 " + tr.gettext("No comments"), f"rk:n:{invitation_id}"),
        ]
    ]


def comment_author(notice: CommentNotice, tr: Translator) -> str:
    if notice.guardian:
        return tr.gettext("Guardian {number}").format(number=notice.guardian)
    return notice.institution


async def _document(context: Context, row: Notification, *, final: bool) -> Outgoing | None:
    runtime = context.runtime
    invitation_id = int(row.payload["invitation"])
    async with runtime.database.transaction() as session:
        record = await circulation.circulated_document(
            session,
            runtime.cipher,
            int(row.payload["conference"]),
            invitation_id,
            row.member_id,
            final=final,
            now=runtime.clock.now(),
        )
    if record is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    name = record_filename(record)
    if final:
        text = "📄 " + tr.gettext(
            "The final record of the case conference {code}. Only you have it: keep it "
            "confidential."
        ).format(code=record.code)
        return Outgoing(text, document=(name, record_docx(record, tr), DOCX), protect=True)
    assert record.comments_until is not None
    text = "📝 " + tr.gettext(
        "The draft record of the case conference {code}, for your comments until {when}. Only "
        "you have it: keep it confidential. Comment, or tell us you have none."
    ).format(code=record.code, when=tr.datetime(record.comments_until))
    return Outgoing(
        text,
        keyboard(answer_buttons(invitation_id, tr)),
        document=(name.replace(".docx", "-draft.docx"), record_docx(record, tr), DOCX),
        protect=True,
    )


async def render_draft(context: Context, row: Notification) -> Outgoing | None:
    return await _document(context, row, final=False)


async def render_final(context: Context, row: Notification) -> Outgoing | None:
    return await _document(context, row, final=True)


async def render_reminder(context: Context, row: Notification) -> Outgoing | None:
    invitation_id = int(row.payload["invitation"])
    async with context.runtime.database.reading() as session:
        found = await circulation.reminder(session, int(row.payload["conference"]), invitation_id)
    if found is None:
        return None
    code, until = found
    tr = await recipient_tr(context, row.member_id)
    text = "⏰ " + tr.gettext(
        "Reminder: comments on the draft record of {code} are open until {when}. The draft is "
        "above in this chat."
    ).format(code=code, when=tr.datetime(until))
    return Outgoing(text, keyboard(answer_buttons(invitation_id, tr)))


async def render_comment(context: Context, row: Notification) -> Outgoing | None:
    async with context.runtime.database.reading() as session:
        notice = await circulation.comment_notice(session, int(row.payload["comment"]))
    if notice is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    text = "💬 " + tr.gettext("A comment on the draft record of {code}: {who}, {name}.").format(
        code=notice.code, who=esc(comment_author(notice, tr)), name=esc(notice.author)
    )
    if notice.late:
        text += " " + tr.gettext("(after the deadline)")
    markup = keyboard(
        [
            [("🗒 " + tr.gettext("Read the comment"), f"rk:r:{notice.comment_id}")],
            [("📝 " + tr.gettext("The record"), f"rc:o:{notice.conference_id}")],
        ]
    )
    return Outgoing(text, markup)


async def render_closed(context: Context, row: Notification) -> Outgoing | None:
    async with context.runtime.database.reading() as session:
        found = await circulation.round_of(session, int(row.payload["conference"]))
    if found is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    text = "🗓 " + tr.gettext(
        "The time for comments on the draft record of {code} is over. Commented: {commented}; "
        "no comments: {none}; no answer: {missing}. Edit the record if needed, then send the "
        "final one."
    ).format(
        code=found.code,
        commented=found.commented,
        none=found.no_comments,
        missing=found.unanswered,
    )
    markup = keyboard(
        [
            [("📤 " + tr.gettext("Send the final record"), f"rk:f:{found.conference_id}")],
            [("📝 " + tr.gettext("The record"), f"rc:o:{found.conference_id}")],
        ]
    )
    return Outgoing(text, markup)


def outbox_kinds() -> dict[str, Kind]:
    return {
        circulation.DRAFT: Kind(render_draft),
        circulation.FINAL: Kind(render_final),
        circulation.REMIND: Kind(render_reminder),
        circulation.COMMENT: Kind(render_comment),
        circulation.CLOSED: Kind(render_closed),
    }
