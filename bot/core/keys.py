"""Re-encryption of every encrypted column, for `roundtable rotate-key`.

The columns are those in `bot.core.models.ENCRYPTED_COLUMNS`. Each table is walked in primary-key
order, a batch of rows per transaction, so that neither a long transaction nor the whole table in
memory is needed and the same code works on SQLite and PostgreSQL. A batch's rows are locked for
update (PostgreSQL; SQLite's BEGIN IMMEDIATE takes the write lock anyway), so a bot running
meanwhile never has a newer value overwritten with a re-encrypted older one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from bot.core.crypto import Cipher, InvalidToken
from bot.core.db import Database
from bot.core.models import ENCRYPTED_COLUMNS

BATCH_SIZE = 500


class UndecryptableValue(Exception):
    """A stored value that none of the given keys decrypts; names where it is, never what."""

    def __init__(self, table: str, column: str, primary_key: str, value: object) -> None:
        super().__init__(f"{table}.{column} of the row with {primary_key} {value}")
        self.table = table
        self.column = column
        self.primary_key = primary_key
        self.value = value


async def reencrypt(
    database: Database, cipher: Cipher, *, batch_size: int = BATCH_SIZE
) -> dict[str, int]:
    """Decrypt every encrypted value with any of the cipher's keys and encrypt it with the first.

    Returns how many values were re-encrypted per table. Raises UndecryptableValue at the first
    value no key decrypts; the batch it was in is rolled back, earlier batches stay committed
    (they are readable with the cipher's first key, which is in the key list).
    """
    return await _walk(database, cipher.rotate, batch_size, write=True)


async def check(
    database: Database, cipher: Cipher, *, batch_size: int = BATCH_SIZE
) -> dict[str, int]:
    """Raise UndecryptableValue unless the cipher decrypts every encrypted value; change nothing.

    Returns how many values there are per table.
    """
    return await _walk(database, cipher.decrypt, batch_size, write=False)


async def _walk(
    database: Database, transform: Callable[[bytes], bytes], batch_size: int, *, write: bool
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for model, key_name, column in ENCRYPTED_COLUMNS:
        key = getattr(model, key_name)
        count = 0
        last: Any = None
        while True:
            async with database.transaction() as session:
                query = (
                    select(key, getattr(model, column))
                    .where(getattr(model, column).is_not(None))  # optional fields left empty
                    .order_by(key)
                    .limit(batch_size)
                )
                if last is not None:
                    query = query.where(key > last)
                if write:
                    query = query.with_for_update()
                rows = (await session.execute(query)).all()
                changed: list[dict[str, Any]] = []
                for value, token in rows:
                    try:
                        changed.append({key_name: value, column: transform(token)})
                    except InvalidToken:
                        raise UndecryptableValue(
                            model.__tablename__, column, key_name, value
                        ) from None
                if write and changed:
                    # One executemany UPDATE by primary key for the whole batch.
                    await session.execute(update(model), changed)
            count += len(rows)
            if len(rows) < batch_size:
                break
            last = rows[-1][0]
        counts[model.__tablename__] = count
    return counts
