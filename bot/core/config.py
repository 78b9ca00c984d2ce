"""Settings of a Round Table deployment, read from ROUNDTABLE_* environment variables or .env."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCALES = ("cs", "en", "uk")
TELEGRAM_API_URL = "https://api.telegram.org/bot"
TELEGRAM_FILE_URL = "https://api.telegram.org/file/bot"


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it in one line."""


class Settings(BaseSettings):
    """Everything a deployment can configure. Secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(
        env_prefix="ROUNDTABLE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    token: SecretStr | None = None
    data_dir: Path = Path("data")
    database_url: str | None = None
    bot_api_url: str = TELEGRAM_API_URL
    bot_file_url: str = TELEGRAM_FILE_URL
    bot_username: str | None = None
    timezone: str = "Europe/Prague"
    default_locale: str = "cs"
    encryption_key: SecretStr | None = None
    encryption_key_file: Path | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    invite_ttl_hours: int = Field(default=7 * 24, ge=1, le=90 * 24)
    join_attempts_per_hour: int = Field(default=5, ge=1)
    # How often the bot looks for reminders and nudges that have come due.
    sweep_seconds: float = Field(default=60, gt=0, le=3600)
    # Case conferences: the defaults of a plan (DESIGN.md, "Defaults").
    conference_minutes: int = Field(default=90, ge=15, le=480)
    poll_starts_after_days: int = Field(default=2, ge=0, le=30)  # working days after today
    poll_window_days: int = Field(default=15, ge=1, le=60)  # working days
    poll_deadline_days: int = Field(default=3, ge=1, le=15)  # working days
    conference_buffer_minutes: int = Field(default=15, ge=0, le=120)
    poll_slots: int = Field(default=8, ge=1, le=12)
    # Reading an uploaded calendar file stops after this long (bot/core/calendar_reader.py).
    calendar_seconds: float = Field(default=20, gt=0, le=300)
    # The outbox's pace: below Telegram's ~30 messages a second, and how many messages may be
    # on their way at once (at most these can arrive twice after a crash).
    outbox_per_second: float = Field(default=29.0, gt=0, le=30)
    outbox_concurrency: int = Field(default=8, ge=1, le=10)
    # A standby process (a second `roundtable run` of the same bot on the same database) tries to
    # take over this often; the active one checks its lock as often
    # (bot.transport.telegram.standby).
    standby_retry_seconds: float = Field(default=1.0, gt=0, le=60)
    # Closed cases are anonymised by `roundtable purge` this many years after closing.
    retention_years: int = Field(default=5, ge=1, le=30)
    # E-mail (bot.transport.mail). Without an SMTP server the bot works as before: nothing is
    # sent by mail, and guests cannot be invited. smtp:// upgrades with STARTTLS when the server
    # offers it (?starttls=require: refuse to send otherwise), smtps:// is TLS from the start;
    # credentials in the URL: smtp://user:password@host:587.
    smtp_url: SecretStr | None = None
    # The bot's mailbox: the sender of every mail and the ORGANIZER of the invitations, where
    # calendars send their answers ("Round Table <konference@mesto.cz>").
    mail_from: str | None = None
    # That mailbox, read for the calendars' answers: imaps://user:password@host/INBOX (imap://
    # upgrades with STARTTLS). Without it, answers come only through the chat.
    imap_url: SecretStr | None = None
    imap_seconds: float = Field(default=60, gt=0, le=3600)  # how often it is read
    mail_per_second: float = Field(default=50.0, gt=0, le=1000)
    mail_concurrency: int = Field(default=4, ge=1, le=32)  # connections to the SMTP server
    # The poll's web page (bot.transport.web): its public address, behind the reverse proxy
    # (https://konference.mesto.cz/rt). Without it there is no page: guests' mails carry no
    # link, and the chat offers no Mini App (Telegram opens only https:// addresses in one).
    web_url: str | None = None
    # Where the page's server listens in long-polling mode; in webhook mode the webhook's server
    # serves the page too.
    web_listen: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port (the tests)
    log_level: str = "INFO"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()

    @field_validator("bot_api_url", "bot_file_url", "webhook_url", "web_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - reading it validates it
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("default_locale")
    @classmethod
    def _supported_locale(cls, value: str) -> str:
        if value not in LOCALES:
            raise ValueError(f"must be one of {', '.join(LOCALES)}")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must be a postgresql:// or sqlite:/// URL")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Self:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError(
                "ROUNDTABLE_WEBHOOK_SECRET is required when ROUNDTABLE_WEBHOOK_URL is set"
            )
        if self.webhook_secret and not _valid_secret(self.webhook_secret.get_secret_value()):
            raise ValueError(
                "ROUNDTABLE_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        return self

    @field_validator("smtp_url", "imap_url")
    @classmethod
    def _mail_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        schemes = ("smtp", "smtps") if info.field_name == "smtp_url" else ("imap", "imaps")
        try:
            parts = urlsplit(value.get_secret_value())
            parts.port  # noqa: B018 - reading it validates it
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"must be a {schemes[0]}:// or {schemes[1]}:// URL")
        return value

    @field_validator("mail_from")
    @classmethod
    def _mailbox(cls, value: str | None) -> str | None:
        if not value:
            return None
        _name, address = parseaddr(value)
        if "@" not in address:
            raise ValueError("must be an address, e.g. 'Round Table <konference@mesto.cz>'")
        return value

    @model_validator(mode="after")
    def _mail_needs_sender(self) -> Self:
        if self.smtp_url and not self.mail_from:
            raise ValueError("ROUNDTABLE_MAIL_FROM is required when ROUNDTABLE_SMTP_URL is set")
        return self

    @property
    def mail_enabled(self) -> bool:
        return self.smtp_url is not None and self.mail_from is not None

    @property
    def mail_address(self) -> str | None:
        """The bot's mailbox (of `mail_from`): the invitations' ORGANIZER, where answers go."""
        return parseaddr(self.mail_from)[1] if self.mail_from else None

    def web_address(self, path: str) -> str | None:
        """The page's public address of `path` ("/p/TOKEN"), or None without a web page."""
        if self.web_url is None:
            return None
        return self.web_url.rstrip("/") + path

    @property
    def mini_app(self) -> bool:
        """The chat offers the page as a Mini App: Telegram opens only https:// ones."""
        return self.web_url is not None and self.web_url.startswith("https://")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'roundtable.sqlite3').resolve()}"

    @property
    def is_embedded_database(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def invite_ttl(self) -> timedelta:
        return timedelta(hours=self.invite_ttl_hours)

    @property
    def key_file(self) -> Path:
        return self.encryption_key_file or self.data_dir / "secret.key"


def isolated_settings(**values: object) -> Settings:
    """Settings from the given values and the defaults only: no environment variable and no
    .env file can point the demo or a test at a real database, key or webhook."""
    defaults = {name: field.get_default() for name, field in Settings.model_fields.items()}
    return Settings(_env_file=None, **{**defaults, **values})  # type: ignore[call-arg]


def _valid_secret(secret: str) -> bool:
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    return 0 < len(secret) <= 256 and set(secret) <= allowed


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a wrong one raises SettingsError with one line naming it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "_".join(str(part) for part in first["loc"]).upper()
        message = str(first["msg"]).removeprefix("Value error, ")
        where = f"ROUNDTABLE_{name}: " if name else ""
        raise SettingsError(f"{where}{message}") from None
