"""Shared fixtures: a real, migrated database per test (SQLite, or PostgreSQL when asked)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import asyncpg
import hypothesis
import pytest
from sqlalchemy import make_url, text

from bot.core import migrate
from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import Base


def _worker_database(url: str | None) -> str | None:
    """The PostgreSQL database of this pytest-xdist worker (`test_gw0`, ...), made on first use,
    so that workers never share tables or advisory locks; the given one when not in parallel."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    given = make_url(url)
    name = f"{given.database}_{worker}"

    async def create() -> None:
        connection = await asyncpg.connect(
            host=given.host,
            port=given.port or 5432,
            user=given.username,
            password=given.password,
            database=given.database,
        )
        try:
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return given.set(database=name).render_as_string(hide_password=False)


# Every run of the suite draws the same examples, so that a red run fails again when run again
# and can be fixed; ROUNDTABLE_HYPOTHESIS=explore draws new ones (with ROUNDTABLE_PROPERTY_EXAMPLES
# for a soak run of the e2e properties, see tests/e2e/properties.py).
hypothesis.settings.register_profile("suite", derandomize=True)
hypothesis.settings.register_profile("explore", derandomize=False)
hypothesis.settings.load_profile(os.environ.get("ROUNDTABLE_HYPOTHESIS", "suite"))

POSTGRES_URL = _worker_database(os.environ.get("ROUNDTABLE_TEST_DATABASE_URL"))
# Monday 23 November 2026, 08:00 in Prague.
START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
TEST_KEY = b"hUv2G0dbT8JxjVgKq3bt0x1m8yUZBq6hL0oOEnR3U4c="

T = TypeVar("T")


def with_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """What `work` returns, run on its own connection to the database at `url`, for tests
    that run the command line (its own event loop) and then look at what it stored."""

    async def go() -> T:
        database = Database(url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(go())


def run_roundtable(
    environment: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The `roundtable` command as an operator runs it, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _prepare(url: str) -> None:
    async def go() -> None:
        database = Database(url)
        try:
            if database.engine.dialect.name == "postgresql":
                async with database.engine.begin() as connection:
                    await connection.execute(text("DROP SCHEMA public CASCADE"))
                    await connection.execute(text("CREATE SCHEMA public"))
            await migrate.upgrade(database)
        finally:
            await database.dispose()

    asyncio.run(go())


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrated once per run: a template SQLite file, or the PostgreSQL test database itself."""
    if POSTGRES_URL:
        _prepare(POSTGRES_URL)
        return POSTGRES_URL
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    _prepare(f"sqlite+aiosqlite:///{path}")
    return str(path)


@pytest.fixture
def database_url(migrated_template: str, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database for one test."""
    if POSTGRES_URL:
        _truncate(POSTGRES_URL)
        yield POSTGRES_URL
        return
    path = tmp_path / "roundtable.sqlite3"
    shutil.copyfile(migrated_template, path)
    yield f"sqlite+aiosqlite:///{path}"


def _truncate(url: str) -> None:
    async def go() -> None:
        database = Database(url)
        try:
            names = ", ".join(table.name for table in Base.metadata.sorted_tables)
            async with database.transaction() as session:
                await session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        finally:
            await database.dispose()

    asyncio.run(go())


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def cipher() -> Cipher:
    return Cipher([TEST_KEY])
