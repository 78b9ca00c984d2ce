"""The database engine and sessions: SQLite (embedded default) or PostgreSQL, both async."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any, Protocol, TypeVar

import aiosqlite
from sqlalchemy import event, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.orm.util import identity_key

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# How long work waits for a database that went away (a PostgreSQL restart, a failover) before
# its error counts.
OUTAGE_SECONDS = 60.0
# PostgreSQL connections kept open, and opened beyond them when busy (closed again on return).
# Up to 64 updates are handled at once (bot.app), each holding a connection only for its
# transactions: at 10 kept, a busy moment opened and closed connections all the time, and
# connecting (and preparing the statements again on each new connection) was 6 % of the CPU.
POOL_SIZE = 30
POOL_OVERFLOW = 10
# A pooled PostgreSQL connection unused for this long is pinged before use (_ping_idle_connections).
IDLE_PING_SECONDS = 10.0
_IDLE_SINCE = "roundtable_idle_since"
_CONNECTION_STATES = ("08", "57P")  # SQLSTATE classes: connection exception, shutdown
T = TypeVar("T")
READING = "roundtable_reading"  # an execution option: the transaction only reads
_WROTE = "roundtable_wrote"  # in Session.info: the transaction has changed something


class Stamp(Protocol):
    """Something to write into the first transaction that changes anything, within the same
    commit: the mark of the Telegram update being handled (bot.transport.telegram.ledger)."""

    async def __call__(self, session: AsyncSession) -> bool:
        """Write it, unless it is written already or does not belong here; True if written."""
        ...

    def committed(self) -> None:
        """The transaction it was written in has committed."""
        ...

    @property
    def stored(self) -> bool:
        """It has been written and committed."""
        ...


STAMP: ContextVar[Stamp | None] = ContextVar("roundtable_stamp", default=None)


class _Session(Session):
    """Sessions that note whether their transaction changed anything (for STAMP)."""


@event.listens_for(_Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WROTE] = True


@event.listens_for(_Session, "after_flush")
def _note_flush(session: Session, _transaction: UOWTransaction) -> None:
    session.info[_WROTE] = True


class _ReadingSession(Session):
    """The sessions of Database.reading: on PostgreSQL each statement commits on its own there,
    so a write would not be undone with the rest on an error. It is refused instead."""


@event.listens_for(_ReadingSession, "do_orm_execute")
def _refuse_statement(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise RuntimeError("a reading session does not write; use Database.transaction")


@event.listens_for(_ReadingSession, "before_flush")
def _refuse_flush(session: Session, *_args: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a reading session does not write; use Database.transaction")


def create_engine(url: str) -> AsyncEngine:
    """An engine whose writers never fail with "database is locked".

    SQLite: WAL, and every transaction opened with BEGIN IMMEDIATE. A deferred transaction that
    reads first and writes later cannot wait for the lock (SQLite answers SQLITE_BUSY at once to
    avoid a deadlock), so concurrent updates would be dropped; taking the write lock at BEGIN
    makes them wait for it instead (LoopConnection: up to SQLITE_BUSY_TIMEOUT_MS).
    Parameters are hidden from exception messages, so no personal data reaches a log.
    """
    if make_url(url).get_backend_name() == "sqlite":
        sqlite_url = make_url(url)
        engine = create_async_engine(
            sqlite_url,
            hide_parameters=True,
            pool_size=5,
            max_overflow=0,
            async_creator=partial(_connect_sqlite, sqlite_url),
        )
        _make_sqlite_transactions_immediate(engine)
        return engine
    engine = create_async_engine(
        url, hide_parameters=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """A pooled connection that has lain unused for IDLE_PING_SECONDS is tried before it is
    handed out, and replaced if the server has dropped it (a restart, a firewall's idle timeout).

    SQLAlchemy's pool_pre_ping does that on every checkout, and with asyncpg a ping is three
    round trips (BEGIN, an empty statement, ROLLBACK): more than the one or two statements of
    most transactions here. A connection used a moment ago is not worth it: a server that went
    away since fails the work, SQLAlchemy then replaces every pooled connection, and the work
    waits for the database and is done again (Database.when_available, the update processor),
    as it must anyway for a server that goes away in the middle of a transaction.
    """
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # The pool opens a new connection instead (and tries up to three times).
                raise DisconnectionError("an idle connection was dropped by the server") from error
            raise


class LoopConnection(aiosqlite.Connection):
    """aiosqlite's connection with its calls made on the event loop's own thread.

    aiosqlite hands every call (cursor, execute, fetch, close, commit) to a worker thread and
    back: four thread switches per statement, each waiting for the GIL, which cost more than
    the statements themselves (measured with bench load: 30 % of the bot's CPU per update, and
    its p99 under load six times as long). Round Table's statements are small indexed reads
    and writes of a few rows, over in microseconds, so they run in place. The one wait, for
    another process's write lock, is not slept on this thread: SQLite answers at once
    (busy_timeout 0) and the call is tried again after an asynchronous pause, until
    SQLITE_BUSY_TIMEOUT_MS have passed.
    The worker thread still opens and closes the connection, as aiosqlite does.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        waited = 0.0
        pause = 0.001
        while True:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as error:
                busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or waited * 1000 >= SQLITE_BUSY_TIMEOUT_MS:
                    raise
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.05)


