"""Which Telegram updates have been handled, so that none is handled twice after a crash.

The bot confirms an update to Telegram only once it has been handled (see .polling), so a
process killed at any moment loses none; but an update handled and not yet confirmed comes again
after the restart. Handling it again would apply it twice: a description typed once would also
become "what the school tried", a concern ticked once would be unticked again. So each chat's newest
handled update id is kept in the database (updates of one chat are handled in order, see
.processor), written in the same transaction as the update's first change (bot.core.db.STAMP), or
after its dialog state when it changed nothing else; an update at or below that id is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update

from bot.core.db import STAMP, Database, upsert
from bot.core.models import HandledUpdate


def chat_of(update: object) -> int | None:
    """The key updates are ordered and marked by: the chat, or the user for updates without
    one (a private chat's id is its user's)."""
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return update.effective_chat.id
        if update.effective_user is not None:
            return update.effective_user.id
    return None


@dataclass
class Mark:
    """The mark of one update; goes into the first transaction of its own task that writes."""

    ledger: HandledUpdates
    chat_id: int
    update_id: int
    task: asyncio.Task[object] | None = field(default_factory=asyncio.current_task)
    stored: bool = False

    async def __call__(self, session: AsyncSession) -> bool:
        # Tasks started while handling (a job woken, say) inherit the context: not theirs.
        if self.stored or asyncio.current_task() is not self.task:
            return False
        await _write(session, self.chat_id, self.update_id, answered=False)
        return True

    def committed(self) -> None:
        self.stored = True
        self.ledger.note(self.chat_id, self.update_id)


class HandledUpdates:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._newest: dict[int, int] = {}
        self._unanswered: set[int] = set()  # chats whose newest update's answer may be lost
        self._answered: dict[int, int] = {}  # chat -> its update answered, not yet written
        self._answering = asyncio.Lock()

    async def load(self) -> None:
        """What earlier processes handled; once, before the first update."""
        async with self._database.reading() as session:
            rows = list(
                await session.execute(
                    select(HandledUpdate.chat_id, HandledUpdate.update_id, HandledUpdate.answered)
                )
            )
        self._newest = {chat_id: update_id for chat_id, update_id, _answered in rows}
        self._unanswered = {chat_id for chat_id, _update_id, answered in rows if not answered}

    def seen(self, update: object) -> bool:
        """Handled before (Telegram delivers it again)."""
        chat_id = chat_of(update)
        if chat_id is None or not isinstance(update, Update):
            return False
        return update.update_id <= self._newest.get(chat_id, -1)

    def unanswered(self, update: object) -> bool:
        """Handled before a restart, but its answer may never have gone out: its change was
        stored, and the process died before the update was done with. Only a chat's newest
        can be (each of a chat's updates begins once the one before is done with)."""
        chat_id = chat_of(update)
        if chat_id not in self._unanswered or not isinstance(update, Update):
            return False
        return update.update_id == self._newest.get(chat_id)

    async def stored(self, mark: Mark) -> bool:
        """Whether the mark reached the database after all: a commit whose answer the
        connection lost (the database went away at that moment) may well have been made."""
        if mark.stored:
            return True
        async with self._database.reading() as session:
            newest = await session.scalar(
                select(HandledUpdate.update_id).where(HandledUpdate.chat_id == mark.chat_id)
            )
        if newest is not None and newest >= mark.update_id:
            mark.committed()
        return mark.stored

    def note(self, chat_id: int, update_id: int) -> None:
        self._newest[chat_id] = max(update_id, self._newest.get(chat_id, -1))

    @contextlib.contextmanager
    def handling(self, update: object) -> Iterator[Mark | None]:
        """While the update is handled, its first writing transaction also stores its mark."""
        chat_id = chat_of(update)
        if chat_id is None or not isinstance(update, Update):
            yield None
            return
        mark = Mark(self, chat_id, update.update_id)
        token = STAMP.set(mark)
        try:
            yield mark
        finally:
            STAMP.reset(token)

    async def settle(self, mark: Mark | None) -> None:
        """After the update and its dialog state: the mark, answered, if nothing stored it
        yet; else that it was answered, so that one delivered again after a crash is answered
        again only if it was not.

        That one more write is shared: while one batch is written, the updates settled
        meanwhile wait and go into the next one (at 40 updates in flight, a transaction per
        update was 5 % of the bot's CPU, and on PostgreSQL a commit's wait each)."""
        if mark is None:
            return
        if mark.stored:
            await self._write_answered(mark.chat_id, mark.update_id)
            return

        async def store() -> None:
            async with self._database.transaction() as session:
                await _write(session, mark.chat_id, mark.update_id, answered=True)

        await self._database.when_available(store)
        mark.committed()

    async def _write_answered(self, chat_id: int, update_id: int) -> None:
        self._answered[chat_id] = update_id
        async with self._answering:
            if self._answered.get(chat_id) != update_id:
                return  # the batch written while this one waited took it
            batch, self._answered = self._answered, {}

            async def store() -> None:
                async with self._database.transaction() as session:
                    await session.execute(
                        update(HandledUpdate)
                        .where(
                            tuple_(HandledUpdate.chat_id, HandledUpdate.update_id).in_(
                                list(batch.items())
                            )
                        )
                        .values(answered=True)
                    )

            await self._database.when_available(store)


async def _write(session: AsyncSession, chat_id: int, update_id: int, *, answered: bool) -> None:
    values = {"chat_id": chat_id, "update_id": update_id, "answered": answered}
    await upsert(session, HandledUpdate, values, ["chat_id"])
