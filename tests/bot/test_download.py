"""A file download stops at its limit, however much the server would send and however slowly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram.error import NetworkError, TimedOut

from bot.transport.telegram.http import AiohttpRequest, TooBig

CHUNK = b"BEGIN:VEVENT\r\n" * 4096


async def endless(request: web.Request) -> web.StreamResponse:
    """A body that never ends, as a file that is far bigger than it was said to be."""
    response = web.StreamResponse()
    await response.prepare(request)
    while True:
        await response.write(CHUNK)


async def small(request: web.Request) -> web.Response:
    return web.Response(body=b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")


async def missing(request: web.Request) -> web.Response:
    return web.Response(status=404)


async def trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    while True:
        await response.write(b"B")
        await asyncio.sleep(0.05)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/endless", endless)
    app.router.add_get("/small", small)
    app.router.add_get("/trickle", trickle)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def request_() -> AsyncIterator[AiohttpRequest]:
    request = AiohttpRequest()
    await request.initialize()
    yield request
    await request.shutdown()


async def test_an_endless_body_is_cut_off_at_the_limit(
    server: str, request_: AiohttpRequest
) -> None:
    with pytest.raises(TooBig):
        await request_.retrieve_at_most(f"{server}/endless", 2_000_000)


async def test_a_small_file_arrives_whole(server: str, request_: AiohttpRequest) -> None:
    data = await request_.retrieve_at_most(f"{server}/small", 2_000_000)
    assert data == b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    with pytest.raises(TooBig):
        await request_.retrieve_at_most(f"{server}/small", len(data) - 1)


async def test_a_trickle_is_timed_out_as_a_whole(server: str, request_: AiohttpRequest) -> None:
    with pytest.raises(TimedOut):
        await request_.retrieve_at_most(f"{server}/trickle", 2_000_000, seconds=0.5)


async def test_a_missing_file_is_a_network_error(server: str, request_: AiohttpRequest) -> None:
    with pytest.raises(NetworkError):
        await request_.retrieve_at_most(f"{server}/missing", 2_000_000)
