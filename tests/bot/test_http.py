"""AiohttpRequest must behave as PTB's HTTPXRequest does, or the faster one may not be kept.

Every check runs twice, once per request class, over real HTTP against the Bot API stand-in:
the same calls succeed with the same results, and Telegram's failures - 429 with
retry_after, 5xx, 403, read/pool/connect timeouts, dropped and refused connections - end in
the same python-telegram-bot exception class (compared exactly, not as a subclass).
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

import pytest
from telegram import Bot, InputFile
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.sandbox import BotApiSandbox, FloodLimits, Person
from bot.transport.telegram.http import AiohttpRequest
from tests.sandbox import test_sandbox

TOKEN = "123456:http-test-token"
ALICE = 1001
NO_FLOOD = FloodLimits(enabled=False)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

RequestMaker = Callable[..., BaseRequest]


@pytest.fixture(params=[HTTPXRequest, AiohttpRequest], ids=["httpx", "aiohttp"])
def make(request: pytest.FixtureRequest) -> RequestMaker:
    """The request class under test; both take HTTPXRequest's keyword options."""
    maker: RequestMaker = request.param
    return maker


def running_sandbox(**options: Any) -> AbstractAsyncContextManager[BotApiSandbox]:
    """The stand-in without flood limits, started for the block."""
    return test_sandbox.running_sandbox(TOKEN, flood=NO_FLOOD, **options)


@asynccontextmanager
async def client(box: BotApiSandbox, make: RequestMaker, **options: Any) -> AsyncIterator[Bot]:
    """A started Bot whose calls (get_updates too) go through the request class under test."""
    bot = Bot(
        TOKEN,
        base_url=box.base_url,
        base_file_url=box.base_file_url,
        request=make(**options),
        get_updates_request=make(**options),
    )
    async with bot:
        yield bot


@pytest.fixture
async def sandbox() -> AsyncIterator[BotApiSandbox]:
    async with running_sandbox() as box:
        yield box


@pytest.fixture
async def bot(sandbox: BotApiSandbox, make: RequestMaker) -> AsyncIterator[Bot]:
    async with client(sandbox, make) as connected:
        yield connected


@pytest.fixture
def alice(sandbox: BotApiSandbox) -> Person:
    return sandbox.person(ALICE, "Alice", username="alice")


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that is bound but not listening, so connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def retry_seconds(error: RetryAfter) -> float:
    wait = error.retry_after  # an int now, a timedelta in a future major of PTB
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


# --- calls that work ---------------------------------------------------------------------


async def test_get_me_and_send_message(sandbox: BotApiSandbox, bot: Bot, alice: Person) -> None:
    me = await bot.get_me()
    sent = await bot.send_message(
        ALICE, "<b>Porada</b> v úterý &amp; 9:00", parse_mode=ParseMode.HTML
    )

    assert me.id == sandbox.bot_id
    assert sent.text == "Porada v úterý & 9:00"
    assert alice.last_bot_message().text == "Porada v úterý & 9:00"
    assert sandbox.stats.requests["sendMessage"] == 1


async def test_send_document_arrives_with_its_name_type_and_content(
    bot: Bot, alice: Person
) -> None:
    content = bytes(range(256)) * 64  # binary, 16 KiB
    sent = await bot.send_document(
        ALICE,
        InputFile(content, filename="zápis z porady.docx"),
        caption="<i>Zápis</i>",
        parse_mode=ParseMode.HTML,
    )

    assert alice.document_of(alice.last_bot_message()) == ("zápis z porady.docx", content, DOCX)
    assert sent.caption == "Zápis"
    assert sent.document is not None
    downloaded = await (await bot.get_file(sent.document.file_id)).download_as_bytearray()
    assert bytes(downloaded) == content


