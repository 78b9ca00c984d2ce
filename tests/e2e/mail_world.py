"""Fixtures of a bot whose Round Table sends e-mail: a real SMTP server on 127.0.0.1 and the
settings pointing at it. A test parametrized with `mail_on` False runs without mail settings; a
module that takes `mailbox_read` (with `mailbox`, a real Dovecot's, tests/mailbox.py) has the bot
read that mailbox too, when the test says so (`read_mailbox`).

    from tests.e2e.mail_world import mail_on, mail_server, settings
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.app import MAILBOX_JOB
from bot.core.config import Settings
from bot.sandbox import BotApiSandbox
from bot.sandbox.mail import MailServer
from tests.e2e.conftest import RunningBot, bot_settings
from tests.mailbox import Mailbox

SENDER = "Round Table <konference@cheb.example.cz>"


@pytest.fixture
def mail_on() -> bool:
    """Mail is set up; a test parametrized with False runs without it."""
    return True


@pytest.fixture(name="imap_url")
def mailbox_read(mailbox: Mailbox) -> str:
    """The bot reads the real mailbox (tests/mailbox.py) when the test says so
    (`read_mailbox`): a module takes this fixture and `mailbox` by name."""
    return mailbox.url


@pytest.fixture
async def mail_server() -> AsyncIterator[MailServer]:
    async with MailServer.running() as server:
        yield server


@pytest.fixture
def settings(  # noqa: PLR0917 - pytest passes fixtures by name
    database_url: str,
    sandbox: BotApiSandbox,
    tmp_path: Path,
    mail_server: MailServer,
    mail_on: bool,
    imap_url: str | None,
) -> Settings:
    mail: dict[str, object] = {}
    if mail_on:
        mail = {"smtp_url": SecretStr(mail_server.url), "mail_from": SENDER}
    if imap_url is not None:
        # The test reads the mailbox itself, as the repeating job would.
        mail |= {"imap_url": SecretStr(imap_url), "imap_seconds": 3600, "mail_from": SENDER}
    return bot_settings(database_url, sandbox, tmp_path, **mail)


async def read_mailbox(bot: RunningBot) -> None:
    """Read the organizer's mailbox now, as its repeating job does, and wait for the outbox."""
    jobs = bot.application.job_queue.get_jobs_by_name(MAILBOX_JOB)  # type: ignore[union-attr]
    assert len(jobs) == 1
    await jobs[0].run(bot.application)
    await bot.settle()
