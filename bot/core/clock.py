"""The injected clock: everything that asks "what time is it" asks one of these."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware, in UTC."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """Time that only moves when told to: for tests and the demo."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("time does not move backwards")
        self._now += delta

    def set(self, moment: datetime) -> None:
        self.advance(moment.astimezone(UTC) - self._now)

    def timestamp(self) -> float:
        """Seconds since the epoch, for the Bot API stand-in's message dates."""
        return self._now.timestamp()
