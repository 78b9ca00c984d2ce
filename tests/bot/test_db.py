"""The database layer: migrations match the models, and concurrent writers never lose a write."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from functools import partial

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, insert, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.core import db, migrate
from bot.core.clock import FakeClock
from bot.core.db import Database, unavailable
from bot.core.models import Base, ChatData, JoinAttempt
from tests.conftest import POSTGRES_URL


async def test_the_migrations_create_exactly_the_models(database: Database) -> None:
    def differences(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_head_is_alembics_and_a_migrated_database_is_at_it(database: Database) -> None:
    """The bot skips Alembic on a migrated database by its HEAD, which must be Alembic's."""
    assert ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == migrate.HEAD
    assert await migrate.current_revision(database) == migrate.HEAD


async def test_concurrent_read_modify_write_transactions_neither_fail_nor_lose_updates(
    database: Database,
) -> None:
    """Sixty updates each read a counter, yield to the others, and write it back plus one: with
    SQLite's default deferred transactions they fail with "database is locked", and without a
    transaction around the read they silently overwrite each other."""
    async with database.transaction() as session:
        session.add(ChatData(chat_id=1, data=b"0"))

    async def one_update() -> None:
        async with database.transaction() as session:
            row = await session.get_one(ChatData, 1, with_for_update=True)
            await asyncio.sleep(0)  # let the other updates interleave between read and write
            row.data = str(int(row.data) + 1).encode()

    await asyncio.gather(*(one_update() for _ in range(60)))
    async with database.transaction() as session:
        assert (await session.get_one(ChatData, 1)).data == b"60"


async def test_timestamps_come_back_in_utc(database: Database, clock: FakeClock) -> None:
    async with database.transaction() as session:
        session.add(JoinAttempt(telegram_user_id=1, attempted_at=clock.now()))
    async with database.transaction() as session:
        stored = await session.scalar(select(JoinAttempt.attempted_at))
    assert stored == clock.now()
    assert stored is not None and stored.utcoffset() == timedelta(0)


async def test_a_reading_transaction_does_not_wait_for_a_writer(database: Database) -> None:
    """The guard reads who is talking while other updates write: it must not queue behind them
    (nor see their uncommitted rows)."""
    async with database.transaction() as writer:
        writer.add(ChatData(chat_id=2, data=b"uncommitted"))
        await writer.flush()  # the writer holds SQLite's write lock from here on
        async with asyncio.timeout(5), database.reading() as reader:
            assert await reader.scalar(select(ChatData).where(ChatData.chat_id == 2)) is None
    async with database.reading() as reader:
        assert await reader.scalar(select(ChatData.data).where(ChatData.chat_id == 2)) == (
            b"uncommitted"
        )


