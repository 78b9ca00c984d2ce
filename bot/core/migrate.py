"""Bringing a database to the newest schema with Alembic, from inside the running process.

Alembic is loaded only when there is something to migrate: a bot started on an up-to-date
database does not carry its 10 MB.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.core.db import Database

if TYPE_CHECKING:
    from collections.abc import Callable

    from alembic.config import Config
    from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in bot/core/migrations; tests/bot/test_db.py checks it against Alembic's head.
HEAD = "0014"


def alembic_config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the module's docstring

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# Any constant will do: it names the lock that keeps two starting processes from migrating at once.
MIGRATION_LOCK = 7_242_001


async def upgrade(database: Database) -> None:
    """Apply every migration not yet applied. Safe to run at each start, by several processes."""
    if await current_revision(database) == HEAD:
        return

    def _upgrade(connection: Connection) -> None:
        from alembic import command  # noqa: PLC0415 - see the module's docstring

        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with database.engine.connect() as connection:
        await connection.run_sync(_in_transaction, _upgrade)


def _in_transaction(connection: Connection, work: Callable[[Connection], None]) -> None:
    """Run the migrations in one transaction. On SQLite, with foreign keys off meanwhile: a
    migration that rebuilds a table others point to (batch mode) would fail on them, and
    SQLite turns them off only outside a transaction; they are checked before the commit."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            work(connection)
            if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError("a migration broke a foreign key")
    finally:
        if sqlite:
            _pragma(connection, "PRAGMA foreign_keys=ON")


def _pragma(connection: Connection, statement: str) -> None:
    """A statement on the driver's connection, outside any transaction SQLAlchemy would begin."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


async def current_revision(database: Database) -> str | None:
    """The revision the database is at; None for a new database."""
    try:
        async with database.engine.connect() as connection:
            found = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:  # no such table yet, or the database cannot be used: upgrade will say
        return None
    return None if found is None else str(found)
