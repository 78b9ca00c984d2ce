"""Every user-visible string is translated in cs, en and uk, and no catalog entry is stale."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from bot.core.clock import FakeClock
from bot.core.config import LOCALES
from bot.core.i18n import LOCALES_DIR, Translator

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None, "NP_": ((1, "c"), 2)}
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def _source_messages() -> set[str]:
    found: set[str] = set()
    for package in ("bot", "handlers", "scheduling"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


SOURCE = _source_messages()


def _translated(message: Message) -> bool:
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return all(strings)


def test_the_source_has_messages() -> None:
    assert "Which language shall I use?" in SOURCE


@pytest.mark.parametrize("locale", LOCALES)
def test_catalog_is_complete_and_current(locale: str) -> None:
    path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    entries = {
        message.id if isinstance(message.id, str) else message.id[0]: message
        for message in catalog
        if message.id
    }
    missing = sorted(SOURCE - entries.keys())
    stale = sorted(entries.keys() - SOURCE)
    fuzzy = sorted(key for key, message in entries.items() if message.fuzzy)
    untranslated = sorted(key for key, message in entries.items() if not _translated(message))
    assert not missing, f"{locale}: not in the catalog: {missing}"
    assert not stale, f"{locale}: no longer in the source: {stale}"
    assert not list(catalog.obsolete), f"{locale}: obsolete entries left"
    assert not catalog.fuzzy, f"{locale}: the catalog header is marked fuzzy"
    assert not fuzzy, f"{locale}: fuzzy: {fuzzy}"
    assert not untranslated, f"{locale}: untranslated: {untranslated}"
    for key, message in entries.items():
        for string, allowed, required in _forms(message):
            found = set(PLACEHOLDER.findall(string))
            assert required <= found <= allowed, f"{locale}: placeholders differ in {key!r}"


def _forms(message: Message) -> list[tuple[str, set[str], set[str]]]:
    """Each translated form with the placeholders it may and must use. A plural form may leave
    out the count {n} (Czech "jednu zprávu"), but nothing else."""
    if isinstance(message.id, str):
        expected = set(PLACEHOLDER.findall(message.id))
        return [(str(message.string), expected, expected)]
    allowed = set(PLACEHOLDER.findall(message.id[0])) | set(PLACEHOLDER.findall(message.id[1]))
    assert isinstance(message.string, tuple | list), message.id
    return [(string, allowed, allowed - {"n"}) for string in message.string]


# Sentences that end with a short day (Translator.day).
ENDS_WITH_A_DAY = (
    "Asked the coordinator to move it to {date}.",
    "More time given to {name}: due {date} now.",
    "More time given: «{title}» is due {date} now.",
    "No more time: «{title}» stays due {date}.",
    "Review conference by {date}.",
    "Review conference: by {date}.",
)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("year", [2027, 2026], ids=["this year", "another year"])
def test_a_short_day_does_not_end_in_two_full_stops(locale: str, year: int) -> None:
    """Short days end with the abbreviation's full stop in cs and uk ("so 27. 2.", "сб, 27
    лют.", "сб, 27 лют. 2027 р."): a sentence that ends with one must not add its own."""
    clock = FakeClock(datetime(year, 6, 1, tzinfo=UTC))
    day = Translator(locale, ZoneInfo("Europe/Prague"), clock).day(date(2027, 2, 27))
    catalog = read_po((LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb"))
    rendered = [str(catalog[msgid].string).replace("{date}", day) for msgid in ENDS_WITH_A_DAY]
    assert [text for text in rendered if ".." in text] == []
    assert all(text.rstrip().endswith((".", "!")) or text.endswith(day) for text in rendered)
