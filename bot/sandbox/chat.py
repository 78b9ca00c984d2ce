"""One private chat between the bot and a person: its messages, its events and its transcript."""

from __future__ import annotations

import copy
from typing import Any

from .models import BotMessage, ChatEvent, EventKind, inline_keyboard
from .waiting import Signal

# User message content that BotMessage has no own field for, as shown in transcripts.
_MEDIA_DESCRIPTIONS = {"photo": "a photo", "voice": "a voice message", "sticker": "a sticker"}


class ChatLog:
    """Messages by id plus the ordered event list; `changed` fires on every new event."""

    def __init__(
        self,
        *,
        chat: dict[str, Any],
        user: dict[str, Any],
        bot_user: dict[str, Any],
        user_name: str,
    ) -> None:
        self.chat = chat
        self.user = user
        self.bot_user = bot_user
        self.user_name = user_name
        self.messages: dict[int, BotMessage] = {}
        self.events: list[ChatEvent] = []
        self.changed = Signal()
        self._last_message_id = 0

    def new_message_id(self) -> int:
        # In a private chat the bot's and the person's messages share one id sequence.
        self._last_message_id += 1
        return self._last_message_id

    def add(self, message: BotMessage) -> None:
        """Store a new message and record it as an event."""
        if message.from_bot:
            kind: EventKind = "document" if message.document is not None else "sent"
        else:
            kind = "user"
        self.update(message, kind)

    def update(self, message: BotMessage, kind: EventKind) -> None:
        """Store the message's current state and record what happened to it."""
        self.messages[message.message_id] = message
        # Events keep a snapshot: what the person saw then, not after later edits.
        snapshot = copy.deepcopy(message)
        self._record(ChatEvent(kind, snapshot, self._describe(kind, message)))

    def record_action(self, description: str) -> None:
        """Record something the person did that is not a message, e.g. a button press."""
        self._record(ChatEvent("user", None, description))

    def last_bot_message(self) -> BotMessage | None:
        bot_messages = [m for m in self.messages.values() if m.from_bot and not m.deleted]
        return max(bot_messages, key=lambda m: m.message_id, default=None)

    def bot_messages_newest_first(self) -> list[BotMessage]:
        bot_messages = [m for m in self.messages.values() if m.from_bot and not m.deleted]
        return sorted(bot_messages, key=lambda m: m.message_id, reverse=True)

    def to_dict(self, message: BotMessage) -> dict[str, Any]:
        """The Telegram Message object for the message's current state."""
        data: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self.bot_user if message.from_bot else self.user,
            "chat": self.chat,
            "date": message.date,
        }
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        _put_text(data, "text", "entities", message.text, message.entities)
        _put_text(data, "caption", "caption_entities", message.caption, message.caption_entities)
        if message.document is not None:
            data["document"] = message.document
        # Telegram echoes only inline keyboards back in the Message object.
        if inline_keyboard(message.reply_markup):
            data["reply_markup"] = message.reply_markup
        if message.protect_content:
            data["has_protected_content"] = True
        data.update(message.extra)
        return copy.deepcopy(data)

    def transcript(self) -> str:
        lines: list[str] = []
        for event in self.events:
            lines.append(event.text)
            if event.kind in ("sent", "edited", "document") and event.message is not None:
                lines.extend(_button_lines(event.message))
        return "\n".join(lines)

    def _record(self, event: ChatEvent) -> None:
        self.events.append(event)
        self.changed.notify()

    def _describe(self, kind: EventKind, message: BotMessage) -> str:
        if kind == "deleted":
            whose = "a message" if message.from_bot else f"a message of {self.user_name}"
            return f"Bot deleted {whose}"
        author = "Bot" if message.from_bot else self.user_name
        return _one_line(_describe_content(author, kind, message))


def _describe_content(author: str, kind: EventKind, message: BotMessage) -> str:
    prefix = f"{author} (edited)" if kind == "edited" else author
    if message.document is not None:
        name = message.document.get("file_name", "without a name")
        caption = f": {message.caption}" if message.caption else ""
        return f"{prefix} sent document {name}{caption}"
    for key, label in _MEDIA_DESCRIPTIONS.items():
        if key in message.extra:
            return f"{prefix} sent {label}"
    return f"{prefix}: {message.text or ''}"


def _button_lines(message: BotMessage) -> list[str]:
    return ["   " + " ".join(f"[{text}]" for text, _ in row) for row in message.buttons()]


def _one_line(text: str) -> str:
    """Continuation lines indented under their speaker, so a transcript reads like the chat."""
    return "\n    ".join(line for line in text.splitlines() if line.strip())


def _put_text(
    data: dict[str, Any], key: str, entities_key: str, text: str | None, entities: list[Any]
) -> None:
    if text is None:
        return
    data[key] = text
    if entities:
        data[entities_key] = entities
