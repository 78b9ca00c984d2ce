"""Settings: defaults, and a wrong setting named in one line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot import cli
from bot.core.config import SettingsError, isolated_settings, load_settings
from bot.core.crypto import Cipher, load_cipher
from bot.logs import redact_secrets
from tests.conftest import run_roundtable


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("ROUNDTABLE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout


def test_defaults_need_nothing_set(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.token is None
    assert settings.effective_database_url == (
        f"sqlite+aiosqlite:///{(tmp_path / 'data' / 'roundtable.sqlite3').resolve()}"
    )
    assert settings.timezone == "Europe/Prague"
    assert settings.default_locale == "cs"
    assert settings.webhook_url is None
    assert settings.retention_years == 5


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"ROUNDTABLE_WEBHOOK_URL": "https://bot.example/hook"}, "ROUNDTABLE_WEBHOOK_SECRET"),
        ({"ROUNDTABLE_TIMEZONE": "Mars/Olympus"}, "ROUNDTABLE_TIMEZONE"),
        ({"ROUNDTABLE_DEFAULT_LOCALE": "de"}, "ROUNDTABLE_DEFAULT_LOCALE"),
        ({"ROUNDTABLE_DATABASE_URL": "mysql://x"}, "ROUNDTABLE_DATABASE_URL"),
        ({"ROUNDTABLE_WEBHOOK_PORT": "http"}, "ROUNDTABLE_WEBHOOK_PORT"),
        ({"ROUNDTABLE_RETENTION_YEARS": "0"}, "ROUNDTABLE_RETENTION_YEARS"),
        ({"ROUNDTABLE_RETENTION_YEARS": "31"}, "ROUNDTABLE_RETENTION_YEARS"),
    ],
)
def test_a_wrong_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_plain_database_urls_get_the_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUNDTABLE_DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    assert load_settings().effective_database_url.startswith("postgresql+asyncpg://")


def test_the_command_reports_a_wrong_setting_in_one_line(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "ROUNDTABLE_WEBHOOK_URL": "https://bot.example/hook",
        "ROUNDTABLE_TOKEN": "123:abc",
    }
    result = run_roundtable(environment, tmp_path, "run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "roundtable: ROUNDTABLE_WEBHOOK_SECRET is required when ROUNDTABLE_WEBHOOK_URL is set"
    ]


def test_a_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    with pytest.raises(SettingsError, match="ROUNDTABLE_ENCRYPTION_KEY"):
        load_cipher(settings)
    cipher = load_cipher(settings, create=True)
    assert (settings.key_file.stat().st_mode & 0o777) == 0o600
    token = cipher.encrypt(b"secret")
    assert load_cipher(settings).decrypt(token) == b"secret"


def test_a_rotated_key_still_reads_old_data() -> None:
    old, new = Cipher.generate_key(), Cipher.generate_key()
    token = Cipher([old]).encrypt(b"kept")
    rotated = Cipher([new, old])
    assert rotated.decrypt(token) == b"kept"
    assert Cipher([new]).decrypt(rotated.encrypt(b"x")) == b"x"


def test_secrets_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redaction")
    previous = redact_secrets(["123456:SECRET-TOKEN"])
    try:
        with caplog.at_level(logging.INFO):
            logger.info("POST https://api.telegram.org/bot%s/getMe", "123456:SECRET-TOKEN")
            try:
                raise RuntimeError("failed for bot123456:SECRET-TOKEN")
            except RuntimeError:
                logger.exception("boom")
    finally:
        logging.setLogRecordFactory(previous)
    assert "SECRET-TOKEN" not in caplog.text
    assert "bot[redacted]/getMe" in caplog.text
    assert "RuntimeError: failed for bot[redacted]" in caplog.text


def test_the_mail_servers_passwords_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    settings = isolated_settings(
        smtp_url=SecretStr("smtp://bot%40mesto.cz:Tajn%C3%A9-heslo@mail.mesto.cz:587"),
        mail_from="Round Table <konference@mesto.cz>",
        imap_url=SecretStr("imaps://bot:imap-Heslo-9@mail.mesto.cz/INBOX"),
    )
    logger = logging.getLogger("test.redaction")
    previous = redact_secrets(cli._secrets(settings))
    try:
        with caplog.at_level(logging.INFO):
            logger.info("login with %s failed", "Tajné-heslo")
            logger.info("connecting to %s", settings.smtp_url.get_secret_value())  # type: ignore[union-attr]
            logger.info("reading imaps://bot:imap-Heslo-9@mail.mesto.cz/INBOX")
    finally:
        logging.setLogRecordFactory(previous)
    assert "Tajn" not in caplog.text and "imap-Heslo-9" not in caplog.text
    assert caplog.text.count("[redacted]") == 3
