"""Checks on what the bot sends: texts, captions, keyboards and command lists."""

from __future__ import annotations

import logging
import re
from typing import Any

from .errors import ApiError
from .html_text import FormattedText, HtmlParseError, parse_html

logger = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
# Telegram's limits on an inline keyboard; past them the whole message is refused.
MAX_INLINE_BUTTONS = 100
MAX_INLINE_ROW = 8
MAX_COMMANDS = 100
MAX_COMMAND_DESCRIPTION = 256

_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_URL_SCHEMES = ("http://", "https://", "tg://")
# A button needs one of these to do something; plain text buttons exist only in reply keyboards.
_BUTTON_ACTIONS = frozenset(
    {
        "callback_data",
        "url",
        "login_url",
        "web_app",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)


def render_text(
    text: str | None, parse_mode: str | None, entities: list[Any] | None
) -> FormattedText:
    """The message text as Telegram would show it, or the error Telegram would give."""
    if text is None or not text.strip():
        raise ApiError.bad_request("message text is empty")
    formatted = _format(text, parse_mode, entities)
    if not formatted.text.strip():
        raise ApiError.bad_request("message text is empty")
    if len(formatted.text) > MAX_TEXT_LENGTH:
        raise ApiError.bad_request("message is too long")
    return formatted


def render_caption(
    caption: str | None, parse_mode: str | None, entities: list[Any] | None
) -> FormattedText | None:
    """The media caption as shown, or None when there is none."""
    if not caption:
        return None
    formatted = _format(caption, parse_mode, entities)
    if len(formatted.text) > MAX_CAPTION_LENGTH:
        raise ApiError.bad_request("message caption is too long")
    return formatted


def _format(text: str, parse_mode: str | None, entities: list[Any] | None) -> FormattedText:
    mode = (parse_mode or "").lower()
    if mode == "html":
        try:
            return parse_html(text)
        except HtmlParseError as error:
            raise ApiError.bad_request(f"can't parse entities: {error}") from None
    if mode in ("markdown", "markdownv2"):
        logger.warning("parse mode %s is not emulated; text is kept as sent", parse_mode)
        return FormattedText(text)
    if mode:
        raise ApiError.bad_request("unsupported parse_mode")
    return FormattedText(text, _checked_entities(entities))


def _checked_entities(entities: list[Any] | None) -> list[dict[str, Any]]:
    if entities is None:
        return []
    if not all(isinstance(entity, dict) and "type" in entity for entity in entities):
        raise ApiError.bad_request("can't parse entities JSON object")
    return list(entities)


def check_reply_markup(markup: Any) -> dict[str, Any] | None:
    """The reply_markup to store, after Telegram's checks on inline keyboards."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise ApiError.bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise ApiError.bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
        )
    for row in rows:
        for button in row:
            _check_inline_button(button)
    if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS or any(
        len(row) > MAX_INLINE_ROW for row in rows
    ):
        raise ApiError.bad_request("reply markup is too long")
    return markup


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise ApiError.bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    if not _BUTTON_ACTIONS.intersection(button):
        raise ApiError.bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    data = button.get("callback_data")
    if data is not None and not _valid_callback_data(data):
        raise ApiError.bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(_URL_SCHEMES)):
        raise ApiError.bad_request("BUTTON_URL_INVALID")


def _valid_callback_data(data: Any) -> bool:
    return isinstance(data, str) and 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES


def check_commands(commands: Any) -> list[dict[str, str]]:
    """The command list for setMyCommands, checked like Telegram does."""
    if not isinstance(commands, list):
        raise ApiError.bad_request("can't parse commands JSON object")
    if len(commands) > MAX_COMMANDS:
        raise ApiError.bad_request("too many commands")
    return [_checked_command(command) for command in commands]


def _checked_command(command: Any) -> dict[str, str]:
    if not isinstance(command, dict):
        raise ApiError.bad_request("can't parse BotCommand JSON object")
    name = command.get("command")
    description = command.get("description")
    if not isinstance(name, str) or not _COMMAND.fullmatch(name):
        raise ApiError.bad_request("BOT_COMMAND_INVALID")
    if not isinstance(description, str) or not 1 <= len(description) <= MAX_COMMAND_DESCRIPTION:
        raise ApiError.bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    return {"command": name, "description": description}
