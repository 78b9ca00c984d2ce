"""What the outbox sends about confidentiality: the prompt, in the member's wording, to a
member something of a case is held for (or who has just joined). Planned by
bot.services.confidentiality; moot once they have confirmed."""

from __future__ import annotations

from bot.core.outbox import Notification
from bot.services import confidentiality
from bot.transport.telegram.delivery import Kind, Outgoing
from handlers.common import Context, recipient_tr
from handlers.confidentiality_text import prompt_markup, prompt_text


async def render_prompt(context: Context, row: Notification) -> Outgoing | None:
    async with context.runtime.database.reading() as session:
        prompt = await confidentiality.prompt_for(session, row.member_id)
    if prompt is None:
        return None
    tr = await recipient_tr(context, row.member_id)
    return Outgoing(prompt_text(prompt, tr), prompt_markup(prompt, tr))


def outbox_kinds() -> dict[str, Kind]:
    return {confidentiality.PROMPT: Kind(render_prompt)}
