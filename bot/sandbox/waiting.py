"""Wake-up signal that lets coroutines wait for sandbox state changes without polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Signal:
    """Wakes every current waiter on notify(); waiters then re-check their own condition."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        # Swap in a fresh event first so a waiter that re-checks and waits again blocks
        # until the *next* change instead of spinning on an already-set event.
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_for(self, take: Callable[[], T | None], within: float | None) -> T | None:
        """Return the first non-None result of take(), re-checked after each notify().

        Returns None when `within` seconds pass first (None waits forever).
        """
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while (value := take()) is None:
            # Grab the event before suspending: a notify() after the check above must wake us.
            event = self._event
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                return None
        return value

    async def wait_until(self, predicate: Callable[[], bool], within: float | None) -> bool:
        """Wait until predicate() is true; False if `within` seconds pass first."""
        return await self.wait_for(lambda: True if predicate() else None, within) is not None
