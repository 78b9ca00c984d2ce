"""How often one link, one Mini App user or one address may ask for the page: a sliding window
per key, on the bot's clock (the tests move it). Kept in memory: a restart forgets the counts,
which only ever lets someone in earlier."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=1)
PER_LINK = 30  # a person answering taps Send a few times at most; 30 a minute is abuse
PER_ADDRESS = 120  # several guests behind one office's address
_MAX_KEYS = 50_000  # past this, the oldest keys are forgotten (a flood of made-up tokens)


class RateLimits:
    def __init__(self) -> None:
        self._seen: dict[str, deque[datetime]] = {}

    def allow(self, key: str, limit: int, now: datetime) -> bool:
        """Counts one request under `key`; False when it is over `limit` within the window."""
        times = self._seen.pop(key, None)
        if times is None:
            times = deque()
            if len(self._seen) >= _MAX_KEYS:
                del self._seen[next(iter(self._seen))]
        self._seen[key] = times  # the newest keys last
        while times and times[0] <= now - WINDOW:
            times.popleft()
        if len(times) >= limit:
            return False
        times.append(now)
        return True
