"""python-telegram-bot persistence in the database: dialog states, user and chat data.

User and chat data hold dialog drafts (later: a child's details in a half-written referral), so
they are stored encrypted and must stay JSON-serialisable. Ended conversations and empty data are
deleted, not kept as empty rows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from telegram.ext import BasePersistence, PersistenceInput
from telegram.ext._utils.types import CDCData, ConversationDict, ConversationKey

from bot.core.crypto import Cipher
from bot.core.db import Database, upsert
from bot.core.models import ChatData, ConversationState, UserData, conversation_key

Data = dict[str, Any]
Write = Callable[[AsyncSession], Awaitable[None]]


class DatabasePersistence(BasePersistence[Data, Data, Data]):
    """Keeps what python-telegram-bot needs across restarts in the Round Table database."""

    def __init__(self, database: Database, cipher: Cipher) -> None:
        super().__init__(
            store_data=PersistenceInput(bot_data=False, callback_data=False),
            update_interval=60,
        )
        self._database = database
        self._cipher = cipher
        # What the database holds, as far as this process wrote or loaded it; and the changes
        # waiting for the transaction that is about to write them.
        self._written: dict[tuple[object, ...], object] = {}
        self._pending: dict[tuple[object, ...], tuple[object, Write]] = {}
        self._batch: asyncio.Future[None] | None = None

    # Loading, once at start-up.

    async def get_user_data(self) -> dict[int, Data]:
        return await self._load(UserData.user_id, UserData.data, "user_id")

    async def get_chat_data(self) -> dict[int, Data]:
        return await self._load(ChatData.chat_id, ChatData.data, "chat_id")

    async def get_conversations(self, name: str) -> ConversationDict:
        async with self._database.transaction() as session:
            rows = await session.execute(
                select(ConversationState.key, ConversationState.state).where(
                    ConversationState.handler == name
                )
            )
            states = {key: state for key, state in rows}
        for key, state in states.items():
            self._written[("conversation", name, key)] = state
        return {tuple(json.loads(key)): state for key, state in states.items()}

    async def _load(
        self,
        identifier: InstrumentedAttribute[int],
        encrypted: InstrumentedAttribute[bytes],
        name: str,
    ) -> dict[int, Data]:
        """The user or chat data by user or chat id, remembered as what the database holds."""
        async with self._database.transaction() as session:
            rows = await session.execute(select(identifier, encrypted))
            loaded = {key: self._cipher.decrypt_json(data) for key, data in rows}
        for key, data in loaded.items():
            self._written[(name, key)] = json.dumps(data, sort_keys=True) if data else None
        return loaded

    async def get_bot_data(self) -> Data:
        return {}

    async def get_callback_data(self) -> CDCData | None:
        return None

    # Writing, after every update (see bot.transport.telegram.processor). python-telegram-bot hands
    # over the changes of a round one call each, all at once; they are written in one transaction,
    # and a value that is what was last written or loaded is not written again.

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        encoded_key = conversation_key(key)

        async def write(session: AsyncSession) -> None:
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

        await self._write(("conversation", name, encoded_key), new_state, write)

    async def update_user_data(self, user_id: int, data: Data) -> None:
        await self._write_data(UserData, UserData.user_id, "user_id", user_id, data)

    async def update_chat_data(self, chat_id: int, data: Data) -> None:
        await self._write_data(ChatData, ChatData.chat_id, "chat_id", chat_id, data)

    async def _write_data(
        self,
        model: type[UserData] | type[ChatData],
        column: InstrumentedAttribute[int],
        name: str,
        identifier: int,
        data: Data,
    ) -> None:
        plain = json.dumps(data, sort_keys=True) if data else None

        async def write(session: AsyncSession) -> None:
            if plain is None:
                await session.execute(delete(model).where(column == identifier))
                return
            values = {name: identifier, "data": self._cipher.encrypt(plain.encode())}
            await upsert(session, model, values, (name,))

        await self._write((name, identifier), plain, write)

    async def _write(self, key: tuple[object, ...], value: object, write: Write) -> None:
        # Unchanged, and no other value on its way to the database, which this must replace.
        if key not in self._pending and key in self._written and self._written[key] == value:
            return
        self._pending[key] = (value, write)
        if self._batch is None:
            self._batch = asyncio.ensure_future(self._write_batch())
        # Shielded: one caller giving up must not cancel the others' writes.
        await asyncio.shield(self._batch)

    async def _write_batch(self) -> None:
        await asyncio.sleep(0)  # the other changes of this round join in
        batch, self._pending, self._batch = self._pending, {}, None

        async def write_all() -> None:
            async with self._database.transaction() as session:
                for _value, write in batch.values():
                    await write(session)

        # python-telegram-bot would drop a failed write for good: a database that went away
        # for a moment (a restart) is waited for, the writes are all upserts and deletes.
        await self._database.when_available(write_all)
        for key, (value, _write) in batch.items():
            self._written[key] = value

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
