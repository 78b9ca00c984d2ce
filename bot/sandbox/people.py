"""Simulated Telegram users: they message the bot, press its buttons and read its replies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .callbacks import CallbackRegistry
from .chat import ChatLog
from .files import FileKind, FileStore, StoredFile
from .html_text import utf16_len
from .models import BotMessage, CallbackAnswer, ChatEvent, EventKind, inline_keyboard

_BOT_EVENT_KINDS: frozenset[EventKind] = frozenset({"sent", "edited", "deleted", "document"})
_MESSAGE_EVENT_KINDS: frozenset[EventKind] = frozenset({"sent", "edited", "document"})
# Tiny stand-ins for media a person may send; the bot only needs valid file ids.
_PHOTO_BYTES = b"\xff\xd8\xff\xe0sandbox-photo\xff\xd9"
_VOICE_BYTES = b"OggSsandbox-voice"
_STICKER_BYTES = b"RIFFsandbox-stickerWEBP"
_CHAT_INSTANCE_BASE = 6_000_000_000_000_000_000


@dataclass(frozen=True)
class PersonContext:
    """What a Person needs from the sandbox."""

    bot_user: dict[str, Any]
    files: FileStore
    callbacks: CallbackRegistry
    clock: Callable[[], float]
    push_update: Callable[[dict[str, Any]], Awaitable[int]]


class Person:
    """A Telegram user in a private chat with the bot (chat id == user id)."""

    def __init__(
        self,
        context: PersonContext,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "cs",
    ) -> None:
        self.user_id = user_id
        self.chat_id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.blocked = False
        self.last_update_id: int | None = None  # of the newest update this person made
        self._context = context
        self._consumed_events = 0
        self.chat = ChatLog(
            chat=self._chat_dict(),
            user=self._user_dict(),
            bot_user=context.bot_user,
            user_name=first_name,
        )

    @property
    def messages(self) -> dict[int, BotMessage]:
        return self.chat.messages

    @property
    def events(self) -> list[ChatEvent]:
        return self.chat.events

    def block(self) -> None:
        """Block the bot: from now on it gets 403 for anything it sends here."""
        self.blocked = True

    def unblock(self) -> None:
        self.blocked = False

    async def block_bot(self) -> None:
        """Block the bot and let it know, as Telegram does with a my_chat_member update."""
        self.block()
        self.last_update_id = await self._context.push_update(
            {"my_chat_member": self._membership_change("kicked")}
        )

    def _membership_change(self, status: str) -> dict[str, Any]:
        bot_user = self._context.bot_user
        return {
            "chat": self._chat_dict(),
            "from": self._user_dict(),
            "date": int(self._context.clock()),
            "old_chat_member": {"user": bot_user, "status": "member"},
            "new_chat_member": {"user": bot_user, "status": status, "until_date": 0},
        }

    def transcript(self) -> str:
        return self.chat.transcript()

    def documents(self) -> list[tuple[str, bytes]]:
        """(file name, content) of every document the bot sent to this chat, in order."""
        found: list[tuple[str, bytes]] = []
        for message in self.messages.values():
            if not message.from_bot or message.document is None:
                continue
            stored = self._context.files.by_id(message.document["file_id"])
            if stored is not None:
                found.append((stored.file_name or stored.file_id, stored.content))
        return found

    def document_of(self, message: BotMessage) -> tuple[str, bytes, str | None]:
        """(file name, content, MIME type) of the document a bot message carries."""
        assert message.document is not None, "the message has no document"
        stored = self._context.files.by_id(message.document["file_id"])
        assert stored is not None
        return stored.file_name or stored.file_id, stored.content, stored.mime_type

    def last_bot_message(self) -> BotMessage:
        message = self.chat.last_bot_message()
        if message is None:
            raise AssertionError(self._failure(f"The bot has sent {self.first_name} nothing."))
        return message

    # --- acting ---------------------------------------------------------------------------

    async def send_text(self, text: str) -> int:
        """Send a text message; a leading "/command" gets a bot_command entity like on Telegram."""
        entities: list[dict[str, Any]] = []
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(command)})
        return await self._send(text=text, entities=entities)

    async def send_document(
        self,
        file_name: str,
        content: bytes,
        mime_type: str = "application/octet-stream",
        caption: str | None = None,
        *,
        size_known: bool = True,
    ) -> int:
        """Upload a file; `size_known=False` leaves its size out, as Telegram may."""
        stored = self._context.files.add(
            content,
            kind="document",
            file_name=file_name,
            mime_type=mime_type,
            size_known=size_known,
        )
        return await self._send(document=stored.document_dict(), caption=caption)

    async def send_photo(self) -> int:
        stored = self._store(_PHOTO_BYTES, "photo")
        photo = [_media(stored, width=90, height=90)]
        return await self._send(extra={"photo": photo})

    async def send_voice(self) -> int:
        stored = self._store(_VOICE_BYTES, "voice")
        voice = _media(stored, duration=1, mime_type="audio/ogg")
        return await self._send(extra={"voice": voice})

    async def send_sticker(self) -> int:
        stored = self._store(_STICKER_BYTES, "sticker")
        sticker = _media(
            stored,
            type="regular",
            width=512,
            height=512,
            is_animated=False,
            is_video=False,
            emoji="👍",
        )
        return await self._send(extra={"sticker": sticker})

    async def press(
        self,
        label: str,
        *,
        message_id: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the agreed test interface
    ) -> CallbackAnswer:
        """Press the inline button labelled `label` and wait for the bot's callback answer.

        An exact label match wins over a partial one. Without message_id the newest bot
        message that has such a button is used.
        """
        message, button = self._find_button(label, message_id)
        data = button.get("callback_data")
        if not isinstance(data, str):
            failure = f"Button [{button.get('text')}] has no callback data."
            raise AssertionError(self._failure(failure))
        description = f"{self.first_name} pressed [{button.get('text')}]"
        return await self._send_callback(message, data, description, timeout)

    async def press_data(
        self,
        data: str,
        *,
        message_id: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the agreed test interface
    ) -> CallbackAnswer:
        """Send arbitrary (possibly forged or stale) callback data from a bot message."""
        message = self._message_for_press(message_id)
        description = f"{self.first_name} sent callback data {data!r}"
        return await self._send_callback(message, data, description, timeout)

    async def tap(self, data: str, *, message_id: int) -> asyncio.Future[CallbackAnswer]:
        """Press a button with this callback data without waiting: the future gets the bot's
        answer if it ever comes, and `last_update_id` is the press's update (for people who,
        like real ones, watch the chat rather than the spinner)."""
        message = self._message_for_press(message_id)
        query_id, answer = self._context.callbacks.open()
        self.chat.record_action(f"{self.first_name} pressed a button ({data})")
        self.last_update_id = await self._context.push_update(
            {"callback_query": self._query(query_id, message, data)}
        )
        return answer

    # --- observing ------------------------------------------------------------------------

    async def next_event(self, timeout: float = 10.0) -> ChatEvent:  # noqa: ASYNC109
        """The next bot event (sent/edited/deleted/document) not yet consumed, in order."""
        return await self._next(_BOT_EVENT_KINDS, timeout)

    async def next_message(self, timeout: float = 10.0) -> BotMessage:  # noqa: ASYNC109
        """The message of the next sent/edited/document event; deletions are skipped."""
        event = await self._next(_MESSAGE_EVENT_KINDS, timeout)
        assert event.message is not None  # every message event carries its message
        return event.message

    # --- internals ------------------------------------------------------------------------

    async def _next(self, kinds: frozenset[EventKind], seconds: float) -> ChatEvent:
        event = await self.chat.changed.wait_for(lambda: self._take_event(kinds), seconds)
        if event is None:
            raise AssertionError(
                self._failure(f"No new bot activity for {self.first_name} within {seconds} s.")
            )
        return event

    def _take_event(self, kinds: frozenset[EventKind]) -> ChatEvent | None:
        # Consumes events up to and including the one returned; skipped ones stay consumed.
        events = self.chat.events
        while self._consumed_events < len(events):
            event = events[self._consumed_events]
            self._consumed_events += 1
            if event.kind in kinds:
                return event
        return None

    async def _send(
        self,
        *,
        text: str | None = None,
        entities: list[dict[str, Any]] | None = None,
        document: dict[str, Any] | None = None,
        caption: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        if self.blocked:
            raise AssertionError(f"{self.first_name} has blocked the bot; call unblock() first.")
        message = BotMessage(
            message_id=self.chat.new_message_id(),
            chat_id=self.chat_id,
            from_bot=False,
            date=int(self._context.clock()),
            text=text,
            html=None,
            caption=caption,
            reply_markup=None,
            document=document,
            protect_content=False,
            edited=False,
            deleted=False,
            entities=entities or [],
            extra=extra or {},
        )
        self.chat.add(message)
        self.last_update_id = await self._context.push_update(
            {"message": self.chat.to_dict(message)}
        )
        return message.message_id

    async def _send_callback(
        self, message: BotMessage, data: str, description: str, seconds: float
    ) -> CallbackAnswer:
        query_id, answer = self._context.callbacks.open()
        self.chat.record_action(description)
        query = self._query(query_id, message, data)
        self.last_update_id = await self._context.push_update({"callback_query": query})
        try:
            async with asyncio.timeout(seconds):
                return await answer
        except TimeoutError:
            self._context.callbacks.forget(query_id)
            failure = f"The bot did not answer the callback query within {seconds} s."
            raise AssertionError(self._failure(failure)) from None

    def _query(self, query_id: str, message: BotMessage, data: str) -> dict[str, Any]:
        return {
            "id": query_id,
            "from": self.chat.user,
            "message": self.chat.to_dict(message),
            "chat_instance": str(_CHAT_INSTANCE_BASE + self.chat_id),
            "data": data,
        }

    def _find_button(self, label: str, message_id: int | None) -> tuple[BotMessage, dict[str, Any]]:
        if message_id is not None:
            candidates = [self._message_for_press(message_id)]
        else:
            candidates = self.chat.bot_messages_newest_first()
        for message in candidates:
            button = self._match_button(message, label)
            if button is not None:
                return message, button
        raise AssertionError(self._failure(f"No button [{label}] to press."))

    def _match_button(self, message: BotMessage, label: str) -> dict[str, Any] | None:
        buttons = [button for row in inline_keyboard(message.reply_markup) for button in row]
        exact = [b for b in buttons if b.get("text") == label]
        if exact:
            return exact[0]
        partial = [b for b in buttons if label in str(b.get("text", ""))]
        if len(partial) > 1:
            labels = ", ".join(f"[{b.get('text')}]" for b in partial)
            raise AssertionError(self._failure(f"[{label}] is ambiguous: {labels}."))
        return partial[0] if partial else None

    def _message_for_press(self, message_id: int | None) -> BotMessage:
        if message_id is None:
            return self.last_bot_message()
        message = self.chat.messages.get(message_id)
        if message is None or message.deleted or not message.from_bot:
            raise AssertionError(self._failure(f"No bot message {message_id} to press on."))
        return message

    def _store(self, content: bytes, kind: FileKind) -> StoredFile:
        return self._context.files.add(content, kind=kind)

    def _failure(self, reason: str) -> str:
        return f"{reason}\nTranscript of the chat with {self.first_name}:\n{self.transcript()}"

    def _user_dict(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.user_id, "is_bot": False, "first_name": self.first_name}
        user.update(_present(last_name=self.last_name, username=self.username))
        user.update(_present(language_code=self.language_code))
        return user

    def _chat_dict(self) -> dict[str, Any]:
        chat: dict[str, Any] = {
            "id": self.chat_id,
            "type": "private",
            "first_name": self.first_name,
        }
        chat.update(_present(last_name=self.last_name, username=self.username))
        return chat


def _present(**fields: str | None) -> dict[str, str]:
    return {key: value for key, value in fields.items() if value is not None}


def _media(stored: StoredFile, **fields: Any) -> dict[str, Any]:
    """A photo size, voice note or sticker as Telegram describes one: the file's ids, what is
    particular to the kind, and its size."""
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        **fields,
        "file_size": stored.size,
    }
