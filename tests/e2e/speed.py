"""The Bot API stand-in for tests that answer at machine speed. A test module takes it with
`from tests.e2e.speed import flood_limits`."""

from __future__ import annotations

import pytest

from bot.sandbox import FloodLimits


@pytest.fixture
def flood_limits() -> FloodLimits:
    """A person answers at human speed, a test at machine speed: a dialog of a dozen answers
    would otherwise wait out Telegram's per-chat limit (one message a second after a burst of
    ten) and make the suite slow. The limits themselves are tested in test_joining."""
    return FloodLimits(chat_burst=100)
