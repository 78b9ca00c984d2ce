"""Logging set-up: plain lines, quiet HTTP libraries, and secrets redacted wherever they appear."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "[redacted]"
RecordFactory = Callable[..., logging.LogRecord]


def redact_secrets(secrets: Iterable[str]) -> RecordFactory:
    """Make every log record, from any library, carry its text with the secrets cut out.

    Done when the record is created, so that every handler (the console, a test's capture, a
    log shipper) sees only the redacted text. Returns the previous factory, to restore it.
    """
    known = [secret for secret in secrets if secret]
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not known:
            return record
        message = record.getMessage()
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in known:
            message = message.replace(secret, REDACTED)
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return record

    logging.setLogRecordFactory(factory)
    return previous


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level.upper())
    # httpx logs every request URL at INFO, and Bot API URLs contain the token.
    noisy_loggers = ("httpx", "httpcore", "apscheduler", "aiosqlite", "alembic.runtime")
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # At DEBUG python-telegram-bot logs whole updates and request parameters: people's messages,
    # names and invite codes. Those never go to the log, whatever the level asked for.
    logging.getLogger("telegram").setLevel(max(logging.INFO, logging.getLogger().level))
    redact_secrets(secrets)
