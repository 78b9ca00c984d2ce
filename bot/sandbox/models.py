"""Plain data the sandbox hands to tests: chat messages, chat events, answers and statistics."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal["sent", "edited", "deleted", "document", "user"]


@dataclass
class BotMessage:
    """A message in a chat, as the chat currently shows it (the bot's or the person's)."""

    message_id: int
    chat_id: int
    from_bot: bool
    date: int
    text: str | None
    html: str | None
    caption: str | None
    reply_markup: dict[str, Any] | None
    document: dict[str, Any] | None
    protect_content: bool
    edited: bool
    deleted: bool
    # Beyond the agreed interface: what Telegram also puts into the Message object.
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    edit_date: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def buttons(self) -> list[list[tuple[str, str | None]]]:
        """Inline keyboard rows of (text, callback_data); callback_data is None for URL buttons."""
        return [
            [(str(button.get("text", "")), button.get("callback_data")) for button in row]
            for row in inline_keyboard(self.reply_markup)
        ]


def inline_keyboard(markup: dict[str, Any] | None) -> list[list[dict[str, Any]]]:
    """The inline keyboard rows of a reply_markup, or [] for none or another keyboard type."""
    if not markup:
        return []
    rows = markup.get("inline_keyboard")
    return rows if isinstance(rows, list) else []


@dataclass
class ChatEvent:
    """Something that happened in a chat; `message` is a snapshot taken at that moment."""

    kind: EventKind
    message: BotMessage | None
    text: str
    # When it happened (time.monotonic), for latency measurements in benchmarks.
    at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True)
class CallbackAnswer:
    """How the bot answered a callback query (answerCallbackQuery)."""

    text: str | None
    show_alert: bool
    # When the bot answered (time.monotonic), for latency measurements in benchmarks.
    at: float = field(default_factory=time.monotonic, compare=False)


@dataclass
class SandboxStats:
    """Counters about the traffic the sandbox has served."""

    requests: Counter[str] = field(default_factory=Counter)
    http_429: int = 0
    http_errors: Counter[int] = field(default_factory=Counter)
    messages_sent: int = 0
    forbidden: Counter[int] = field(default_factory=Counter)  # 403 answers per chat


@dataclass
class JournalEntry:
    """An update the stand-in queued for the bot, and when the bot confirmed it (asked
    getUpdates with a higher offset, or answered its webhook delivery): from then on Telegram
    would not deliver it again."""

    update_id: int
    kind: str  # "message", "callback_query", ...
    chat_id: int | None
    what: str  # the message text or the callback data
    pushed_at: float = field(default_factory=time.monotonic)
    acknowledged_at: float | None = None

    @classmethod
    def of(cls, update_id: int, update: dict[str, Any]) -> JournalEntry:
        kind = next((key for key in update if key != "update_id"), "")
        body = update.get(kind)
        body = body if isinstance(body, dict) else {}
        message = body.get("message") if kind == "callback_query" else body
        chat = message.get("chat") if isinstance(message, dict) else None
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        what = body.get("data") if kind == "callback_query" else body.get("text")
        return cls(update_id, kind, chat_id, str(what or ""))
