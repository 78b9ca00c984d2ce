"""What the outbox sends when a case is closed: to each participant of its conferences, that
it is closed and how; to the referrer, that her referral's case is closed and how, with Show.
Codes and the outcome only, never a detail of the child. Planned by bot.services.cases."""

from __future__ import annotations

from bot.core.outbox import Notification
from bot.services import cases
from bot.services.cases import ClosedCase
from bot.transport.telegram.delivery import Kind, Outgoing
from handlers.common import Context, keyboard, recipient_tr
from handlers.referral_texts import show_button


async def _closed(context: Context, row: Notification) -> ClosedCase | None:
    async with context.runtime.database.reading() as session:
        return await cases.closed_case(session, int(row.payload["case"]))


async def render_closed(context: Context, row: Notification) -> Outgoing | None:
    closed = await _closed(context, row)
    if closed is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    return Outgoing(
        tr.gettext(
            "The case {code} is closed. Outcome: {outcome}. No more case conferences or tasks "
            "are planned for it."
        ).format(code=closed.code, outcome=cases.outcome_label(closed.outcome, tr))
    )


async def render_closed_referrer(context: Context, row: Notification) -> Outgoing | None:
    closed = await _closed(context, row)
    if closed is None or closed.referral_id is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    text = tr.gettext(
        "The case {case} of your referral {code} is closed. Outcome: {outcome}. Thank you for "
        "reporting it."
    ).format(
        case=closed.code,
        code=closed.referral_code or "–",
        outcome=cases.outcome_label(closed.outcome, tr),
    )
    return Outgoing(text, keyboard([[show_button(closed.referral_id, tr)]]))


def outbox_kinds() -> dict[str, Kind]:
    return {
        cases.CLOSED: Kind(render_closed),
        cases.CLOSED_REFERRER: Kind(render_closed_referrer),
    }
