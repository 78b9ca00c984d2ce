"""The active lock: one holder per bot (two bots on one database do not wait for each other), a
standby that takes over when the lock comes free, and an active process that stops serving when
its lock is lost and competes for it again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from bot.core.config import isolated_settings
from bot.core.db import Database
from bot.sandbox.waiting import Signal
from bot.transport.telegram import standby
from tests.conftest import POSTGRES_URL


def _lock(url: str, token: str) -> standby.ActiveLock:
    return standby.lock_for(isolated_settings(token=SecretStr(token), database_url=url))


async def test_one_holder_per_bot_and_two_bots_do_not_wait_for_each_other(
    database_url: str,
) -> None:
    first = _lock(database_url, "7000000001:first-copy")
    second = _lock(database_url, "7000000001:second-copy-same-bot")
    other_bot = _lock(database_url, "7000000009:another-bot")
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert await other_bot.try_acquire()
        await first.release()
        assert await second.try_acquire()
    finally:
        for lock in (first, second, other_bot):
            await lock.release()


def test_sqlite_locks_a_file_next_to_the_database(tmp_path: Path) -> None:
    lock = _lock(f"sqlite:///{tmp_path / 'roundtable.sqlite3'}", "7000000001:x")
    assert isinstance(lock, standby.FileLock)
    assert lock.path == tmp_path / "roundtable.sqlite3.7000000001.lock"


async def test_the_holder_of_the_file_lock_is_written_in_it(tmp_path: Path) -> None:
    lock = standby.FileLock(tmp_path / "db.lock")
    assert await lock.try_acquire()
    try:
        assert (tmp_path / "db.lock").read_text().strip().isdigit()
    finally:
        await lock.release()


@pytest.mark.skipif(POSTGRES_URL is None, reason="the advisory lock is PostgreSQL's")
async def test_a_closed_lock_connection_is_a_lost_lock(database_url: str) -> None:
    lock = _lock(database_url, "7000000001:x")
    assert isinstance(lock, standby.AdvisoryLock)
    assert await lock.try_acquire()
    try:
        watching = asyncio.create_task(lock.lost(3600))
        await asyncio.sleep(0)
        assert not watching.done()
        await _end_lock_connections(database_url)  # as a database restart would
        await asyncio.wait_for(watching, timeout=5)
    finally:
        await lock.release()


async def _end_lock_connections(url: str) -> None:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": standby.APPLICATION_NAME},
            )
    finally:
        await database.dispose()


class FakeLock:
    """A lock the test hands out and takes away."""

    def __init__(self) -> None:
        self.free = asyncio.Event()
        self.gone = asyncio.Event()
        self.attempts = 0
        self.tried = Signal()

    async def tried_more(self, than: int) -> None:
        assert await self.tried.wait_until(lambda: self.attempts > than, 5)

    async def try_acquire(self) -> bool:
        self.attempts += 1
        self.tried.notify()
        if not self.free.is_set():
            return False
        self.free.clear()
        self.gone.clear()
        return True

    async def lost(self, interval: float) -> None:
        await self.gone.wait()

    async def release(self) -> None:
        pass


async def test_a_standby_serves_once_the_lock_is_free_and_stops_serving_when_it_is_lost() -> None:
    lock = FakeLock()
    stop = asyncio.Event()
    terms: list[asyncio.Event] = []
    serving = asyncio.Event()

    async def serve(until: asyncio.Event) -> None:
        terms.append(until)
        serving.set()
        await until.wait()
        serving.clear()

    running = asyncio.create_task(standby.serve_while_active(lock, serve, stop, retry=0.01))
    await lock.tried_more(than=2)  # standing by, trying again and again
    assert terms == []

    lock.free.set()
    await asyncio.wait_for(serving.wait(), timeout=5)
    assert len(terms) == 1

    lock.gone.set()  # the database closed the lock's connection
    await asyncio.wait_for(terms[0].wait(), timeout=5)
    attempts = lock.attempts
    await lock.tried_more(than=attempts + 2)  # a standby again
    assert len(terms) == 1 and not serving.is_set()

    lock.free.set()
    await asyncio.wait_for(serving.wait(), timeout=5)
    assert len(terms) == 2
    stop.set()
    await asyncio.wait_for(running, timeout=5)
    assert terms[1].is_set()


async def test_a_standby_told_to_stop_stops_without_serving() -> None:
    lock = FakeLock()
    stop = asyncio.Event()

    async def serve(until: asyncio.Event) -> None:
        raise AssertionError("a standby does not serve")

    running = asyncio.create_task(standby.serve_while_active(lock, serve, stop, retry=3600))
    await lock.tried_more(than=0)
    stop.set()
    await asyncio.wait_for(running, timeout=5)
