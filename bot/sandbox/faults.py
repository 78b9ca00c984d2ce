"""Telegram's failures at a set rate: 429, 500, 502, answers that come too late, lost connections.

`Faults` says how often and which; the stand-in draws for every Bot API call of the bot. The draw
for a call depends only on the seed, the method, the chat and how many calls of that method that
chat has had, not on how calls of different chats interleave, so a run with the same seed and
the same people meets the same faults.

What each fault does, as seen from Telegram's side:

- "429": Too Many Requests with `retry_after` seconds; the call had no effect.
- "500", "502": Internal Server Error, Bad Gateway; no effect.
- "drop": the connection closes after the request was read, without an answer and without
  effect (lost on its way in).
- "timeout": the call takes effect, but its answer comes only after `hold_seconds`, longer than
  the client waits (5 s by default in python-telegram-bot): the bot cannot know that, say, its
  message arrived. This is the one fault after which a retry can show a message twice.

Long polls (getUpdates) only meet the faults in `long_poll_kinds`: none of them confirms updates
(Telegram confirms an update when the bot asks with a higher offset, in a later call), so a
failed getUpdates never loses one. Blocking the bot (403) is a person's doing: `Person.block`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

KINDS = ("429", "500", "502", "drop", "timeout")
LONG_POLL = "getUpdates"


@dataclass(frozen=True)
class Faults:
    """How often the bot's Bot API calls fail, and how."""

    rate: float = 0.0  # the share of calls that fail, 0..1
    mix: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 1.0))
    seed: int = 0
    retry_after: int = 1  # seconds, in a 429
    hold_seconds: float = 6.0  # how late a "timeout" answer comes
    long_poll_kinds: frozenset[str] = frozenset({"429", "500", "502", "drop"})
    # Methods that never fail, e.g. getMe when a test is about something else.
    spared: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("the fault rate is a share of calls, 0 to 1")
        unknown = set(self.mix) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {', '.join(sorted(unknown))}")
        if any(weight < 0 for weight in self.mix.values()) or not any(self.mix.values()):
            raise ValueError("the mix needs a positive weight")


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault: the call, the chat (None for calls without one), when
    (time.monotonic) and, for a "timeout" send, the message that did arrive."""

    method: str
    kind: str
    chat_id: int | None
    at: float
    message_id: int | None = None


class FaultDraw:
    """The draws for one run: which call fails and how; and the record of what was injected."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.injected: list[FaultRecord] = []
        self.by_chat: Counter[int | None] = Counter()  # faults injected per chat
        self._calls: Counter[tuple[str, int | None]] = Counter()

    def draw(self, method: str, chat_id: int | None) -> str | None:
        """The fault for this call, or None."""
        faults = self.faults
        if faults.rate <= 0 or method in faults.spared:
            return None
        key = (method, chat_id)
        number = self._calls[key]
        self._calls[key] += 1
        chance = random.Random(f"{faults.seed}:{method}:{chat_id}:{number}")  # noqa: S311
        if chance.random() >= faults.rate:
            return None
        allowed = faults.long_poll_kinds if method == LONG_POLL else set(KINDS)
        kinds = [kind for kind in KINDS if kind in allowed and faults.mix.get(kind, 0) > 0]
        if not kinds:
            return None
        return chance.choices(kinds, weights=[faults.mix[kind] for kind in kinds])[0]

    def record(
        self, method: str, kind: str, chat_id: int | None, message_id: int | None = None
    ) -> None:
        self.injected.append(FaultRecord(method, kind, chat_id, time.monotonic(), message_id))
        self.by_chat[chat_id] += 1

    def count(self) -> Counter[str]:
        """How many faults of each kind were injected."""
        return Counter(record.kind for record in self.injected)
