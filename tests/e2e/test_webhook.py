"""Webhook mode: Telegram's pushes carry the secret header; anything without it is refused."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from pydantic import SecretStr

from bot.app import MAX_CONCURRENT_UPDATES, build_application, serve
from bot.core.config import isolated_settings
from bot.core.models import Role
from bot.core.runtime import Runtime
from bot.sandbox import BotApiSandbox
from tests.e2e.conftest import RunningBot

SECRET = "webhook-secret_42"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def serving(
    runtime: Runtime, sandbox: BotApiSandbox
) -> AsyncIterator[tuple[RunningBot, asyncio.Event, asyncio.Task[None]]]:
    """The bot in webhook mode; stopped at the end unless the test has stopped it."""
    port = free_port()
    settings = isolated_settings(
        **{
            **runtime.settings.model_dump(),
            "webhook_url": f"http://127.0.0.1:{port}/telegram",
            "webhook_secret": SecretStr(SECRET),
            "webhook_port": port,
        }
    )
    hooked = Runtime(
        settings=settings, database=runtime.database, clock=runtime.clock, cipher=runtime.cipher
    )
    application = build_application(hooked)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(application, stop))
    try:
        yield RunningBot(application, hooked, sandbox), stop, task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


@pytest.fixture
async def webhook_bot(runtime: Runtime, sandbox: BotApiSandbox) -> AsyncIterator[RunningBot]:
    async with serving(runtime, sandbox) as (running, _stop, _task):
        yield running


async def test_updates_arrive_by_webhook_and_unsigned_posts_are_refused(
    webhook_bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    teacher = await webhook_bot.join(101, "Jana", Role.REFERRER)
    assert sandbox.webhook_url == webhook_bot.runtime.settings.webhook_url
    assert sandbox.webhook_secret == SECRET
    info = await webhook_bot.application.bot.get_webhook_info()
    # Each POST waits until its update is handled: no more at once than the bot handles.
    assert info.max_connections == MAX_CONCURRENT_UPDATES
    await teacher.send_text("/help")
    assert "/language" in ((await teacher.next_message()).text or "")

    forged = {
        "update_id": 999_999,
        "message": {
            "message_id": 1,
            "date": 0,
            "text": "/help",
            "chat": {"id": 101, "type": "private", "first_name": "Jana"},
            "from": {"id": 101, "is_bot": False, "first_name": "Jana"},
        },
    }
    url = sandbox.webhook_url
    assert url is not None
    async with aiohttp.ClientSession() as client:
        async with client.post(url, json=forged) as response:
            assert response.status == 403
        wrong = {"X-Telegram-Bot-Api-Secret-Token": "guess"}
        async with client.post(url, json=forged, headers=wrong) as response:
            assert response.status == 403
    await teacher.send_text("/help")
    assert "/language" in ((await teacher.next_message()).text or "")
    helps = [
        event
        for event in teacher.events
        if event.kind == "sent" and event.message and (event.message.text or "").startswith("As a")
    ]
    assert len(helps) == 2  # the two real /help, none for the refused posts


async def test_stopping_finishes_the_update_in_hand_before_answering_telegram(
    runtime: Runtime, sandbox: BotApiSandbox
) -> None:
    """A bot told to stop while it handles an update finishes it, and only then answers the
    POST: Telegram forgets the update then, and not before."""
    async with serving(runtime, sandbox) as (running, stop, task):
        teacher = await running.join(101, "Jana", Role.REFERRER)
        sandbox.hold_next("sendMessage")
        await teacher.send_text("/help")
        help_id = teacher.last_update_id
        assert help_id is not None
        assert await sandbox.wait_for_calls(lambda: sandbox.held == 1, timeout=30)
        stop.set()
        assert sandbox.journal[help_id].acknowledged_at is None
        sandbox.release_held()  # Telegram answers 502: the bot says so to the person
        assert "try again" in ((await teacher.next_message()).text or "")
        await asyncio.wait_for(task, timeout=30)
    await sandbox.wait_until_acknowledged(help_id)
