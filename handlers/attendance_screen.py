"""The record's attendance screen: who came for each invitation (a colleague instead, or
nobody), the child, page by page (a conference of 150 institutions)."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup

from bot.core.i18n import Translator
from bot.core.models import InvitationKind
from bot.services import records
from handlers.common import paged_keyboard, paginate

ATTENDANCE_PAGE = 20  # invitations a page of the attendance screen holds (150 institutions...)


def attendance_text(view: records.RecordView, tr: Translator) -> str:
    return tr.gettext(
        "👥 Attendance at {code}: one tap per participant changes came → a colleague came "
        "instead → did not come."
    ).format(code=view.case_code)


def _attendance_label(item: records.Attendance, tr: Translator) -> str:
    name = item.label
    if item.kind is InvitationKind.GUEST:
        name = "✉ " + item.label
    elif item.kind is not InvitationKind.INSTITUTION:
        name = tr.gettext("Guardian {number}").format(number=item.number)
    if not item.attended:
        return f"❌ {name}"
    who = item.person or "—"
    if item.instead_of:
        who = tr.gettext("{name} instead of {other}").format(name=who, other=item.instead_of)
    return f"✅ {name}: {who}"


def attendance_markup(
    view: records.RecordView, tr: Translator, *, child: bool, page: int, shown: int = 0
) -> InlineKeyboardMarkup:
    """ATTENDANCE_PAGE invitations a page (the page of the invitation `shown`, if given); the
    child's row and Back on every page."""
    conference_id = view.conference_id
    ids = [a.invitation_id for a in view.attendance]
    if shown in ids:
        page = ids.index(shown) // ATTENDANCE_PAGE
    listed = paginate(view.attendance, page, ATTENDANCE_PAGE)
    came = tr.gettext("The child came") if child else tr.gettext("The child did not come")
    sets = "n" if child else "y"
    extra = [
        # The state it sets ("y": came), so that a double tap does not undo the first.
        [(("✅ " if child else "❌ ") + came, f"rc:h:{conference_id}:p:{listed.number}:{sets}")],
        [("⬅️ " + tr.gettext("Back"), f"rc:o:{conference_id}")],
    ]
    return paged_keyboard(
        listed,
        lambda a: (_attendance_label(a, tr), f"rc:t:{a.invitation_id}"),
        f"rc:a:{conference_id}",
        extra,
    )
