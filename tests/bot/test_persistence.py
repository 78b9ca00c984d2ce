"""Dialog state in the database: survives a new process, encrypted, and cleaned up when done."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, func, select, text

from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import ConversationState, UserData
from bot.transport.telegram.persistence import DatabasePersistence


async def test_dialog_state_and_drafts_come_back_after_a_restart(
    database: Database, cipher: Cipher
) -> None:
    before = DatabasePersistence(database, cipher)
    await before.update_conversation("join", (42, 42), "choosing_language")
    await before.update_user_data(42, {"invite": {"new_name": "ZŠ Kamenná"}})
    await before.update_chat_data(42, {"page": 2})

    after = DatabasePersistence(database, cipher)
    assert await after.get_conversations("join") == {(42, 42): "choosing_language"}
    assert await after.get_conversations("invite") == {}
    assert await after.get_user_data() == {42: {"invite": {"new_name": "ZŠ Kamenná"}}}
    assert await after.get_chat_data() == {42: {"page": 2}}


async def test_drafts_are_encrypted_at_rest(database: Database, cipher: Cipher) -> None:
    persistence = DatabasePersistence(database, cipher)
    await persistence.update_user_data(7, {"draft": "Jan Novák"})
    async with database.transaction() as session:
        raw = await session.scalar(text("SELECT data FROM user_data"))
    assert b"Nov" not in bytes(raw)
    assert cipher.decrypt_json(bytes(raw)) == {"draft": "Jan Novák"}


async def test_ended_dialogs_and_empty_drafts_leave_no_rows(
    database: Database, cipher: Cipher
) -> None:
    persistence = DatabasePersistence(database, cipher)
    await persistence.update_conversation("join", (1, 1), "choosing_language")
    await persistence.update_conversation("join", (1, 1), "choosing_language")
    await persistence.update_user_data(1, {"draft": 1})
    await persistence.update_conversation("join", (1, 1), None)
    await persistence.update_user_data(1, {})
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(ConversationState)) == 0
        assert await session.scalar(select(func.count()).select_from(UserData)) == 0


async def test_a_rounds_changes_take_one_transaction_and_unchanged_state_none(
    database: Database, cipher: Cipher
) -> None:
    """python-telegram-bot hands over a round's changes in calls made all at once."""
    statements: list[str] = []
    begins: list[int] = []

    def seen(_connection: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement.split(maxsplit=1)[0].upper())

    def began(_connection: object) -> None:
        begins.append(1)

    persistence = DatabasePersistence(database, cipher)
    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    event.listen(engine, "begin", began)
    try:
        await asyncio.gather(
            persistence.update_conversation("refer", (5, 5), "name"),
            persistence.update_conversation("join", (5, 5), None),
            persistence.update_user_data(5, {"draft": 1}),
            persistence.update_chat_data(5, {"page": 1}),
        )
        writes = [s for s in statements if s in ("INSERT", "UPDATE", "DELETE")]
        assert writes == ["INSERT", "DELETE", "INSERT", "INSERT"]
        assert len(begins) == 1
        statements.clear()
        # The same again, as after an update that changed nothing: nothing is written.
        await asyncio.gather(
            persistence.update_conversation("refer", (5, 5), "name"),
            persistence.update_user_data(5, {"draft": 1}),
            persistence.update_chat_data(5, {"page": 1}),
        )
        assert statements == []
        assert len(begins) == 1
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        event.remove(engine, "begin", began)

    after = DatabasePersistence(database, cipher)
    assert await after.get_conversations("refer") == {(5, 5): "name"}
    assert await after.get_user_data() == {5: {"draft": 1}}
    # What was loaded counts as written: the same value is not written again.
    await after.update_user_data(5, {"draft": 1})
    await after.update_user_data(5, {"draft": 2})
    assert await DatabasePersistence(database, cipher).get_user_data() == {5: {"draft": 2}}


async def test_going_back_to_the_stored_value_within_a_round_wins(
    database: Database, cipher: Cipher
) -> None:
    persistence = DatabasePersistence(database, cipher)
    await persistence.update_user_data(6, {"step": 1})
    await asyncio.gather(
        persistence.update_user_data(6, {"step": 2}),
        persistence.update_user_data(6, {"step": 1}),
    )
    assert await DatabasePersistence(database, cipher).get_user_data() == {6: {"step": 1}}
