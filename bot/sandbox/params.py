"""Reading Bot API call parameters the way Telegram does, whatever the request encoding."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .errors import ApiError

# Object and array parameters: form encodings carry them as JSON text.
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "commands",
        "scope",
        "allowed_updates",
        "link_preview_options",
        "reply_parameters",
        "media",
        "message_ids",
    }
)
_INT_PARAMS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "user_id",
        "from_chat_id",
        "max_connections",
        "message_thread_id",
        "cache_time",
        "reply_to_message_id",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "drop_pending_updates",
        "show_alert",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "disable_content_type_detection",
        "has_spoiler",
        "allow_paid_broadcast",
    }
)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    file_name: str | None
    content_type: str | None
    content: bytes


@dataclass
class ApiRequest:
    """The parameters of one Bot API call, with typed accessors that fail like Telegram."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        value = self.params.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            # JSON clients may send numbers where Telegram expects strings; it converts them.
            return str(value)
        raise ApiError.bad_request(f"parameter {name} must be a string")

    def integer(self, name: str) -> int | None:
        value = self.params.get(name)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ApiError.bad_request(f"parameter {name} must be an integer")

    def flag(self, name: str) -> bool:
        return self.params.get(name) is True

    def object(self, name: str) -> Any:
        """A JSON object or array parameter, or None when absent."""
        return self.params.get(name)

    def array(self, name: str) -> list[Any] | None:
        """A JSON array parameter, or None when absent."""
        value = self.object(name)
        if value is not None and not isinstance(value, list):
            raise ApiError.bad_request(f"can't parse {name} JSON array")
        return value

    def strings(self, name: str) -> list[str] | None:
        """A JSON array of strings, or None when absent."""
        values = self.array(name)
        if values is not None and not all(isinstance(value, str) for value in values):
            raise ApiError.bad_request(f"can't parse {name} JSON array")
        return values

    def chat_id(self) -> int:
        value = self.params.get("chat_id")
        if value is None or value == "":
            raise ApiError.bad_request("chat_id is empty")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        # "@username" chats exist only for channels and groups, which the sandbox lacks.
        raise ApiError.bad_request("chat not found")

    def message_id(self) -> int:
        value = self.integer("message_id")
        if value is None:
            raise ApiError.bad_request("message identifier is not specified")
        return value


# A Bot API method as the sandbox implements it: the call's parameters in, its result out.
Handler = Callable[[ApiRequest], Awaitable[Any]]


async def read_request(request: web.Request, method: str) -> ApiRequest:
    """Collect query, form, multipart or JSON parameters into one ApiRequest."""
    raw: dict[str, Any] = dict(request.query)
    uploads: dict[str, Upload] = {}
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            raw.update(await _read_json(request))
        elif request.content_type in _FORM_TYPES:
            await _read_form(request, raw, uploads)
    params = {name: coerce(name, value) for name, value in raw.items()}
    return ApiRequest(method=method, params=params, uploads=uploads)


async def _read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError.bad_request("can't parse JSON request body") from None
    if not isinstance(body, dict):
        raise ApiError.bad_request("JSON request body must be an object")
    return body


async def _read_form(request: web.Request, raw: dict[str, Any], uploads: dict[str, Upload]) -> None:
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            # Keep the bare media type; parameters such as charset are not part of mime_type.
            media_type = value.content_type.split(";")[0].strip() or None
            uploads[name] = Upload(value.filename, media_type, value.file.read())
        elif isinstance(value, str):
            raw[name] = value
        else:
            raw[name] = bytes(value).decode("utf-8")


def coerce(name: str, value: Any) -> Any:
    """Turn a form value into the type Telegram reads for that parameter.

    Only known parameters are converted: a text such as "123" or "true" must stay a string.
    """
    if not isinstance(value, str):
        return value
    if name in _JSON_PARAMS:
        return _json_value(name, value)
    if name in _INT_PARAMS:
        return _int_value(value)
    if name in _BOOL_PARAMS:
        return value.strip().lower() in ("true", "1")
    return value


def _json_value(name: str, value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        raise ApiError.bad_request(f"can't parse {name} JSON object") from None


def _int_value(value: str) -> int | str:
    # PTB sends durations such as timeout as floats ("10.0"); Telegram truncates them.
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return int(float(value))
    except (ValueError, OverflowError):
        return value
