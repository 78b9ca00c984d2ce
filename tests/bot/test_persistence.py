"""Dialog state in the database: survives a new process, encrypted, and cleaned up when done."""

from __future__ import annotations

from sqlalchemy import func, select, text

from bot.crypto import Cipher
from bot.db import Database
from bot.models import ConversationState, UserData
from bot.persistence import DatabasePersistence


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
