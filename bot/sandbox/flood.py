"""Telegram-like flood control: a global sliding window plus a token bucket per chat."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

_WINDOW_SECONDS = 1.0


@dataclass(frozen=True)
class FloodLimits:
    """Sending-rate limits; the defaults are Telegram's documented ones."""

    global_per_second: float = 30.0
    chat_per_second: float = 1.0
    chat_burst: int = 10
    enabled: bool = True


@dataclass
class _Bucket:
    tokens: float
    updated: float


class FloodGate:
    """Decides whether one more message may be sent now, and records it if so."""

    def __init__(
        self, limits: FloodLimits, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = limits
        self._monotonic = monotonic
        self._recent: deque[float] = deque()
        self._buckets: dict[int, _Bucket] = {}

    def acquire(self, chat_id: int) -> int | None:
        """Record a send to chat_id and return None, or return retry_after seconds (>= 1)."""
        if not self._limits.enabled:
            return None
        now = self._monotonic()
        bucket = self._refilled_bucket(chat_id, now)
        wait = max(self._global_wait(now), self._chat_wait(bucket))
        if wait > 0:
            return max(1, math.ceil(wait))
        self._recent.append(now)
        bucket.tokens -= 1
        return None

    def _global_wait(self, now: float) -> float:
        while self._recent and self._recent[0] <= now - _WINDOW_SECONDS:
            self._recent.popleft()
        # A fractional limit cannot be met inside a 1 s window; round down but allow one.
        capacity = max(1, math.floor(self._limits.global_per_second))
        if len(self._recent) < capacity:
            return 0.0
        # Wait until enough sends leave the window to make room for one more.
        return self._recent[len(self._recent) - capacity] + _WINDOW_SECONDS - now

    def _chat_wait(self, bucket: _Bucket) -> float:
        if bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) / self._limits.chat_per_second

    def _refilled_bucket(self, chat_id: int, now: float) -> _Bucket:
        capacity = float(self._limits.chat_burst)
        bucket = self._buckets.setdefault(chat_id, _Bucket(tokens=capacity, updated=now))
        refill = (now - bucket.updated) * self._limits.chat_per_second
        bucket.tokens = min(capacity, bucket.tokens + refill)
        bucket.updated = now
        return bucket
