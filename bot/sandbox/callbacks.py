"""Callback queries that await the bot's answerCallbackQuery."""

from __future__ import annotations

import asyncio

from .errors import ApiError
from .models import CallbackAnswer

_QUERY_ID_BASE = 4_000_000_000_000_000_000  # Telegram's query ids are long numeric strings


class CallbackRegistry:
    """Open callback queries by id; each can be answered once."""

    def __init__(self) -> None:
        self._count = 0
        self._open: dict[str, asyncio.Future[CallbackAnswer]] = {}

    def open(self) -> tuple[str, asyncio.Future[CallbackAnswer]]:
        """A new query id and the future that answerCallbackQuery resolves."""
        self._count += 1
        query_id = str(_QUERY_ID_BASE + self._count)
        answer: asyncio.Future[CallbackAnswer] = asyncio.get_running_loop().create_future()
        self._open[query_id] = answer
        return query_id, answer

    def answer(self, query_id: str, answer: CallbackAnswer) -> None:
        future = self._open.pop(query_id, None)
        if future is None or future.done():
            raise ApiError.bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        future.set_result(answer)

    def forget(self, query_id: str) -> None:
        """Expire a query nobody waits for any more, so a late answer fails like on Telegram."""
        self._open.pop(query_id, None)
