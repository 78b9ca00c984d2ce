"""Concurrent updates across chats, strict order within a chat, and dialog state saved after each.

python-telegram-bot's simple processor either runs everything one by one (slow under network
latency) or everything at once (a person's two quick taps could overtake each other and corrupt
a ConversationHandler's state). Here updates of different chats run concurrently, bounded, while
each chat's (or, without a chat, each user's) updates wait for the one before them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

logger = logging.getLogger(__name__)

AfterUpdate = Callable[[], Awaitable[None]]
_UNBOUNDED = 2**31 - 1


class _KeyLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class OrderedUpdateProcessor(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int) -> None:
        # The base class takes its semaphore before do_process_update, that is before the chat's
        # turn: a chat that sends a flood of updates would then hold every slot while its
        # updates wait for each other, stalling all chats. So the base is left unbounded and
        # the slots are taken here, after the chat's turn has come.
        super().__init__(_UNBOUNDED)
        self._slots = asyncio.BoundedSemaphore(max_concurrent_updates)
        self._locks: dict[object, _KeyLock] = {}
        self._after_update: AfterUpdate | None = None
        self.in_flight = 0  # updates being handled now
        self.peak_in_flight = 0  # the most handled at once, for tests and benchmarks

    def after_each_update(self, callback: AfterUpdate) -> None:
        """Run callback once an update is handled, before the chat's next update starts.

        The application saves dialog state here, so that a process killed at any moment loses
        at most the update it was handling.
        """
        self._after_update = callback

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Wait for the chat's turn, then for a free slot; handle; save the dialog state."""
        key = _ordering_key(update)
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _KeyLock()
        entry.users += 1
        try:
            # asyncio.Lock wakes waiters first-in first-out, so a chat's updates keep their order.
            async with entry.lock, self._slots:
                await self._handle(coroutine)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]

    async def _handle(self, coroutine: Awaitable[Any]) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await coroutine
        finally:
            self.in_flight -= 1
            if self._after_update is not None:
                try:
                    await self._after_update()
                except Exception:
                    logger.exception("saving dialog state failed")

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down: the application waits for running updates itself."""


def _ordering_key(update: object) -> object:
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return ("chat", update.effective_chat.id)
        if update.effective_user is not None:
            return ("user", update.effective_user.id)
    return ("other", id(update))
