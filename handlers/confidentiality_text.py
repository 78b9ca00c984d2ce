"""The confidentiality prompt as people see it (the rule is bot.services.confidentiality),
shared by the guard, joining, the confirmation's dialog and the outbox's prompt: its text in the
member's wording (a guardian's plain one), its one button, and asking."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Update

from bot.core.i18n import Translator
from bot.services import confidentiality
from bot.services.confidentiality import Prompt
from bot.transport.telegram import delivery
from handlers.common import Context, acknowledge, keyboard

NAMESPACE = "cn"  # the button's data: "cn:<version>"


def prompt_text(prompt: Prompt, tr: Translator) -> str:
    return tr.gettext(prompt.text)


def prompt_markup(prompt: Prompt, tr: Translator) -> InlineKeyboardMarkup:
    label = tr.gettext("I agree") if prompt.guardian else tr.gettext("I confirm confidentiality")
    return keyboard([[("✅ " + label, f"{NAMESPACE}:{prompt.version}")]])


async def ask_after_joining(context: Context) -> None:
    """Right after joining (the language chosen): the prompt, through the outbox, once per
    version; nothing when the member has confirmed."""
    runtime = context.runtime
    actor = context.require_actor()
    async with runtime.database.transaction() as session:
        asked = await confidentiality.holds(
            session, actor.member_id, confidentiality.CASE, now=runtime.clock.now()
        )
    if asked:
        delivery.wake(context.application)


async def ask_first(update: Update, context: Context) -> bool:
    """A command or a button that would show something of a case, from a member who has not
    confirmed: the prompt instead, and True; False when they have confirmed after all."""
    actor = context.require_actor()
    async with context.runtime.database.reading() as session:
        prompt = await confidentiality.prompt_for(session, actor.member_id)
    if prompt is None:
        return False
    tr = context.tr
    if update.callback_query is not None:
        await acknowledge(
            update.callback_query, tr.gettext("Please confirm confidentiality first.")
        )
    await context.bot.send_message(
        actor.chat_id, prompt_text(prompt, tr), reply_markup=prompt_markup(prompt, tr)
    )
    return True
