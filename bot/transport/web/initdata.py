"""Telegram's Mini App `initData`: who opened the page, signed with the bot's token.

Telegram hands the page a query string (user, auth_date, …, hash). Its `hash` is
HMAC-SHA256 over the other fields, sorted by name and joined as "name=value" lines, keyed with
HMAC-SHA256("WebAppData", bot token) (core.telegram.org/bots/webapps, "Validating data received
via the Mini App"). python-telegram-bot has no helper for it, so it is written out here; `sign`
makes the same string for the demo and the tests, as a Telegram client would receive it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode

MAX_LENGTH = 8192  # Telegram's are well under 1 kB


class InitDataError(Exception):
    """Not Telegram's, or too old: `reason` is "missing", "malformed", "forged" or "old"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _secret(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def _digest(fields: dict[str, str], bot_token: str) -> str:
    """The `hash` of `fields`: over "name=value" lines, sorted by name."""
    check = "\n".join(f"{name}={fields[name]}" for name in sorted(fields)).encode()
    return hmac.new(_secret(bot_token), check, hashlib.sha256).hexdigest()


def sign(fields: dict[str, str], bot_token: str) -> str:
    """`initData` carrying `fields` (user as JSON, auth_date, …), as Telegram signs it."""
    return urlencode({**fields, "hash": _digest(fields, bot_token)})


def verify(init_data: str, bot_token: str, *, now: datetime, max_age: timedelta) -> int:
    """The Telegram user id of a genuine `initData` no older than `max_age`; else refused."""
    if not init_data:
        raise InitDataError("missing")
    if len(init_data) > MAX_LENGTH:
        raise InitDataError("malformed")
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataError("malformed") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):  # a field given twice
        raise InitDataError("malformed")
    given = fields.pop("hash", "")
    if not hmac.compare_digest(given.encode(), _digest(fields, bot_token).encode()):
        raise InitDataError("forged")
    try:
        signed_at = int(fields["auth_date"])
        user_id = json.loads(fields["user"])["id"]
    except (KeyError, ValueError, TypeError):
        raise InitDataError("malformed") from None
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise InitDataError("malformed")
    age = now.timestamp() - signed_at
    if age > max_age.total_seconds() or age < -300:  # five minutes of clock difference
        raise InitDataError("old")
    return user_id
