"""The page's own HTTP server, in long-polling mode (in webhook mode the webhook's server
serves the page too: `WebhookServer(pages=…)`)."""

from __future__ import annotations

from aiohttp import web

from bot.transport.web.pages import MAX_FORM, WebPages

_SHUTDOWN_SECONDS = 5.0


class WebServer:
    def __init__(self, pages: WebPages, *, listen: str, port: int) -> None:
        self.pages = pages
        self._listen = listen
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose, when asked for 0)."""
        assert self._runner is not None
        for address in self._runner.addresses:
            return int(address[1])
        return self._port

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_FORM)
        self.pages.add_routes(app)
        # No access log: a guest's link is their key.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_SECONDS
        )
        await runner.setup()
        await web.TCPSite(runner, self._listen, self._port).start()
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
