"""A database that goes away for a moment (a restart, a failover) is waited for, not given up on:
what tells such an outage from a real error, and the writes that must not be lost to one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Chat, Message, Update

from bench.dbproxy import DatabaseProxy
from bot.core.crypto import Cipher
from bot.core.db import Database, unavailable
from bot.transport.telegram.ledger import HandledUpdates
from bot.transport.telegram.persistence import DatabasePersistence
from tests.conftest import POSTGRES_URL


class _Refusal(Exception):
    """What asyncpg raises for a server that is starting up (SQLSTATE 57P03)."""

    sqlstate = "57P03"


def test_an_outage_is_told_from_an_error() -> None:
    broken = InterfaceError("select 1", {}, Exception("connection is closed"))
    broken.connection_invalidated = True
    assert unavailable(broken)
    assert unavailable(ConnectionRefusedError(111, "Connect call failed"))
    assert unavailable(DBAPIError("select 1", {}, ConnectionResetError()))
    assert unavailable(_Refusal())
    assert not unavailable(OperationalError("select", {}, Exception("no such table: x")))
    assert not unavailable(ValueError("a bug"))
    telegram = RuntimeError("Timed out")  # how Telegram's network errors come: from an OSError
    telegram.__cause__ = TimeoutError()
    assert not unavailable(telegram)


def _away(database: Database, times: int) -> list[int]:
    """The database's next `times` transactions fail as if it had gone away."""
    failed: list[int] = []
    real = database.transaction

    @asynccontextmanager
    async def transaction() -> AsyncIterator[AsyncSession]:
        if len(failed) < times:
            failed.append(1)
            raise ConnectionRefusedError(111, "Connect call failed")
        async with real() as session:
            yield session

    database.transaction = transaction  # type: ignore[method-assign]
    return failed


async def test_dialog_state_is_written_once_the_database_is_back(
    database: Database, cipher: Cipher
) -> None:
    """python-telegram-bot drops a failed persistence write for good (and the next one writes
    only what changed after it): a dialog killed later would resume at a stale step."""
    persistence = DatabasePersistence(database, cipher)
    failed = _away(database, 2)
    await persistence.update_conversation("refer", (42, 42), "description")
    assert len(failed) == 2
    assert await DatabasePersistence(database, cipher).get_conversations("refer") == {
        (42, 42): "description"
    }


@pytest.mark.skipif(POSTGRES_URL is None, reason="a server to take away: PostgreSQL")
async def test_a_write_waits_through_a_real_outage(database_url: str, cipher: Cipher) -> None:
    async with DatabaseProxy.to(database_url) as proxy:
        database = Database(proxy.url_for(database_url))
        try:
            persistence = DatabasePersistence(database, cipher)
            await persistence.update_user_data(7, {"step": "name"})
            back = proxy.outage(1.0)
            await persistence.update_user_data(7, {"step": "year"})  # cut, refused, then back
            assert back.is_set()
        finally:
            await database.dispose()
    later = Database(database_url)
    try:
        assert await DatabasePersistence(later, cipher).get_user_data() == {7: {"step": "year"}}
        async with later.transaction() as session:
            assert await session.scalar(text("SELECT count(*) FROM user_data")) == 1
    finally:
        await later.dispose()


async def test_the_mark_of_a_handled_update_is_written_once_the_database_is_back(
    database: Database,
) -> None:
    ledger = HandledUpdates(database)
    update = Update(9, message=Message(9, datetime(2026, 11, 23, tzinfo=UTC), Chat(42, "private")))
    with ledger.handling(update) as mark:
        pass
    failed = _away(database, 1)
    await ledger.settle(mark)
    assert len(failed) == 1
    later = HandledUpdates(database)
    await later.load()
    assert later.seen(update)
