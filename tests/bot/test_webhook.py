"""The webhook server: a POST is answered when its update is done with, never before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from telegram import Bot, Update

from bot.transport.telegram.webhook import SECRET_HEADER, WebhookServer
from tests.e2e.test_webhook import free_port

SECRET = "hook-secret"


def _update(update_id: int) -> dict[str, Any]:
    chat = {"id": 101, "type": "private", "first_name": "Jana"}
    sender = {"id": 101, "is_bot": False, "first_name": "Jana"}
    message = {"message_id": update_id, "date": 0, "text": "hi", "chat": chat, "from": sender}
    return {"update_id": update_id, "message": message}


@pytest.fixture
async def hook() -> AsyncIterator[tuple[WebhookServer, asyncio.Queue[object], str]]:
    queue: asyncio.Queue[object] = asyncio.Queue()
    port = free_port()
    server = WebhookServer(
        Bot("123:token"), queue, secret=SECRET, path="telegram", listen="127.0.0.1", port=port
    )
    await server.start()
    yield server, queue, f"http://127.0.0.1:{port}/telegram"
    await server.stop()


async def _post(url: str, body: object, secret: str = SECRET) -> int:
    async with (
        aiohttp.ClientSession() as client,
        client.post(url, json=body, headers={SECRET_HEADER: secret}) as response,
    ):
        return response.status


async def test_a_post_is_answered_200_when_its_update_is_handled(
    hook: tuple[WebhookServer, asyncio.Queue[object], str],
) -> None:
    server, queue, url = hook
    posted = asyncio.create_task(_post(url, _update(7)))
    update = await asyncio.wait_for(queue.get(), timeout=10)
    assert isinstance(update, Update) and update.update_id == 7
    server.handled(update)
    assert await asyncio.wait_for(posted, timeout=10) == 200


async def test_when_stopping_new_posts_are_refused_and_unhandled_ones_answered_503(
    hook: tuple[WebhookServer, asyncio.Queue[object], str],
) -> None:
    server, queue, url = hook
    in_hand = asyncio.create_task(_post(url, _update(8)))
    await asyncio.wait_for(queue.get(), timeout=10)
    server.refuse()
    assert await _post(url, _update(9)) == 503  # Telegram keeps it and tries again
    assert queue.empty()
    await server.stop()  # the application stopped without handling update 8
    assert await asyncio.wait_for(in_hand, timeout=10) == 503


async def test_a_wrong_secret_or_a_body_that_is_no_update_is_refused(
    hook: tuple[WebhookServer, asyncio.Queue[object], str],
) -> None:
    _server, queue, url = hook
    assert await _post(url, _update(10), secret="guess") == 403
    assert await _post(url, _update(10), secret="") == 403
    assert await _post(url, {"message": "no id"}) == 400
    assert await _post(url, [1, 2]) == 400
    assert queue.empty()
