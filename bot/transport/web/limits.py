"""How often one link, one Mini App user or one address may ask for the page: a sliding window
per key, on the bot's clock (the tests move it). Kept in memory: a restart forgets the counts,
which only ever lets someone in earlier; a key whose requests no longer count is let go within
a minute, so a flood of made-up links leaves nothing behind."""

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
        self._swept: datetime | None = None

    def __len__(self) -> int:
        return len(self._seen)

    def allow(self, key: str, limit: int, now: datetime) -> bool:
        """Counts one request under `key`; False when it is over `limit` within the window."""
        self._sweep(now)
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

    def _sweep(self, now: datetime) -> None:
        """Once a window: the keys none of whose requests count any more are let go."""
        if self._swept is not None and now - self._swept < WINDOW:
            return
        self._swept = now
        for key in [
            key for key, times in self._seen.items() if not times or times[-1] <= now - WINDOW
        ]:
            del self._seen[key]