async def test_waiting_for_another_process_write_lock_does_not_stop_the_bot(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's statements run on the event loop's thread. While another process (a CLI
    command) holds the write lock, a writer waits for it without blocking the loop: other
    updates are still read and answered; the writer goes ahead once the lock is free, and
    gives up with "database is locked" only after the busy timeout."""
    path = make_url(database.url).database
    if database.engine.dialect.name != "sqlite" or path is None:
        pytest.skip("SQLite's file lock")
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")

    async def write(chat_id: int) -> None:
        async with database.transaction() as session:
            session.add(ChatData(chat_id=chat_id, data=b"written"))

    writer = asyncio.create_task(write(3))
    for _ in range(5):  # the loop goes on: reads are answered while the writer waits
        async with asyncio.timeout(5), database.reading() as reader:
            assert await reader.scalar(select(ChatData).where(ChatData.chat_id == 3)) is None
    assert not writer.done()
    other_process.execute("COMMIT")
    async with asyncio.timeout(5):
        await writer

    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 30)
    other_process.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError, match="database is locked"):
        async with asyncio.timeout(5):
            await write(4)
    other_process.execute("ROLLBACK")
    other_process.close()
    async with database.reading() as reader:
        written = await reader.scalars(select(ChatData.chat_id).where(ChatData.data == b"written"))
        assert list(written) == [3]


async def test_a_reading_session_refuses_to_write(database: Database) -> None:
    """On PostgreSQL each statement of a reading session commits on its own: a write there
    would not be undone with the rest on an error, so none is let through."""
    with pytest.raises(RuntimeError, match="does not write"):
        async with database.reading() as session:
            session.add(ChatData(chat_id=5, data=b"added"))
            await session.flush()
    with pytest.raises(RuntimeError, match="does not write"):
        async with database.reading() as session:
            await session.execute(insert(ChatData).values(chat_id=6, data=b"inserted"))
    async with database.reading() as session:
        assert list(await session.scalars(select(ChatData.chat_id))) == []


@pytest.mark.skipif(POSTGRES_URL is None, reason="PostgreSQL's transactions")
async def test_a_postgresql_read_runs_without_a_transaction_unless_streamed(
    database: Database,
) -> None:
    """BEGIN and COMMIT are two round trips more than the one statement of most reads; under
    READ COMMITTED they give a reader nothing. In a transaction now() is its start, the same
    for every statement; without one, each statement is its own transaction."""
    statement = text("SELECT now()")
    async with database.reading() as session:
        first, second = await session.scalar(statement), await session.scalar(statement)
    assert first != second
    async with database.reading(streamed=True) as session:
        first, second = await session.scalar(statement), await session.scalar(statement)
        rows = await session.stream(select(ChatData.chat_id).execution_options(yield_per=10))
        assert [row async for row in rows] == []
    assert first == second
    async with database.transaction() as session:
        first, second = await session.scalar(statement), await session.scalar(statement)
    assert first == second


async def _backend(database: Database) -> int:
    async with database.reading() as session:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def _drop_on_the_server(database_url: str, pid: int) -> None:
    """What a server restart or a firewall's idle timeout does to a pooled connection."""
    other = Database(database_url)
    try:
        async with other.transaction() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()


@pytest.mark.skipif(POSTGRES_URL is None, reason="PostgreSQL's connection pool")
async def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
    database: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped = await _backend(database)
    await _drop_on_the_server(database_url, dropped)
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # it has lain unused long enough
    async with database.transaction() as session:
        assert await session.scalar(text("SELECT pg_backend_pid()")) != dropped


@pytest.mark.skipif(POSTGRES_URL is None, reason="PostgreSQL's connection pool")
async def test_a_connection_used_a_moment_ago_is_not_pinged(
    database: Database, database_url: str
) -> None:
    """Pinging on every checkout cost three round trips per transaction. A connection dropped
    right after its last use fails the work instead, as an outage the work waits out and is
    done again on (Database.when_available, the update processor); the pool then replaces it."""
    dropped = await _backend(database)
    await _drop_on_the_server(database_url, dropped)
    with pytest.raises(DBAPIError) as failed:
        await _backend(database)
    assert unavailable(failed.value)
    assert await database.when_available(partial(_backend, database)) != dropped


@pytest.mark.skipif(POSTGRES_URL is None, reason="PostgreSQL's connection pool")
async def test_thirty_transactions_at_once_reuse_the_pools_connections(database: Database) -> None:
    """Up to 64 updates are handled at once. With 10 connections kept, a busy moment opened
    and closed connections all the time (and prepared every statement again on each)."""
    opened: list[object] = []
    event.listen(database.engine.sync_engine, "connect", lambda *_: opened.append(1))
    together = asyncio.Barrier(30)

    async def transaction() -> None:
        async with database.transaction() as session:
            await session.execute(text("SELECT 1"))
            await together.wait()  # all thirty hold a connection at this moment

    async with asyncio.timeout(20):
        await asyncio.gather(*(transaction() for _ in range(30)))
        first_round = len(opened)
        await asyncio.gather(*(transaction() for _ in range(30)))
    assert first_round <= 30
    assert len(opened) == first_round
