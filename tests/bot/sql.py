"""Counting what reaches the database, for tests of how many queries a use case costs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from bot.core.db import Database


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements sent to the database while the block runs."""
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(args[2])  # (connection, cursor, statement, parameters, context, many)

    event.listen(database.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", note)
