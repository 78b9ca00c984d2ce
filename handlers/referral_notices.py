"""What the outbox sends about referrals: the new referral's alert to the coordinators, a
decision to the referrer and the other coordinators, a coordinator's question to the referrer
and her answer to the coordinators; and the sweep's draft reminder, expired draft and triage
nudge. Each is read when it is sent; one that no longer applies is not sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from telegram import InlineKeyboardMarkup

from bot.core.i18n import Translator
from bot.core.models import ReferralStatus
from bot.core.outbox import Notification
from bot.services import referral_notices, referral_sweep, referrals
from bot.services.referral_notices import Notice
from bot.transport.telegram.delivery import Kind, Outgoing
from handlers.common import Context, esc, keyboard, recipient_tr
from handlers.referral_texts import show_button, urgency_text
from handlers.typed import delete_from_chat, deletion_text

NUDGE_LIST_LIMIT = 20


# The triage's notifications.


def _about_referral(
    show: Callable[[Notice, Translator], Outgoing],
    *,
    moot: Callable[[Notice], bool] | None = None,
) -> Kind:
    """A notification about a referral, as `show` draws it from what is true at send time;
    not sent once the referral is gone or anonymised, or when it is `moot` by then."""

    async def render(context: Context, row: Notification) -> Outgoing | None:
        runtime = context.runtime
        note = row.payload.get("note")
        async with runtime.database.reading() as session:
            notice = await referral_notices.notice(
                session,
                runtime.cipher,
                int(row.payload["referral"]),
                None if note is None else int(note),
            )
        if notice is None or (moot is not None and moot(notice)):
            return None
        return show(notice, await recipient_tr(context, row.member_id))

    return Kind(render)


def _alert(notice: Notice, tr: Translator) -> Outgoing:
    """Code, urgency, institution; nothing about the child."""
    return Outgoing(new_referral_text(notice, tr), _open_button(notice, tr))


def _accepted(notice: Notice, tr: Translator) -> Outgoing:
    """Which case it became: from here on the coordinators and the participants name it so."""
    return Outgoing(
        tr.gettext(
            "Your referral {code} was accepted: case {case}. The coordinators will prepare a "
            "case conference."
        ).format(code=notice.code, case=notice.case_code or "–"),
        _show(notice, tr),
    )


def _accepted_by(notice: Notice, tr: Translator) -> Outgoing:
    return Outgoing(
        tr.gettext("{code} was accepted by {name}: case {case}.").format(
            code=notice.code, name=esc(notice.decided_by or ""), case=notice.case_code
        )
    )


def _declined(notice: Notice, tr: Translator) -> Outgoing:
    """The reason, as the coordinator typed it: protected, like everything about the child."""
    head = tr.gettext("Your referral {code} was declined. The reason:").format(code=notice.code)
    return Outgoing(f"{head}\n\n{esc(notice.note or '')}", _show(notice, tr), protect=True)


def _declined_by(notice: Notice, tr: Translator) -> Outgoing:
    return Outgoing(
        tr.gettext("{code} was declined by {name}.").format(
            code=notice.code, name=esc(notice.decided_by or "")
        )
    )


def _question(notice: Notice, tr: Translator) -> Outgoing:
    head = tr.gettext("A coordinator asks about your referral {code}:").format(code=notice.code)
    return Outgoing(
        f"{head}\n\n{esc(notice.note or '')}",
        keyboard(
            [
                [
                    (tr.pgettext("button", "Answer"), f"rf:r:{notice.referral_id}"),
                    show_button(notice.referral_id, tr),
                ]
            ]
        ),
        protect=True,
    )


def _answered(notice: Notice, tr: Translator) -> Outgoing:
    return Outgoing(
        tr.gettext("The referrer answered the question about {code}.").format(code=notice.code),
        _open_button(notice, tr),
    )


def new_referral_text(notice: Notice, tr: Translator) -> str:
    _ = tr.gettext
    lines = [
        _("New referral {code} from {institution}.").format(
            code=notice.code, institution=esc(notice.institution_name)
        ),
        _("Urgency: {urgency}").format(urgency=urgency_text(notice.urgency, tr)),
    ]
    if notice.danger:
        lines.append(_("⚠️ The referrer reports that the child may be in danger right now."))
    return "\n".join(lines)


def _show(notice: Notice, tr: Translator) -> InlineKeyboardMarkup:
    return keyboard([[show_button(notice.referral_id, tr)]])


def _open_button(notice: Notice, tr: Translator) -> InlineKeyboardMarkup:
    label = tr.gettext("Open {code}").format(code=notice.code)
    return keyboard([[(label, f"rf:o:{notice.referral_id}")]])


# The sweep's.


async def render_draft_reminder(context: Context, row: Notification) -> Outgoing | None:
    async with context.runtime.database.reading() as session:
        if not await referrals.has_draft(session, row.member_id):
            return None  # sent or cancelled meanwhile
    tr = await recipient_tr(context, row.member_id)
    started = datetime.fromisoformat(str(row.payload["started_at"]))
    return Outgoing(
        _reminder_text(started, tr), keyboard([[(tr.gettext("Continue"), "ref:resume")]])
    )


async def render_draft_expired(context: Context, row: Notification) -> Outgoing | None:
    """The draft is gone; its messages with the child's details are deleted here, at send
    time, where Telegram still allows it (48 hours: after 14 days mostly not), and the notice
    says how many she should delete herself. Sending again deletes nothing twice: Telegram
    skips messages already deleted."""
    tr = await recipient_tr(context, row.member_id)
    refs = [[int(part) for part in ref] for ref in row.payload.get("messages", [])]
    done = await delete_from_chat(context, row.chat_id, refs)
    text = _expired_text(datetime.fromisoformat(str(row.payload["started_at"])), tr)
    return Outgoing("\n\n".join(filter(None, [text, deletion_text(done, tr)])))


async def render_triage_nudge(context: Context, row: Notification) -> Outgoing | None:
    ids = [int(i) for i in row.payload["referrals"]]
    async with context.runtime.database.reading() as session:
        items = await referral_sweep.still_waiting(session, ids)
    if not items:
        return None  # all decided meanwhile
    tr = await recipient_tr(context, row.member_id)
    markup = keyboard([[(item.code, f"rf:o:{item.id}")] for item in items[:NUDGE_LIST_LIMIT]])
    return Outgoing(_nudge_text(items, tr), markup)


def _reminder_text(started: datetime, tr: Translator) -> str:
    return tr.gettext(
        "You have an unfinished referral, started {date}. Continue it when you can: unfinished "
        "referrals are deleted after 14 days without changes."
    ).format(date=tr.date(started))


def _expired_text(started: datetime, tr: Translator) -> str:
    return tr.gettext(
        "Your unfinished referral, started {date}, was deleted after 14 days without changes. "
        "/refer starts a new one."
    ).format(date=tr.date(started))


def _nudge_text(items: list[referral_sweep.Waiting], tr: Translator) -> str:
    lines = [
        tr.ngettext(
            "This referral has waited more than a working day for a decision:",
            "These {n} referrals have waited more than a working day for a decision:",
            len(items),
        ).format(n=len(items))
    ]
    lines += [
        f"{item.code} · {urgency_text(item.urgency, tr)} · {tr.datetime(item.submitted_at)}"
        for item in items[:NUDGE_LIST_LIMIT]
    ]
    return "\n".join(lines)


def outbox_kinds() -> dict[str, Kind]:
    return {
        # The alert is moot once the referral is decided; the question once the referral no
        # longer waits for the referrer's answer.
        referrals.ALERT: _about_referral(_alert, moot=lambda notice: not notice.waiting),
        referrals.ACCEPTED: _about_referral(_accepted),
        referrals.ACCEPTED_BY: _about_referral(_accepted_by),
        referrals.DECLINED: _about_referral(_declined),
        referrals.DECLINED_BY: _about_referral(_declined_by),
        referrals.QUESTION: _about_referral(
            _question, moot=lambda notice: notice.status is not ReferralStatus.NEEDS_INFO
        ),
        referrals.ANSWERED: _about_referral(_answered),
        referral_sweep.DRAFT_REMINDER: Kind(render_draft_reminder),
        referral_sweep.DRAFT_EXPIRED: Kind(render_draft_expired),
        referral_sweep.TRIAGE_NUDGE: Kind(render_triage_nudge),
    }
