"""The bot's command menus (setMyCommands and its kin), kept by scope and language."""

from __future__ import annotations

import json
import re
from typing import Any

from .content import check_commands
from .errors import ApiError
from .params import ApiRequest, Handler

_LANGUAGE_CODE = re.compile(r"(?:[a-z]{2})?")
_SCOPE_TYPES = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)


class CommandMenus:
    """The command lists the bot set, each for exactly one scope and language."""

    def __init__(self) -> None:
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}

    def methods(self) -> dict[str, Handler]:
        return {
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
        }

    def menu(self, scope: dict[str, Any] | None, language_code: str) -> list[dict[str, str]]:
        """What setMyCommands stored for exactly this scope and language ([] if nothing)."""
        return list(self._commands.get(_commands_key(scope, language_code), []))

    async def _set_my_commands(self, request: ApiRequest) -> bool:
        commands = check_commands(request.object("commands"))
        key = _request_commands_key(request)
        if commands:
            self._commands[key] = commands
        else:
            self._commands.pop(key, None)
        return True

    async def _get_my_commands(self, request: ApiRequest) -> list[dict[str, str]]:
        return list(self._commands.get(_request_commands_key(request), []))

    async def _delete_my_commands(self, request: ApiRequest) -> bool:
        self._commands.pop(_request_commands_key(request), None)
        return True


def _request_commands_key(request: ApiRequest) -> tuple[str, str]:
    scope = request.object("scope")
    if scope is not None and not (isinstance(scope, dict) and scope.get("type") in _SCOPE_TYPES):
        raise ApiError.bad_request("can't parse BotCommandScope JSON object")
    language_code = request.text("language_code") or ""
    if not _LANGUAGE_CODE.fullmatch(language_code):
        raise ApiError.bad_request("invalid language code specified")
    return _commands_key(scope, language_code)


def _commands_key(scope: dict[str, Any] | None, language_code: str) -> tuple[str, str]:
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code
