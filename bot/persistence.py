"""python-telegram-bot persistence in the database: dialog states, user and chat data.

User and chat data hold dialog drafts (later: a child's details in a half-written referral), so
they are stored encrypted and must stay JSON-serialisable. Ended conversations and empty data are
deleted, not kept as empty rows.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select
from telegram.ext import BasePersistence, PersistenceInput
from telegram.ext._utils.types import CDCData, ConversationDict, ConversationKey

from bot.crypto import Cipher
from bot.db import Database, upsert
from bot.models import ChatData, ConversationState, UserData, conversation_key

Data = dict[str, Any]


class DatabasePersistence(BasePersistence[Data, Data, Data]):
    """Keeps what python-telegram-bot needs across restarts in the Round Table database."""

    def __init__(self, database: Database, cipher: Cipher) -> None:
        super().__init__(
            store_data=PersistenceInput(bot_data=False, callback_data=False),
            update_interval=60,
        )
        self._database = database
        self._cipher = cipher

    # Loading, once at start-up.

    async def get_user_data(self) -> dict[int, Data]:
        async with self._database.transaction() as session:
            rows = await session.execute(select(UserData.user_id, UserData.data))
            return {user_id: self._cipher.decrypt_json(data) for user_id, data in rows}

    async def get_chat_data(self) -> dict[int, Data]:
        async with self._database.transaction() as session:
            rows = await session.execute(select(ChatData.chat_id, ChatData.data))
            return {chat_id: self._cipher.decrypt_json(data) for chat_id, data in rows}

    async def get_conversations(self, name: str) -> ConversationDict:
        async with self._database.transaction() as session:
            rows = await session.execute(
                select(ConversationState.key, ConversationState.state).where(
                    ConversationState.handler == name
                )
            )
            return {tuple(json.loads(key)): state for key, state in rows}

    async def get_bot_data(self) -> Data:
        return {}

    async def get_callback_data(self) -> CDCData | None:
        return None

    # Writing, after every update (see bot.processor).

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        encoded_key = conversation_key(key)
        async with self._database.transaction() as session:
            if new_state is None:
                await session.execute(
                    delete(ConversationState).where(
                        ConversationState.handler == name, ConversationState.key == encoded_key
                    )
                )
                return
            await upsert(
                session,
                ConversationState,
                {"handler": name, "key": encoded_key, "state": new_state},
                ("handler", "key"),
            )

    async def update_user_data(self, user_id: int, data: Data) -> None:
        async with self._database.transaction() as session:
            if not data:
                await session.execute(delete(UserData).where(UserData.user_id == user_id))
                return
            values = {"user_id": user_id, "data": self._cipher.encrypt_json(data)}
            await upsert(session, UserData, values, ("user_id",))

    async def update_chat_data(self, chat_id: int, data: Data) -> None:
        async with self._database.transaction() as session:
            if not data:
                await session.execute(delete(ChatData).where(ChatData.chat_id == chat_id))
                return
            values = {"chat_id": chat_id, "data": self._cipher.encrypt_json(data)}
            await upsert(session, ChatData, values, ("chat_id",))

    async def drop_user_data(self, user_id: int) -> None:
        await self.update_user_data(user_id, {})

    async def drop_chat_data(self, chat_id: int) -> None:
        await self.update_chat_data(chat_id, {})

    async def update_bot_data(self, data: Data) -> None:
        """Not stored: bot-wide state lives in proper tables."""

    async def update_callback_data(self, data: CDCData) -> None:
        """Not stored: callback data is short strings, parsed by each dialog."""

    async def refresh_user_data(self, user_id: int, user_data: Data) -> None:
        """Nothing to refresh: this process is the only writer while it is active."""

    async def refresh_chat_data(self, chat_id: int, chat_data: Data) -> None:
        """Nothing to refresh: this process is the only writer while it is active."""

    async def refresh_bot_data(self, bot_data: Data) -> None:
        """Bot data is not stored."""

    async def flush(self) -> None:
        """Every write is committed when made; nothing is buffered."""