async def test_an_open_file_handle_is_uploaded_too(bot: Bot, alice: Person) -> None:
    handle = InputFile(
        io.BytesIO(b"BEGIN:VCALENDAR\r\n"), filename="porada.ics", read_file_handle=False
    )
    await bot.send_document(ALICE, handle)

    assert alice.document_of(alice.last_bot_message()) == (
        "porada.ics",
        b"BEGIN:VCALENDAR\r\n",
        "text/calendar",
    )


async def test_quotes_in_a_file_name_are_escaped_as_httpx_does(bot: Bot, alice: Person) -> None:
    """httpx writes '"' as %22 (the HTML5 form rule); aiohttp alone would send \\" instead."""
    await bot.send_document(ALICE, InputFile(b"x", filename='zpráva "final".txt'))

    name, _, _ = alice.document_of(alice.last_bot_message())
    assert name == "zpráva %22final%22.txt"


async def test_a_long_poll_outlasts_the_read_timeout(make: RequestMaker) -> None:
    """PTB adds the poll's timeout to the class's read_timeout; a quiet poll is no error."""
    async with running_sandbox() as box, client(box, make, read_timeout=0.2) as bot:
        alice = box.person(ALICE, "Alice")
        assert await bot.get_updates(timeout=1) == ()  # 1 s of waiting, longer than 0.2 s
        await alice.send_text("/start")
        (update,) = await bot.get_updates(timeout=1)

    assert update.message is not None
    assert update.message.text == "/start"


# --- Telegram's error answers ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # int retry_after
async def test_429_is_retry_after_with_the_given_seconds(
    sandbox: BotApiSandbox, bot: Bot, alice: Person
) -> None:
    sandbox.fail_next("sendMessage", 429, retry_after=7)

    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ALICE, "too fast")

    assert type(caught.value) is RetryAfter
    assert retry_seconds(caught.value) == 7
    assert (await bot.send_message(ALICE, "later")).text == "later"


@pytest.mark.parametrize(
    ("status", "description"), [(500, "Internal Server Error"), (502, "Bad Gateway")]
)
async def test_server_errors_are_network_errors(
    sandbox: BotApiSandbox, bot: Bot, alice: Person, status: int, description: str
) -> None:
    sandbox.fail_next("sendMessage", status)

    with pytest.raises(NetworkError) as caught:
        await bot.send_message(ALICE, "lost")

    assert type(caught.value) is NetworkError
    assert caught.value.message == description


async def test_403_is_forbidden(sandbox: BotApiSandbox, bot: Bot, alice: Person) -> None:
    sandbox.fail_next("sendMessage", 403)
    with pytest.raises(Forbidden) as injected:
        await bot.send_message(ALICE, "blocked?")
    alice.block()
    with pytest.raises(Forbidden) as blocked:
        await bot.send_message(ALICE, "blocked")

    assert type(injected.value) is Forbidden
    assert (
        injected.value.message
        == blocked.value.message
        == ("Forbidden: bot was blocked by the user")
    )


async def test_400_is_bad_request(bot: Bot) -> None:
    with pytest.raises(BadRequest) as caught:
        await bot.send_message(424242, "nobody")

    assert type(caught.value) is BadRequest
    assert caught.value.message == "Chat not found"


# --- transport failures ------------------------------------------------------------------


async def test_a_slow_answer_is_timed_out_and_per_call_timeouts_win(make: RequestMaker) -> None:
    async with running_sandbox() as box, client(box, make, read_timeout=0.05) as bot:
        box.rtt_ms = 300  # after start: Bot's own get_me at start must not time out

        with pytest.raises(TimedOut) as caught:
            await bot.get_me()
        # A timeout passed to the call replaces the default; None means no limit at all.
        assert (await bot.get_me(read_timeout=5)).id == box.bot_id
        assert (await bot.get_me(read_timeout=None)).id == box.bot_id

    assert type(caught.value) is TimedOut
    assert caught.value.message == "Timed out"


async def test_a_short_per_call_read_timeout_beats_a_long_default(make: RequestMaker) -> None:
    async with running_sandbox() as box, client(box, make, read_timeout=5) as bot:
        box.rtt_ms = 300
        with pytest.raises(TimedOut):
            await bot.get_me(read_timeout=0.05)


