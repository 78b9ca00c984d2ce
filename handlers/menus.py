"""The roles as people see them: each role's name, and the command menu each role sees behind the
"/" button, set per chat in its language."""

from __future__ import annotations

import logging
from collections.abc import Callable

from telegram import Bot, BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError

from bot.core.config import LOCALES
from bot.core.i18n import N_, Translator
from bot.core.models import Role

logger = logging.getLogger(__name__)

ROLE_NAMES = {
    Role.ADMIN: N_("administrator"),
    Role.COORDINATOR: N_("coordinator"),
    Role.REFERRER: N_("referrer"),
    Role.PARTICIPANT: N_("participant"),
}

COMMON = (
    ("email", N_("Your work e-mail address")),
    ("help", N_("What I can do for you")),
    ("language", N_("Change the language")),
)
BY_ROLE: dict[Role, tuple[tuple[str, str], ...]] = {
    Role.ADMIN: (
        ("invite", N_("Create a one-time invite link")),
        ("members", N_("List and deactivate members")),
        ("contacts", N_("The institutions' e-mail addresses")),
    ),
    Role.COORDINATOR: (
        ("referrals", N_("Referrals waiting for a decision")),
        ("cases", N_("Open cases")),
        ("agenda", N_("Your case conferences in the coming weeks")),
        ("tasks", N_("Your open tasks")),
        ("refer", N_("Report a concern about a child")),
        ("myreferrals", N_("The status of your referrals")),
        ("invite", N_("Create a one-time invite link")),
    ),
    Role.REFERRER: (
        ("refer", N_("Report a concern about a child")),
        ("myreferrals", N_("The status of your referrals")),
        ("tasks", N_("Your open tasks")),
    ),
    Role.PARTICIPANT: (("tasks", N_("Your open tasks")),),
}
STRANGER = (("start", N_("Join with your invite link")),)


def commands_for(role: Role, tr: Translator) -> list[BotCommand]:
    return [BotCommand(name, tr.gettext(text)) for name, text in (*BY_ROLE[role], *COMMON)]


async def set_member_menu(bot: Bot, chat_id: int, role: Role, tr: Translator) -> None:
    """Menus are a convenience: failing to set one must not fail the dialog that asked."""
    try:
        await bot.set_my_commands(commands_for(role, tr), scope=BotCommandScopeChat(chat_id))
    except TelegramError as error:
        logger.warning("could not set a member's command menu: %s", type(error).__name__)


async def clear_member_menu(bot: Bot, chat_id: int) -> None:
    """A leaver's chat falls back to the strangers' menu; an unreachable chat is no error."""
    try:
        await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id))
    except TelegramError:
        return


async def set_stranger_menus(
    bot: Bot, default_locale: str, translator: Callable[[str], Translator]
) -> None:
    """The menu people see before they join, in each supported client language."""
    for locale in LOCALES:
        commands = [BotCommand(name, translator(locale).gettext(text)) for name, text in STRANGER]
        language_code = None if locale == default_locale else locale
        try:
            await bot.set_my_commands(
                commands, scope=BotCommandScopeDefault(), language_code=language_code
            )
        except TelegramError as error:
            logger.warning("could not set the strangers' menu: %s", type(error).__name__)
