"""A python-telegram-bot request class on aiohttp, a faster stand-in for `HTTPXRequest`.

Every Bot API call goes through `BaseRequest.do_request`. With PTB's default `HTTPXRequest`,
httpx and httpcore spent most of a bare bot's CPU time once Telegram's round trip (30-60 ms)
kept many calls in flight; with aiohttp the same bot answered several times as many updates
per second (issue 8). That speed is only worth having if everything else stays the same, so
`AiohttpRequest` mirrors `HTTPXRequest` where the bot can tell:

* the same constructor options and defaults (pool size 256, timeouts 5/5/5/1 s, 20 s for
  uploads) and PTB's `DEFAULT_NONE` rule: a timeout not passed to a call means the
  instance's default, an explicit `None` means no limit;
* the same errors: a timeout is `TimedOut` (a full pool says so, as HTTPXRequest does), any
  other transport failure - refused or dropped connection, broken body - is `NetworkError`.
  HTTP status codes (403, 429 with retry_after, 5xx ...) are turned into exceptions by
  `BaseRequest` itself from the (status, body) this class returns;
* the same request bodies: form-urlencoded parameters, or multipart/form-data with the
  parameters and the files when a call uploads something; file names are escaped the way
  httpx (and browsers) do, not percent-encoded as aiohttp would by default;
* no redirects followed, proxies from `proxy` or the environment, certificates from certifi
  unless SSL_CERT_FILE / SSL_CERT_DIR say otherwise, idle connections kept 5 s.

What aiohttp cannot do the same way: it has no write timeout. Bodies without files are a few
kilobytes that the kernel takes at once, so there is nothing to bound; for uploads the whole
call is bounded by connect + write + read timeout instead (httpx bounds the write of the file
bytes, which PTB hands over as one block, so the effect is close). Only HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
import urllib.request
from collections.abc import AsyncIterator
from urllib.parse import urlencode, urlsplit

import aiohttp
import certifi
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput, UploadFileDict
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

logger = logging.getLogger(__name__)

_POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: All connections in the connection pool are occupied. "
    "Request was *not* sent to Telegram. Consider adjusting the connection "
    "pool size or the pool timeout."
)  # word for word HTTPXRequest's, so logs and handlers cannot tell the two apart
_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
# httpx writes multipart parameter values the HTML5 way: '"' and control characters as %XX,
# everything else (Czech letters too) as raw UTF-8. aiohttp (quote_fields=False) adds the
# backslash escaping itself, and refuses ESC and DEL, so those are encoded too.
_FORM_PARAM_SPECIAL = re.compile(r'["\x00-\x1f\x7f]')
_KEEPALIVE_SECONDS = 5.0  # httpx's default keepalive_expiry


class AiohttpRequest(BaseRequest):
    """`BaseRequest` on an aiohttp session: a drop-in replacement for `HTTPXRequest`.

    Use it as `ApplicationBuilder().request(AiohttpRequest(...))` (and `get_updates_request`).
    The session is opened in `initialize` (PTB calls it on the running loop) and closed in
    `shutdown`; both may be called more than once, and a shut-down instance can be
    initialized again, as with HTTPXRequest.
    """

    __slots__ = (
        "_connect_timeout",
        "_connection_pool_size",
        "_env_proxies",
        "_media_write_timeout",
        "_pool",
        "_pool_timeout",
        "_proxy",
        "_proxy_by_origin",
        "_read_timeout",
        "_session",
        "_shut_down",
        "_trust_env",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        *,
        proxy: str | None = None,
        media_write_timeout: float | None = 20.0,
        trust_env: bool = True,
    ) -> None:
        """Options as for `HTTPXRequest` (HTTP/2, socket options and httpx_kwargs aside).

        `proxy` is an http:// URL; without it and with `trust_env`, HTTPS_PROXY, HTTP_PROXY,
        ALL_PROXY and NO_PROXY apply, as they do for httpx. SOCKS proxies are not supported.
        """
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._connection_pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._proxy = proxy
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        # Made with the session: a semaphore belongs to the loop that first waits on it.
        self._pool: asyncio.Semaphore | None = None
        self._env_proxies: dict[str, str] = {}
        self._proxy_by_origin: dict[str, str | None] = {}
        self._shut_down = False

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout in seconds (see `BaseRequest.read_timeout`)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session on the running loop, unless it is open already."""
        if self._session is not None and not self._session.closed:
            return
        if self._trust_env and self._proxy is None:
            # Read once, as httpx does when it builds its client; aiohttp's own trust_env
            # would look them up in a worker thread on every request.
            self._env_proxies = urllib.request.getproxies_environment()
        self._proxy_by_origin = {}
        connector = aiohttp.TCPConnector(
            limit=self._connection_pool_size,
            keepalive_timeout=_KEEPALIVE_SECONDS,
            ssl=self._ssl_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.USER_AGENT},
            # The Bot API sets no cookies; a dummy jar saves filtering them on every call.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(),
        )
        self._pool = asyncio.Semaphore(self._connection_pool_size)
        self._shut_down = False

    async def shutdown(self) -> None:
        """Close the session and its connections; harmless when there is none."""
        session, self._session = self._session, None
        self._shut_down = True
        if session is None or session.closed:
            logger.debug("This AiohttpRequest is already shut down. Returning.")
            return
        await session.close()

    async def do_request(  # noqa: PLR0917 - the signature is BaseRequest's
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request and return its HTTP status and body (see `BaseRequest`)."""
        session = await self._ready()

        files = (
            request_data.multipart_data if request_data and request_data.contains_files else None
        )
        parameters = request_data.json_parameters if request_data else None

        # A timeout not passed to the call is the instance's default; None means no limit.
        if isinstance(read_timeout, DefaultValue):
            read_timeout = self._read_timeout
        if isinstance(connect_timeout, DefaultValue):
            connect_timeout = self._connect_timeout
        if isinstance(pool_timeout, DefaultValue):
            pool_timeout = self._pool_timeout
        if isinstance(write_timeout, DefaultValue):
            write_timeout = self._write_timeout if not files else self._media_write_timeout

        total = None
        if files and not (connect_timeout is None or write_timeout is None or read_timeout is None):
            # No write timeout in aiohttp: bound the whole upload instead (see the module).
            total = connect_timeout + write_timeout + read_timeout
        timeout = aiohttp.ClientTimeout(
            total=total,
            connect=connect_timeout,  # name resolution + connecting; the pool is ours
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )

        async with (
            self._slot(url, pool_timeout),
            session.request(
                method,
                url,
                data=_body(parameters, files),
                headers=None if files or not parameters else _FORM_HEADERS,
                timeout=timeout,
                allow_redirects=False,  # httpx does not follow them either
                proxy=self._proxy_for(url),
            ) as response,
        ):
            return response.status, await response.read()

    async def retrieve_at_most(self, url: str, limit: int, *, seconds: float = 60.0) -> bytes:
        """A file's bytes, read as they come; `TooBig` as soon as more than `limit` have come
        (the rest is never read) and `TimedOut` after `seconds` in all. An uploaded file is
        never trusted to be the size Telegram said, nor to arrive at a reasonable pace."""
        session = await self._ready()
        timeout = aiohttp.ClientTimeout(
            total=seconds,
            connect=self._connect_timeout,
            sock_connect=self._connect_timeout,
            sock_read=self._read_timeout,
        )
        async with (
            self._slot(url, self._pool_timeout),
            session.get(
                url, timeout=timeout, allow_redirects=False, proxy=self._proxy_for(url)
            ) as response,
        ):
            if response.status != 200:
                raise NetworkError(f"file download failed with HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > limit:
                    raise TooBig(limit)
            return bytes(body)

    async def _ready(self) -> aiohttp.ClientSession:
        """The session, made on first use: HTTPXRequest works before initialize() too (its
        client exists from the start)."""
        if self._session is None or self._pool is None or self._session.closed:
            if self._shut_down:
                raise RuntimeError("This AiohttpRequest is not initialized!")
            await self.initialize()
        assert self._session is not None
        return self._session

    @contextlib.asynccontextmanager
    async def _slot(self, url: str, pool_timeout: float | None) -> AsyncIterator[None]:
        """A connection slot of the pool for one call; aiohttp's errors as
        python-telegram-bot's."""
        pool = self._pool
        assert pool is not None
        await _acquire(pool, pool_timeout)
        try:
            yield
        except TimeoutError as err:  # aiohttp's timeouts are TimeoutErrors too
            raise TimedOut from err
        except aiohttp.ClientError as err:
            # The class name, as HTTPXRequest gives it: the message alone may be empty.
            message = _without_path(str(err), url)
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {message}") from err
        finally:
            pool.release()

    def _proxy_for(self, url: str) -> str | None:
        """The explicit proxy, or the one the environment names for the URL's origin."""
        if self._proxy is not None or not self._env_proxies:
            return self._proxy
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        try:
            return self._proxy_by_origin[origin]
        except KeyError:
            pass
        proxy: str | None = None
        if not urllib.request.proxy_bypass(parts.hostname or "", self._env_proxies):
            proxy = self._env_proxies.get(parts.scheme) or self._env_proxies.get("all")
        self._proxy_by_origin[origin] = proxy
        return proxy

    def _ssl_context(self) -> ssl.SSLContext:
        """Certificates as httpx takes them: SSL_CERT_FILE or SSL_CERT_DIR, else certifi."""
        if self._trust_env and os.environ.get("SSL_CERT_FILE"):
            return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        if self._trust_env and os.environ.get("SSL_CERT_DIR"):
            return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
        return ssl.create_default_context(cafile=certifi.where())


class TooBig(Exception):
    """A download went past its limit; what was read of it is dropped."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


async def _acquire(pool: asyncio.Semaphore, pool_timeout: float | None) -> None:
    """Wait for a free connection slot at most pool_timeout seconds, like httpx's pool.

    aiohttp's connector would also queue, but its connect timeout covers queueing and
    connecting together; counting slots here keeps "pool full" apart from "server slow".
    """
    if pool_timeout is None or not pool.locked():
        await pool.acquire()
        return
    try:
        async with asyncio.timeout(pool_timeout):
            await pool.acquire()
    except TimeoutError as err:
        raise TimedOut(message=_POOL_TIMEOUT_MESSAGE) from err


def _body(
    parameters: dict[str, str] | None, files: UploadFileDict | None
) -> bytes | aiohttp.FormData | None:
    """The request body HTTPXRequest would send: nothing, a urlencoded form, or multipart."""
    if files:
        form = aiohttp.FormData(quote_fields=False)
        for name, value in (parameters or {}).items():
            form.add_field(name, value)
        for name, (file_name, content, mime_type) in files.items():
            form.add_field(name, content, filename=_form_param(file_name), content_type=mime_type)
        return form
    if parameters:
        return urlencode(parameters).encode("ascii")
    return None


def _form_param(value: str) -> str:
    """Escape a multipart parameter value as httpx does (aiohttp adds the backslashes)."""
    return _FORM_PARAM_SPECIAL.sub(lambda match: f"%{ord(match.group()):02X}", value)


def _without_path(text: str, url: str) -> str:
    """Cut the URL's path out of an error text: Bot API paths hold the bot token.

    Some aiohttp errors quote the whole URL (httpx's do not); PTB error messages end up in
    places that are not logs (the CLI prints them), where bot.logs cannot redact them.
    """
    path = urlsplit(url).path
    return text.replace(path, "/[path hidden]") if len(path) > 1 else text
