"""Texts of the referral dialog that must fit Telegram's limits in every language."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.core.config import LOCALES
from bot.core.i18n import Translator
from bot.core.models import Consent, Urgency
from bot.services import drafting
from bot.services.drafting import Draft
from handlers.referral_steps import _summary

TELEGRAM_LIMIT = 4096


@pytest.mark.parametrize("locale", LOCALES)
def test_the_fullest_summary_fits_one_message(locale: str) -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    draft = Draft(
        id=1,
        step="summary",
        back_to_summary=False,
        danger=True,
        urgency=Urgency.URGENT,
        guardians_informed=True,
        guardians_consent=Consent.NOT_ASKED,
        name="Ž" * drafting.MAX_NAME,
        birth_year=2015,
        class_name="Ž" * drafting.MAX_CLASS,
        school="Ž" * drafting.MAX_SCHOOL,
        categories=(*drafting.CATEGORIES, drafting.OTHER),
        other="<" * drafting.MAX_OTHER,  # escaped: each becomes &lt; but counts as one
        description="Ž" * drafting.MAX_DESCRIPTION,
        tried="Ž" * drafting.MAX_TRIED,
        created_at=now,
        updated_at=now,
    )
    text = _summary(draft, Translator(locale, ZoneInfo("Europe/Prague")))
    shown = text.replace("&lt;", "<")  # Telegram counts the text after entity parsing
    assert len(shown.encode("utf-16-le")) // 2 <= TELEGRAM_LIMIT
