"""What every handler needs besides the update: settings, database, clock, cipher."""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Settings
from bot.crypto import Cipher
from bot.db import Database
from bot.i18n import Translator


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    database: Database
    clock: Clock
    cipher: Cipher

    def translator(self, locale: str) -> Translator:
        return Translator(locale, self.settings.zone)
