"""A TCP proxy on 127.0.0.1 in front of a database server, which can take the database away.

`outage(seconds)` does what a server restart does to its clients: every open connection is
reset at once and new ones are refused until the time is up; then connections go through
again. The server behind it is never touched, so a shared PostgreSQL can stay up for others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

_CHUNK = 65536


class DatabaseProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.cuts = 0  # outages so far
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._reopening: asyncio.TimerHandle | None = None
        self._opening: asyncio.Task[None] | None = None
        self._reopened = asyncio.Event()

    @classmethod
    @asynccontextmanager
    async def to(cls, url: str) -> AsyncIterator[DatabaseProxy]:
        """A running proxy in front of the server of a database URL."""
        parsed = make_url(url)
        proxy = cls(parsed.host or "127.0.0.1", parsed.port or 5432)
        await proxy.start()
        try:
            yield proxy
        finally:
            await proxy.stop()

    def url_for(self, url: str) -> str:
        """The same database, reached through the proxy."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._reopened.set()

    async def stop(self) -> None:
        if self._reopening is not None:
            self._reopening.cancel()
        if self._opening is not None:
            await self._opening
        await self._close()

    def outage(self, seconds: float) -> asyncio.Event:
        """Reset every connection and refuse new ones for `seconds` (from now, also when an
        outage is already on); the event is set when connections go through again."""
        self.cuts += 1
        self._reopened.clear()
        loop = asyncio.get_running_loop()
        if self._reopening is not None:
            self._reopening.cancel()
        closing = loop.create_task(self._close())

        async def reopen() -> None:
            await closing
            await self.start()

        def reopen_soon() -> None:
            self._opening = loop.create_task(reopen())

        self._reopening = loop.call_later(seconds, reopen_soon)
        return self._reopened

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # refuses new connections from now on
        for link in list(self._links):
            link.cancel()
        if self._links:
            await asyncio.gather(*self._links, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection(*self.upstream)
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._links.discard(task)
            # abort, not close: the client sees the connection reset, as when a server dies
            for side in (writer, upstream):
                if side is not None:
                    side.transport.abort()


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    while data := await source.read(_CHUNK):
        target.write(data)
        await target.drain()
    with contextlib.suppress(OSError):
        target.write_eof()
