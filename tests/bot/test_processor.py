"""Updates of one chat run in order; updates of different chats run side by side."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import event
from sqlalchemy.orm import Session
from telegram import Chat, Message, Update, User

from bot.core.db import Database
from bot.core.models import District, HandledUpdate
from bot.transport.telegram.ledger import HandledUpdates
from bot.transport.telegram.processor import OrderedUpdateProcessor, note_telegram_call


def _update(update_id: int, chat_id: int) -> Update:
    user = User(chat_id, "Person", is_bot=False)
    chat = Chat(chat_id, Chat.PRIVATE)
    message = Message(update_id, datetime(2026, 11, 23, tzinfo=UTC), chat, from_user=user, text="x")
    return Update(update_id, message=message)


def _answer_lost(_session: Session) -> None:
    """The commit is made; the answer to it is what the broken connection loses."""
    raise ConnectionResetError(104, "Connection reset by peer")


async def test_one_chat_in_order_other_chats_alongside() -> None:
    processor = OrderedUpdateProcessor(max_concurrent_updates=8)
    log: list[str] = []
    first_may_finish = asyncio.Event()
    saved: list[int] = []

    async def save() -> None:
        saved.append(len(log))

    processor.after_each_update(save)

    async def handle(name: str, wait: asyncio.Event | None = None) -> None:
        log.append(f"{name} started")
        if wait is not None:
            await wait.wait()
        log.append(f"{name} done")

    tasks = [
        asyncio.create_task(
            processor.process_update(_update(1, 10), handle("a1", first_may_finish))
        ),
        asyncio.create_task(processor.process_update(_update(2, 10), handle("a2"))),
        asyncio.create_task(processor.process_update(_update(3, 20), handle("b1"))),
    ]
    # Chat 20 is not held up by chat 10's slow update.
    await asyncio.wait_for(tasks[2], timeout=5)
    assert "a2 started" not in log
    first_may_finish.set()
    await asyncio.gather(*tasks)
    assert log.index("a1 done") < log.index("a2 started")
    assert len(saved) == 3  # state saved after every update
    assert processor._locks == {}  # no memory kept for idle chats


async def test_a_flooding_chat_does_not_take_the_other_chats_slots() -> None:
    processor = OrderedUpdateProcessor(max_concurrent_updates=2)
    released = asyncio.Event()
    done: list[str] = []

    async def handle(name: str, wait: asyncio.Event | None = None) -> None:
        if wait is not None:
            await wait.wait()
        done.append(name)

    flood = [
        asyncio.create_task(processor.process_update(_update(i, 10), handle(f"a{i}", released)))
        for i in range(1, 6)
    ]
    other = asyncio.create_task(processor.process_update(_update(9, 20), handle("b")))
    await asyncio.wait_for(other, timeout=5)
    assert done == ["b"]
    released.set()
    await asyncio.gather(*flood)
    assert done == ["b", "a1", "a2", "a3", "a4", "a5"]


async def test_an_update_that_found_the_database_away_is_handled_again_if_nothing_came_of_it(
    database: Database,
) -> None:
    """The error handler asks retry_later: yes when the update neither answered anything nor
    stored its change (it is handled again once the database answers), no otherwise."""
    processor = OrderedUpdateProcessor(max_concurrent_updates=8)
    processor.keep_ledger(HandledUpdates(database))
    answers: dict[int, list[bool]] = {1: [], 2: [], 3: []}

    async def handle(update: object) -> None:
        assert isinstance(update, Update)
        first = not answers[update.update_id]
        if first and update.update_id == 2:
            note_telegram_call()  # it answered before the database went away
        if first and update.update_id == 3:
            async with database.transaction() as session:  # its change is stored
                session.add(District(name=f"D{update.update_id}", created_at=datetime.now(UTC)))
        answers[update.update_id].append(processor.retry_later(update) if first else False)

    processor.retry_when_back(database, handle)
    for update_id in answers:
        update = _update(update_id, 10 * update_id)
        await processor.process_update(update, handle(update))
    assert answers == {1: [True, False], 2: [False], 3: [False]}


async def test_an_update_not_handled_again_because_it_was_stored_is_answered_instead(
    database: Database,
) -> None:
    """Its commit was made, but the connection broke before the bot heard so: handled again it
    would be done twice, so the person is told where they are instead. So is one delivered
    again after a restart whose answer the killed process may not have sent; not one it
    answered, nor an earlier one of the chat (each began once the one before was done with)."""
    processor = OrderedUpdateProcessor(max_concurrent_updates=8)
    ledger = HandledUpdates(database)
    processor.keep_ledger(ledger)
    handled: list[int] = []
    told: list[int] = []

    async def handle(update: object) -> None:
        assert isinstance(update, Update)
        handled.append(update.update_id)
        if update.update_id == 5:
            try:
                async with database.transaction() as session:
                    event.listen(session.sync_session, "after_commit", _answer_lost)
                    session.add(District(name="D5", created_at=datetime.now(UTC)))
            except ConnectionResetError:
                assert processor.retry_later(update)  # as the error handler asks

    async def tell(update: object) -> None:
        assert isinstance(update, Update)
        told.append(update.update_id)

    processor.retry_when_back(database, handle)
    processor.answer_instead(tell)
    async with database.transaction() as session:  # as a process killed meanwhile left it
        session.add(HandledUpdate(chat_id=30, update_id=2, answered=False))  # killed after commit
        session.add(HandledUpdate(chat_id=40, update_id=4))  # killed after it was done with
    await ledger.load()
    for update_id, chat_id in ((1, 30), (2, 30), (3, 30), (4, 40), (5, 50)):
        update = _update(update_id, chat_id)
        await processor.process_update(update, handle(update))
    assert (handled, told) == ([3, 5], [2, 5])