async def _connect_sqlite(url: URL) -> aiosqlite.Connection:
    arguments, options = url.get_dialect()().create_connect_args(url)
    options["check_same_thread"] = False  # opened by aiosqlite's thread, used on the loop's
    return await LoopConnection(partial(sqlite3.connect, *arguments, **options), 64)


def _make_sqlite_transactions_immediate(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" listener below instead of the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=0")  # LoopConnection waits without blocking
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A reading transaction takes no lock: in WAL mode it reads its snapshot while others
        # write (Database.reading).
        reading = connection.get_execution_options().get(READING, False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def unavailable(error: BaseException) -> bool:
    """The database could not be reached, or the connection broke (a server restarting or
    failing over): the same work may well succeed in a moment, unlike with any other error."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        causes = [error.orig, getattr(error.orig, "__cause__", None)]
    else:
        # Raised by the driver as it is: connecting refused (an OSError), or a server starting
        # up. Not any error caused by an OSError: Telegram's network errors are.
        causes = [error]
    for cause in causes:
        if isinstance(cause, ConnectionError):  # refused, reset, aborted
            return True
        state = str(getattr(cause, "sqlstate", "") or "")
        if state.startswith(_CONNECTION_STATES):
            return True
    return False


def _insert(session: AsyncSession, model: type[Any], values: dict[str, Any]) -> Any:
    dialect = session.get_bind().dialect.name
    return (sqlite_insert if dialect == "sqlite" else pg_insert)(model).values(**values)


async def upsert(
    session: AsyncSession, model: type[Any], values: dict[str, Any], keys: Sequence[str]
) -> None:
    """Insert a row, or update it where its keys already exist: one statement, no race."""
    statement = _insert(session, model, values)
    updates = {column: statement.excluded[column] for column in values if column not in keys}
    await session.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates))


async def insert_if_absent(
    session: AsyncSession, model: type[Any], values: dict[str, Any], keys: Sequence[str]
) -> None:
    """Insert a row unless one with the same keys exists (also when another process is
    inserting it at this moment, where select-then-insert would fail on the unique key)."""
    statement = _insert(session, model, values)
    await session.execute(statement.on_conflict_do_nothing(index_elements=keys))


async def preload(session: AsyncSession, model: type[Any], ids: Iterable[int | None]) -> None:
    """Load the rows with these primary keys that the session does not hold yet, in one query:
    a `session.get` of any of them afterwards finds it without a query of its own."""
    held = session.identity_map
    wanted = {i for i in ids if i is not None and identity_key(model, i) not in held}
    if wanted:
        rows = await session.scalars(select(model).where(model.id.in_(wanted)))
        # The session holds its rows by weak reference: keep these for as long as it lives.
        session.info.setdefault("preloaded", []).extend(rows)


class Database:
    """The engine and a session factory; one short transaction per unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self._sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=_Session
        )
        # SQLite has one writer at a time. Its busy handler polls for the lock with sleeps of up
        # to 100 ms, leaving it unused meanwhile; the process's own writers queue here instead
        # and each starts the moment the one before commits. Other processes (the CLI) are
        # waited for by LoopConnection.
        self._write_lock = asyncio.Lock() if self.engine.dialect.name == "sqlite" else None
        self._writer_task: asyncio.Task[object] | None = None
        reading: dict[str, Any] = {READING: True}
        if self.engine.dialect.name == "postgresql":
            reading["isolation_level"] = "AUTOCOMMIT"
        self._readers = async_sessionmaker(
            self.engine.execution_options(**reading),
            expire_on_commit=False,
            sync_session_class=_ReadingSession,
        )
        self._streamers = async_sessionmaker(
            self.engine.execution_options(**{READING: True}),
            expire_on_commit=False,
            sync_session_class=_ReadingSession,
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success and rolled back on error.

        Never hold one across a Telegram call: do the database work, leave the block, then talk.
        When it changes anything, the STAMP of the context (the mark of the update being
        handled) is written in it too.
        """
        stamp = STAMP.get()
        stamped = False
        try:
            async with self._writer(), self._sessions() as session, session.begin():
                yield session
                if stamp is not None:
                    await session.flush()
                    if session.info.get(_WROTE):
                        stamped = await stamp(session)
        except Exception as error:
            await self._keep_after_rollback(error)
            raise
        if stamped and stamp is not None:
            stamp.committed()

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        # Re-entrant for the task holding it: a transaction opened inside another one (before
        # the outer one has touched the database) goes ahead, as it did without this lock.
        task = asyncio.current_task()
        if self._write_lock is None or self._writer_task is task:
            yield
            return
        async with self._write_lock:
            self._writer_task = task
            try:
                yield
            finally:
                self._writer_task = None

    @asynccontextmanager
    async def reading(self, *, streamed: bool = False) -> AsyncIterator[AsyncSession]:
        """A session that only reads; writing in it is refused.

        On SQLite its transaction does not queue for the write lock as every other transaction
        does, so the reads of many updates at once do not wait for each other's writes. On
        PostgreSQL its statements run without BEGIN and COMMIT (autocommit): under READ
        COMMITTED each statement sees the latest commits with or without a transaction around
        it, and those two round trips were as many as the statements of most reads. A
        `streamed` read (session.stream, a server-side cursor) needs a transaction: it gets one.
        """
        sessions = self._streamers if streamed else self._readers
        async with sessions() as session, session.begin():
            yield session

    async def _keep_after_rollback(self, error: Exception) -> None:
        """Rows an exception must not take down with it, e.g. the audit entry of a refusal."""
        rows = getattr(error, "rows_to_keep", None)
        if rows:
            async with self._sessions() as session, session.begin():
                session.add_all(rows)

    async def wait_until_available(self, within: float = OUTAGE_SECONDS) -> bool:
        """Wait until the database answers again (True), or `within` seconds pass (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        pause = 0.1
        while True:
            try:
                async with self.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
                return True
            except Exception as error:
                if not unavailable(error):
                    raise
            if loop.time() + pause > deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def when_available(
        self, work: Callable[[], Awaitable[T]], within: float = OUTAGE_SECONDS
    ) -> T:
        """Do the work (its own transactions); while the database is away, wait for it and do
        it again, for up to `within` seconds. Only for work that is safe to repeat."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            try:
                return await work()
            except Exception as error:
                if not unavailable(error) or loop.time() > deadline:
                    raise
                logger.warning("the database is out of reach; waiting for it")
            await self.wait_until_available(max(deadline - loop.time(), 0.0))

    async def dispose(self) -> None:
        await self.engine.dispose()
