"""What every command of `roundtable` shares: the one-line error, and the database brought to the
newest schema, opened for one piece of work and closed again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import migrate as migrations
from bot.core.config import Settings
from bot.core.db import Database

T = TypeVar("T")


class CliError(Exception):
    """A problem to report in one line, without a traceback."""


async def open_database(settings: Settings) -> Database:
    """The database, brought to the newest schema (a no-op when it already is)."""
    if settings.is_embedded_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    try:
        await migrations.upgrade(database)
    except (OSError, DBAPIError) as error:
        await database.dispose()
        raise CliError(
            f"ROUNDTABLE_DATABASE_URL: cannot use the database ({reason(error)})"
        ) from None
    except BaseException:
        await database.dispose()
        raise
    return database


async def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`work` in one transaction of the database, which is closed again afterwards."""
    database = await open_database(settings)
    try:
        async with database.transaction() as session:
            return await work(session)
    finally:
        await database.dispose()


def reason(error: BaseException) -> str:
    """The first line of what the database driver said (not SQLAlchemy's wrapping of it)."""
    return str(getattr(error, "orig", None) or error).splitlines()[0]
