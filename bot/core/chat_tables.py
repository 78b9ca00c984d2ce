"""The tables of the chats' own state: python-telegram-bot's conversations and dialog drafts
(bot.transport.telegram.persistence) and the ledger of handled updates
(bot.transport.telegram.ledger)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, LargeBinary, String, true
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.base import Base


def conversation_key(key: tuple[int | str, ...]) -> str:
    """How a python-telegram-bot conversation key (chat id, user id) is stored."""
    return json.dumps(list(key))


class ConversationState(Base):
    """python-telegram-bot conversation state, one row per live conversation."""

    __tablename__ = "conversation_states"

    handler: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[Any] = mapped_column(JSON)


class UserData(Base):
    """python-telegram-bot user_data (dialog drafts), encrypted at rest."""

    __tablename__ = "user_data"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ChatData(Base):
    """python-telegram-bot chat_data, encrypted at rest."""

    __tablename__ = "chat_data"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class HandledUpdate(Base):
    """The newest Telegram update handled for a chat (updates of a chat are handled in order),
    written in the same transaction as the update's first change: an update Telegram delivers
    again after a crash, because it was handled but not yet confirmed, is not handled twice."""

    __tablename__ = "handled_updates"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger)
    # Its answer went out (written once the update is done with, bot.transport.telegram.ledger): one
    # delivered again after a crash whose answer may not have is answered then
    # (bot.transport.telegram.processor).
    answered: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
