"""Translations (Babel catalogs in locales/) and dates in the member's language and zone."""

from __future__ import annotations

import datetime as dt
import gettext
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_skeleton, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from bot.core.clock import Clock
from bot.core.config import LOCALES

LOCALES_DIR = Path(__file__).resolve().parents[2] / "locales"
DOMAIN = "messages"
# Languages are offered by their own names, so these are never translated.
LANGUAGE_NAMES = {"cs": "Čeština", "en": "English", "uk": "Українська"}
_NEIGHBOURS = {"sk": "cs"}


def N_(message: str) -> str:
    """Marks a string for extraction without translating it (translated where it is shown)."""
    return message


def NP_(context: str, message: str) -> str:
    """N_ with a message context: the same words with another meaning ("Other" as an
    institution kind and as a case outcome) are another catalog entry; translated where shown
    with Translator.pgettext(context, message)."""
    return message


@cache
def _translations(locale: str) -> gettext.NullTranslations:
    """The compiled catalog of a locale, built from its .po file in memory: no build step."""
    path = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def pick_locale(telegram_language: str | None, default: str) -> str:
    """The best supported locale for a Telegram client language such as "en-GB" or "sk"."""
    if telegram_language:
        base = telegram_language.split("-")[0].lower()
        base = _NEIGHBOURS.get(base, base)
        if base in LOCALES:
            return base
    return default


class Translator:
    """Messages, dates and times in one locale and time zone. The clock says which year is the
    current one, whose short days leave the year out; without one every day has its year."""

    def __init__(self, locale: str, zone: ZoneInfo, clock: Clock | None = None) -> None:
        self.locale = locale if locale in LOCALES else "cs"
        self.zone = zone
        self._clock = clock
        self._babel_locale = Locale.parse(self.locale)
        self._catalog = _translations(self.locale)

    def gettext(self, message: str) -> str:
        return self._catalog.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self._catalog.ngettext(singular, plural, count)

    def pgettext(self, context: str, message: str) -> str:
        """A message whose words mean different things in different places (see NP_)."""
        return self._catalog.pgettext(context, message)

    def datetime(self, moment: dt.datetime) -> str:
        """Date and time as people write them in this locale, in the district's zone."""
        pattern = str(self._babel_locale.datetime_formats["medium"])
        return pattern.replace("{1}", self.date(moment)).replace("{0}", self.time(moment))

    def date(self, moment: dt.date) -> str:
        """A date with its year: "Mar 15, 2027" / "15. 3. 2027"; a moment's in the district."""
        if isinstance(moment, dt.datetime):
            moment = moment.astimezone(self.zone)
        return format_date(moment, "medium", locale=self._babel_locale)

    def time(self, moment: dt.datetime) -> str:
        return format_time(moment, "short", tzinfo=self.zone, locale=self._babel_locale)

    def day(self, day: dt.date) -> str:
        """A short day with its weekday: "Tue, Dec 1" / "út 1. 12.", with the year when it is not
        this year's ("Mon, Mar 15, 2027"): a typo of a year must not hide behind the day."""
        skeleton = "MMMEd" if day.year == self._this_year() else "yMMMEd"
        return format_skeleton(skeleton, day, locale=self._babel_locale)

    def _this_year(self) -> int | None:
        return None if self._clock is None else self._clock.now().astimezone(self.zone).year

    def slot(self, moment: dt.datetime) -> str:
        """A meeting time, short enough for a button: weekday, day and time."""
        return f"{self.day(moment.astimezone(self.zone).date())} {self.time(moment)}"

    def number(self, value: int) -> str:
        """A whole number with this locale's grouping: 3,000 / 3 000."""
        return format_decimal(value, locale=self._babel_locale)
