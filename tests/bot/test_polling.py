"""Long polling that confirms updates only once handled (bot.transport.telegram.polling), against
the stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from telegram import Bot, Update

from bot.sandbox import BotApiSandbox, FloodLimits
from bot.transport.telegram.polling import Poller

TOKEN = "123456:polling-test-token"
PEOPLE = 80


@pytest.fixture
async def sandbox() -> AsyncIterator[BotApiSandbox]:
    box = BotApiSandbox(token=TOKEN, flood=FloodLimits(enabled=False))
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


@pytest.fixture
async def bot(sandbox: BotApiSandbox) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=sandbox.base_url) as connected:
        yield connected


async def test_updates_in_hand_are_read_again_a_few_times_not_once_per_update_finished(
    sandbox: BotApiSandbox, bot: Bot
) -> None:
    """80 people's updates arrive at once and finish one by one. Every getUpdates call while
    they are in hand returns all of them again, so a call per finish would read each update
    about 40 times; a call per quarter of those in hand reads each a few times."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    # busy_poll long enough that only finishes decide when the poller asks again
    poller = Poller(bot, queue, allowed_updates=["message"], timeout=1, busy_poll=60)
    sent = [await sandbox.person(5000 + n, f"P{n}").send_text(f"hello {n}") for n in range(PEOPLE)]
    await poller.start()
    taken: list[Update] = []
    try:
        for _ in range(PEOPLE):
            update = await queue.get()
            assert isinstance(update, Update)
            taken.append(update)
            await poller.parked.wait()  # the calls the finishes asked for are made
        calls = sandbox.stats.requests["getUpdates"]
        for update in taken[:-1]:
            poller.handled(update)
            await poller.parked.wait()  # the calls the finishes asked for are made
        poller.handled(taken[-1])
        calls = sandbox.stats.requests["getUpdates"] - calls
    finally:
        await poller.stop()

    assert [u.message.message_id for u in taken if u.message] == sent
    # 80 in hand: asked again after 20, 15, 11, 9, 6, 5, 4, 3, 2, ... finished (19 calls);
    # once per finish it was 80.
    assert calls <= 20, calls
    # All handled and confirmed: Telegram keeps nothing.
    assert sandbox.pending_updates() == 0


async def test_an_update_arriving_while_others_are_in_hand_is_taken_without_waiting_for_them(
    sandbox: BotApiSandbox, bot: Bot
) -> None:
    """Asking again waits for finishes only up to busy_poll: a newcomer is not held back by
    updates that take long."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    poller = Poller(bot, queue, allowed_updates=["message"], timeout=1, busy_poll=0.05)
    await sandbox.person(6001, "Slow").send_text("slow")
    await poller.start()
    try:
        slow = await queue.get()
        await sandbox.person(6002, "New").send_text("new")
        async with asyncio.timeout(5):
            newcomer = await queue.get()
        assert isinstance(newcomer, Update) and newcomer.message is not None
        assert newcomer.message.text == "new"
        # The slow one is not confirmed while in hand: Telegram still has both.
        assert sandbox.pending_updates() == 2
        poller.handled(slow)
        poller.handled(newcomer)
    finally:
        await poller.stop()
    assert sandbox.pending_updates() == 0