async def test_a_full_pool_is_a_pool_timeout(make: RequestMaker) -> None:
    async with (
        running_sandbox() as box,
        client(box, make, connection_pool_size=1, pool_timeout=0.05) as bot,
    ):
        box.rtt_ms = 300
        results = await asyncio.gather(bot.get_me(), bot.get_me(), return_exceptions=True)

    errors = [result for result in results if isinstance(result, BaseException)]
    assert len(errors) == 1
    assert type(errors[0]) is TimedOut
    assert str(errors[0]).startswith("Pool timeout: All connections in the connection pool")


async def test_a_dropped_connection_is_a_network_error(
    sandbox: BotApiSandbox, bot: Bot, alice: Person
) -> None:
    sandbox.drop_next("sendMessage")

    with pytest.raises(NetworkError) as caught:
        await bot.send_message(ALICE, "into the void")

    assert type(caught.value) is NetworkError
    assert (await bot.send_message(ALICE, "again")).text == "again"  # the pool recovered


async def test_a_refused_connection_is_a_network_error(make: RequestMaker) -> None:
    with refused_port() as port, pytest.raises(NetworkError) as caught:
        async with Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=make()):
            pass

    assert type(caught.value) is NetworkError


async def test_a_connect_that_hangs_is_timed_out(make: RequestMaker) -> None:
    """A listener whose accept queue is full ignores new SYNs, so connecting hangs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        fillers = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(3)]
        for filler in fillers:  # without waiting: the last ones never get through
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            request = make(connect_timeout=0.2)
            url = f"http://127.0.0.1:{port}/bot{TOKEN}/getMe"
            async with request:
                with pytest.raises(TimedOut) as caught:
                    await request.post(url, RequestData())
        finally:
            for filler in fillers:
                filler.close()

    assert type(caught.value) is TimedOut


async def test_an_environment_proxy_is_used_unless_no_proxy_says_otherwise(
    sandbox: BotApiSandbox, make: RequestMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    with refused_port() as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with pytest.raises(NetworkError):  # the proxy refuses
            async with client(sandbox, make):
                pass
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with client(sandbox, make) as bot:
            assert (await bot.get_me()).id == sandbox.bot_id


# --- lifecycle ---------------------------------------------------------------------------


async def test_initialize_and_shutdown_may_repeat(
    sandbox: BotApiSandbox, make: RequestMaker
) -> None:
    request = make(read_timeout=7)
    url = f"{sandbox.base_url}{TOKEN}/getMe"
    assert request.read_timeout == 7

    # Before initialize it works (HTTPXRequest's client exists from the start).
    assert isinstance(await request.post(url), dict)
    await request.shutdown()
    await request.shutdown()
    with pytest.raises(NetworkError, match="not initialized"):
        await request.post(url)

    await request.initialize()
    await request.initialize()
    assert isinstance(await request.post(url), dict)
    await request.shutdown()


async def test_shutdown_without_initialize_is_harmless(make: RequestMaker) -> None:
    await make().shutdown()


async def test_every_failure_is_a_telegram_error(sandbox: BotApiSandbox, bot: Bot) -> None:
    """Nothing from httpx or aiohttp leaks: handlers only catch TelegramError."""
    sandbox.drop_next("getMe")
    sandbox.fail_next("getMe", 503)
    for _ in range(2):
        with pytest.raises(TelegramError):
            await bot.get_me()


@pytest.mark.parametrize("url", ["http:///bot123:SECRET/getMe", "ftp://host/bot123:SECRET/getMe"])
async def test_error_messages_do_not_quote_the_token(make: RequestMaker, url: str) -> None:
    """aiohttp quotes the whole URL in some errors; the token must not reach the message."""
    async with make() as request:
        with pytest.raises(NetworkError) as caught:
            await request.post(url, RequestData())

    assert type(caught.value) is NetworkError
    assert "SECRET" not in caught.value.message
