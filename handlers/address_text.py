"""What the dialogs that take a typed e-mail address (/email, /contacts, a named guest while
planning) say about one they cannot use (the rule is bot.services.addresses)."""

from __future__ import annotations

from bot.core.i18n import Translator
from bot.services import addresses


def unusable_address(tr: Translator) -> str:
    return tr.gettext(
        "That is not an e-mail address I can use (at most {limit} characters, like "
        "name@example.cz). Please type it again."
    ).format(limit=addresses.MAX_ADDRESS)
