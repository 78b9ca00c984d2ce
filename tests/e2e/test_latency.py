"""Under Telegram's network delay (30 ms per Bot API answer, as from a Czech server): updates of
different people are handled at once, and one person's quick taps strictly in order, so a
dialog's state stays right."""

from __future__ import annotations

import asyncio

import pytest
from telegram.ext import Application

from bot.core.models import Role
from bot.transport.telegram.processor import OrderedUpdateProcessor
from tests.e2e.conftest import RunningBot, text_of
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_referrals import CHILD, team


@pytest.fixture
def rtt_ms() -> float:
    return 30.0


def processor(application: Application) -> OrderedUpdateProcessor:  # type: ignore[type-arg]
    found = application.update_processor
    assert isinstance(found, OrderedUpdateProcessor)
    return found


async def test_one_persons_quick_answers_are_handled_in_order(bot: RunningBot) -> None:
    _coordinator, teacher = await team(bot)
    await teacher.send_text("/refer")
    await teacher.next_message()
    await teacher.press("No")
    assert "What is the child's name?" in await text_of(teacher)
    # Three answers typed faster than the bot's answers come back.
    for typed in (CHILD, "2015", "5.B"):
        await teacher.send_text(typed)
    assert "In which year was the child born?" in await text_of(teacher)
    assert "School: ZŠ Hradební" in await text_of(teacher)
    assert "What is going on?" in await text_of(teacher)
    # Two taps at once: the concern is ticked before "Done" is handled, so Done is accepted.
    _ticked, done = await asyncio.gather(teacher.press("truancy"), teacher.press("Done"))
    assert done.text != "Choose at least one concern."
    while "Describe what is going on" not in await text_of(teacher):
        pass


async def test_fifty_peoples_updates_overlap(bot: RunningBot) -> None:
    people = await bot.joined({100 + n: f"Person {n}" for n in range(50)}, Role.PARTICIPANT)
    before = processor(bot.application).peak_in_flight
    await asyncio.gather(*(person.send_text("/help") for person in people))
    for person in people:
        assert "Commands:" in await text_of(person)
    # Handled one after another, at most one would ever be in flight.
    assert processor(bot.application).peak_in_flight >= 8 > before
