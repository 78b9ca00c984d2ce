"""What Round Table says in the chat about its mail: an address the mail server refused for good
(bot.services.mailing), told to the coordinator of the conference the mail was about, or to the
member whose address it is. Read when it is sent; once the address is given anew it is moot."""

from __future__ import annotations

from bot.core.outbox import Notification
from bot.services import mailing
from bot.transport.telegram.delivery import Kind, Outgoing
from handlers.common import Context, esc, recipient_tr


def outbox_kinds() -> dict[str, Kind]:
    return {mailing.REFUSED: Kind(render_refused)}


async def render_refused(context: Context, row: Notification) -> Outgoing | None:
    async with context.runtime.database.reading() as session:
        view = await mailing.refusal_view(session, row.payload, row.member_id)
    if view is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    address = f"<code>{esc(view.address)}</code>"
    reply = esc(view.reply)
    if view.own:
        text = tr.gettext(
            "✉️ The mail server refused your e-mail address {address} ({reply}), so mail "
            "from Round Table does not reach you. Please check the address and give it again; "
            "until then, nothing more is sent to it."
        ).format(address=address, reply=reply)
    elif view.case_code is not None:
        text = tr.gettext(
            "✉️ A mail about the case conference {code} could not be delivered: the mail "
            "server refused the address {address} ({reply}). Nothing more is sent to it until "
            "the address is given again."
        ).format(code=esc(view.case_code), address=address, reply=reply)
    else:
        text = tr.gettext(
            "✉️ A mail could not be delivered: the mail server refused the address {address} "
            "({reply}). Nothing more is sent to it until the address is given again."
        ).format(address=address, reply=reply)
    return Outgoing(text)
