"""The queue of updates Telegram keeps for the bot until they are confirmed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .waiting import Signal

# Telegram leaves these out unless allowed_updates names them explicitly.
_OPT_IN_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def update_type(update: dict[str, Any]) -> str:
    """The update's kind, e.g. "message" or "callback_query"."""
    return next((key for key in update if key != "update_id"), "")


class UpdateQueue:
    """Pending updates in update_id order; `changed` fires on every change."""

    def __init__(self, on_confirmed: Callable[[list[int]], None] | None = None) -> None:
        self._on_confirmed = on_confirmed
        self._pending: list[dict[str, Any]] = []
        self._last_id = 0
        self._allowed: list[str] = []
        self.changed = Signal()

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, update: dict[str, Any]) -> int:
        """Queue a copy of the update, assigning update_id when missing; returns the id."""
        update_id = update.get("update_id")
        if not isinstance(update_id, int):
            update_id = self._last_id + 1
        self._last_id = max(self._last_id, update_id)
        fields = {key: value for key, value in update.items() if key != "update_id"}
        self._pending.append({"update_id": update_id, **fields})
        self._pending.sort(key=lambda queued: int(queued["update_id"]))
        self.changed.notify()
        return update_id

    def set_allowed(self, allowed: list[str] | None) -> None:
        """Telegram keeps the last allowed_updates; None means "unchanged"."""
        if allowed is not None:
            self._allowed = [str(kind) for kind in allowed]

    @property
    def allowed(self) -> list[str]:
        return list(self._allowed)

    def confirm_below(self, offset: int) -> None:
        """Confirm updates below offset; a negative offset keeps only the last -offset ones."""
        if offset > 0:
            self._keep(lambda position, u: u["update_id"] >= offset)
        elif offset < 0:
            first = max(len(self._pending) + offset, 0)
            self._keep(lambda position, u: position >= first)

    def confirm(self, update_id: int) -> None:
        self._keep(lambda position, u: u["update_id"] != update_id)

    def _keep(self, kept: Callable[[int, dict[str, Any]], bool]) -> None:
        confirmed = [u["update_id"] for n, u in enumerate(self._pending) if not kept(n, u)]
        if not confirmed:
            return
        self._pending = [u for n, u in enumerate(self._pending) if kept(n, u)]
        if self._on_confirmed is not None:
            self._on_confirmed(confirmed)

    def clear(self) -> None:
        self._pending.clear()
        self.changed.notify()

    def take(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` deliverable updates with update_id >= offset (they stay queued)."""
        self._drop_disallowed()
        return [u for u in self._pending if u["update_id"] >= offset][:limit]

    def _drop_disallowed(self) -> None:
        # Telegram never stores updates of types the bot did not ask for.
        self._pending = [u for u in self._pending if self._is_allowed(update_type(u))]

    def _is_allowed(self, kind: str) -> bool:
        if self._allowed:
            return kind in self._allowed
        return kind not in _OPT_IN_TYPES
