"""What every handler needs besides the update: settings, database, clock, cipher."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from bot.clock import Clock
from bot.config import Settings
from bot.crypto import Cipher
from bot.db import Database
from bot.i18n import Translator
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
