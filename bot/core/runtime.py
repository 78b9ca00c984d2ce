"""What every handler needs besides the update: settings, database, clock, cipher."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from bot.core.clock import Clock
from bot.core.config import Settings
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.i18n import Translator
from scheduling.calendar import WorkingCalendar


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    database: Database
    clock: Clock
    cipher: Cipher

    def translator(self, locale: str) -> Translator:
        return Translator(locale, self.settings.zone, self.clock)

    @cached_property
    def calendar(self) -> WorkingCalendar:
        """Working days and hours in the deployment's time zone."""
        return WorkingCalendar(zone=self.settings.zone)
