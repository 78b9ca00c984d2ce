"""Active/standby: one process serves a bot; another one on the same database waits to take over.

python-telegram-bot keeps dialog state in memory and Telegram hands each update to one poller, so
two processes must never serve one bot at once. `roundtable run` first takes a lock only one
process can hold, and serves (polling or webhook, the outbox, the jobs) only while it holds it:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a connection of its own,
  kept open while serving. Its key comes from the bot's id (the token's first part), so two bots
  on one database never wait for each other. When the process dies, its connection closes and
  PostgreSQL drops the lock: at once when the process's kernel closes the socket (a crash or a
  SIGKILL, on any host), after the server's TCP keepalive gives up (about 20 s, set below for
  this connection) when the host itself is gone or cut off.
- SQLite: an exclusive `flock` on a file next to the database file (its name ends with the
  bot's id and `.lock`), which the kernel drops when the process dies. One host only, as SQLite
  itself; not on a network file system.

A process that cannot take the lock is the standby: it says so in the log once (then every ten
minutes) and tries again every `standby_retry_seconds`, so it takes over within about that
long after the active one died, plus its start-up (a fraction of a second).

The active process checks its lock connection as often (and hears at once when PostgreSQL closes
it). If the connection is gone (a database restart, a network cut), the lock is gone with it:
the process stops serving at once and becomes a standby again, competing for the lock like any
other. It must notice before PostgreSQL frees the lock for someone else; a check times out after
CHECK_TIMEOUT, well before the server's keepalive would (KEEPALIVE).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import URL, make_url

from bot.core.config import Settings

logger = logging.getLogger(__name__)

# The standby repeats that it is one this often (it says so at once the first time).
STANDBY_LOG_SECONDS = 600.0
# The active process gives up its lock connection when a check takes longer than this...
CHECK_TIMEOUT = 5.0
# ...while the server drops a connection whose peer has gone silent only after
# idle + interval * count = 10 + 3 * 3 s, so the old active has stopped before a standby can win.
KEEPALIVE = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "3",
    "tcp_keepalives_count": "3",
}
APPLICATION_NAME = "roundtable active lock"


class ActiveLock(Protocol):
    """A lock only one process can hold."""

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; False if another process holds it."""
        ...

    async def lost(self, interval: float) -> None:
        """Return when this process no longer holds the lock (checked every interval)."""
        ...

    async def release(self) -> None:
        """Give the lock up (harmless when it is not held)."""
        ...


def lock_for(settings: Settings) -> ActiveLock:
    """The lock of this bot on the configured database."""
    if settings.token is None:
        raise ValueError("the lock is the bot's: a token is needed")
    bot_id = settings.token.get_secret_value().split(":", 1)[0]
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "postgresql":
        return AdvisoryLock(url, advisory_key(bot_id))
    if url.database in (None, "", ":memory:"):
        return ProcessLock()  # nobody else can open this database
    return FileLock(Path(f"{url.database}.{bot_id}.lock"))


def advisory_key(bot_id: str) -> int:
    """A signed 64-bit advisory lock key of one bot (the migration lock is another key)."""
    digest = hashlib.blake2b(f"roundtable:active:{bot_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a dedicated connection."""

    def __init__(self, url: URL, key: int) -> None:
        self.key = key
        self._url = url
        self._connection: asyncpg.Connection | None = None
        self._closed = asyncio.Event()

    async def try_acquire(self) -> bool:
        connection = await self._connect()
        return bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", self.key))

    async def lost(self, interval: float) -> None:
        connection = self._connection
        assert connection is not None, "lost() is asked only while the lock is held"
        while True:
            # The termination listener sets _closed the moment PostgreSQL closes the connection.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._closed.wait()
            if self._closed.is_set() or connection.is_closed():
                logger.warning("the database closed the connection that held the active lock")
                return
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    await connection.fetchval("SELECT 1")
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                logger.warning("the active lock's connection failed (%s)", type(error).__name__)
                connection.terminate()
                return

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None or connection.is_closed():
            return
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await connection.close()  # ending the session releases its locks
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            connection.terminate()

    async def _connect(self) -> asyncpg.Connection:
        if self._connection is not None and not self._connection.is_closed():
            return self._connection
        # The engine's options (host, port, user, password, database, and the URL's query, e.g.
        # ssl=require), less what only SQLAlchemy's driver wrapper takes.
        url = self._url
        options: dict[str, Any] = {**url.translate_connect_args(username="user"), **url.query}
        for engine_only in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            options.pop(engine_only, None)
        server_settings = {**options.pop("server_settings", {}), **KEEPALIVE}
        server_settings["application_name"] = APPLICATION_NAME
        connection: asyncpg.Connection = await asyncpg.connect(
            **options, server_settings=server_settings, timeout=CHECK_TIMEOUT
        )
        self._closed = asyncio.Event()
        connection.add_termination_listener(lambda _connection: self._closed.set())
        self._connection = connection
        return connection


class FileLock:
    """An exclusive flock on a file; the kernel releases it when the process ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        # For the operator: which process is the active one.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    async def lost(self, interval: float) -> None:
        await asyncio.Event().wait()  # held until released or the process ends

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


class ProcessLock:
    """For an in-memory database, which no other process can open: always free."""

    async def try_acquire(self) -> bool:
        return True

    async def lost(self, interval: float) -> None:
        await asyncio.Event().wait()

    async def release(self) -> None:
        pass


Serve = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def serve_while_active(
    lock: ActiveLock, serve: Serve, stop: asyncio.Event, *, retry: float
) -> None:
    """Wait for the lock, serve while holding it; until stop is set.

    serve(until) must return soon after until is set. It is called again (with a fresh until)
    each time this process takes the lock anew after having lost it.
    """
    while not stop.is_set():
        if not await _wait_for_lock(lock, stop, retry):
            return
        try:
            if not await _serve_holding(lock, serve, stop, retry):
                return
        finally:
            await lock.release()
        logger.warning("stopped serving: the active lock was lost; this process is a standby now")


async def _wait_for_lock(lock: ActiveLock, stop: asyncio.Event, retry: float) -> bool:
    """True once the lock is held; False if stop was set first."""
    said: tuple[str, float] | None = None
    while not stop.is_set():
        try:
            if await lock.try_acquire():
                logger.info("this process holds the active lock and serves the bot")
                return True
            reason = "another process serves this bot"
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            reason = f"the database cannot be reached ({type(error).__name__})"
            await lock.release()
        now = time.monotonic()
        if said is None or said[0] != reason or now - said[1] >= STANDBY_LOG_SECONDS:
            logger.info("standby: %s; trying to take over every %g s", reason, retry)
            said = (reason, now)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(retry):
                await stop.wait()
    return False


async def _serve_holding(lock: ActiveLock, serve: Serve, stop: asyncio.Event, retry: float) -> bool:
    """Serve until stop is set (False) or the lock is lost (True)."""
    until = asyncio.Event()
    serving = asyncio.create_task(serve(until))
    watching = asyncio.create_task(lock.lost(retry))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, watching, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        until.set()
        stopping.cancel()
    if not watching.done():
        watching.cancel()
        await serving  # its errors are the process's errors, as without the lock
        return False
    if watching.exception() is not None:
        logger.error("checking the active lock failed", exc_info=watching.exception())
    try:
        await serving
    except Exception as error:  # the database is likely gone as well
        logger.warning("stopping after the lock was lost: %s", type(error).__name__)
    return True
