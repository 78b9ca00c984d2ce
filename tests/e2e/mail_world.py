"""Fixtures of a bot whose Round Table sends e-mail: a real SMTP server on 127.0.0.1 and the
settings pointing at it. A test parametrized with `mail_on` False runs without mail settings.

    from tests.e2e.mail_world import mail_on, mail_server, settings
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.core.config import Settings, isolated_settings
from bot.sandbox import BotApiSandbox
from bot.sandbox.mail import MailServer
from tests.e2e.conftest import TOKEN

SENDER = "Round Table <konference@cheb.example.cz>"


@pytest.fixture
def mail_on() -> bool:
    """Mail is set up; a test parametrized with False runs without it."""
    return True


@pytest.fixture
async def mail_server() -> AsyncIterator[MailServer]:
    async with MailServer.running() as server:
        yield server


@pytest.fixture
def settings(
    database_url: str,
    sandbox: BotApiSandbox,
    tmp_path: Path,
    mail_server: MailServer,
    mail_on: bool,
) -> Settings:
    mail: dict[str, object] = {}
    if mail_on:
        mail = {"smtp_url": SecretStr(mail_server.url), "mail_from": SENDER}
    return isolated_settings(
        token=SecretStr(TOKEN),
        database_url=database_url,
        bot_api_url=sandbox.base_url,
        bot_file_url=sandbox.base_file_url,
        data_dir=tmp_path / "data",
        sweep_seconds=3600,
        **mail,  # type: ignore[arg-type]
    )
