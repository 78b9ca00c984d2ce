"""Handled updates are marked with their first change, so a redelivered one is known."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from telegram import Chat, Message, Update, User

from bot.core.db import Database
from bot.core.models import District, HandledUpdate
from bot.transport.telegram.ledger import HandledUpdates, Mark
from tests.bot.sql import statements


def _update(update_id: int, chat_id: int) -> Update:
    user = User(chat_id, "Person", is_bot=False)
    chat = Chat(chat_id, Chat.PRIVATE)
    message = Message(update_id, datetime(2026, 11, 23, tzinfo=UTC), chat, from_user=user, text="x")
    return Update(update_id, message=message)


async def _marks(database: Database) -> dict[int, int]:
    async with database.transaction() as session:
        rows = await session.execute(select(HandledUpdate.chat_id, HandledUpdate.update_id))
        return {chat_id: update_id for chat_id, update_id in rows}


async def test_the_mark_goes_with_the_first_change_and_only_with_it(database: Database) -> None:
    ledger = HandledUpdates(database)
    with ledger.handling(_update(5, 42)) as mark:
        async with database.transaction() as session:  # reads only: no mark
            await session.scalar(select(District.id))
        assert await _marks(database) == {}
        with pytest.raises(RuntimeError):  # a change rolled back takes its mark with it
            async with database.transaction() as session:
                session.add(District(name="Cheb", created_at=datetime.now(UTC)))
                raise RuntimeError
        assert await _marks(database) == {}

        async def job() -> None:  # a task started while handling is not the update's
            async with database.transaction() as session:
                session.add(District(name="Aš", created_at=datetime.now(UTC)))

        await asyncio.create_task(job())
        assert await _marks(database) == {}
        async with database.transaction() as session:
            session.add(District(name="Cheb", created_at=datetime.now(UTC)))
        assert await _marks(database) == {42: 5}
    assert mark is not None and mark.stored
    killed = HandledUpdates(database)  # a process killed before the update was done with
    await killed.load()
    assert killed.unanswered(_update(5, 42))
    await ledger.settle(mark)  # done with: its answer went out
    assert await _marks(database) == {42: 5}

    later = HandledUpdates(database)
    await later.load()
    assert later.seen(_update(5, 42)) and later.seen(_update(4, 42))
    assert not later.seen(_update(6, 42)) and not later.seen(_update(5, 43))
    assert not later.unanswered(_update(5, 42))


async def test_an_update_that_changed_nothing_is_marked_after_its_dialog_state(
    database: Database,
) -> None:
    ledger = HandledUpdates(database)
    with ledger.handling(_update(9, 42)) as mark:
        async with database.transaction() as session:
            await session.scalar(select(District.id))
    assert await _marks(database) == {}
    await ledger.settle(mark)
    assert await _marks(database) == {42: 9}
    assert ledger.seen(_update(9, 42))
    later = HandledUpdates(database)
    await later.load()
    assert later.seen(_update(9, 42)) and not later.unanswered(_update(9, 42))


async def test_updates_done_with_at_the_same_time_are_noted_answered_together(
    database: Database,
) -> None:
    """Each update that changed something is noted answered once done with; while one such
    write is made, the updates done with meanwhile wait and share the next one."""
    ledger = HandledUpdates(database)
    chats = range(100, 112)

    async def handled(chat_id: int) -> Mark | None:
        with ledger.handling(_update(7, chat_id)) as mark:
            async with database.transaction() as session:
                session.add(District(name=f"District {chat_id}", created_at=datetime.now(UTC)))
        return mark

    marks = [await asyncio.create_task(handled(chat_id)) for chat_id in chats]
    with statements(database) as seen:
        await asyncio.gather(*(ledger.settle(mark) for mark in marks))
    writes = [sql for sql in seen if sql.startswith("UPDATE handled_updates")]
    assert len(writes) == 2, writes  # the first one's, then all the others' at once

    later = HandledUpdates(database)
    await later.load()
    assert not any(later.unanswered(_update(7, chat_id)) for chat_id in chats)
    assert all(later.seen(_update(7, chat_id)) for chat_id in chats)
