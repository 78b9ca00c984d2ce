"""Webhook mode: Telegram's pushes carry the secret header; anything without it is refused."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from bot.app import build_application, serve
from bot.config import isolated_settings
from bot.models import Role
from bot.runtime import Runtime
from bot.sandbox import BotApiSandbox
from tests.e2e.conftest import RunningBot

SECRET = "webhook-secret_42"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def webhook_bot(runtime: Runtime, sandbox: BotApiSandbox) -> AsyncIterator[RunningBot]:
    port = _free_port()
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
    yield RunningBot(application, hooked, sandbox)
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def test_updates_arrive_by_webhook_and_unsigned_posts_are_refused(
    webhook_bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    teacher = await webhook_bot.join(101, "Jana", Role.REFERRER)
    assert sandbox.webhook_url == webhook_bot.runtime.settings.webhook_url
    assert sandbox.webhook_secret == SECRET
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
