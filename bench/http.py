"""Benchmark of the HTTP layer under Telegram's round trip: HTTPXRequest against AiohttpRequest.

Issue 8: with 30-60 ms between a Bot API call and its answer, a bot keeps many calls in
flight, and PTB's default HTTPXRequest spent most of the bot's CPU time in httpx/httpcore.
This sends the same `send_message` calls through a PTB `Bot` with each request class
(connection pool = concurrency) and prints one JSON line per class:

    {"bench": "http", "request": "httpx"|"aiohttp", "rtt_ms": R, "calls": N,
     "concurrency": C, "calls_per_s": ..., "cpu_ms_per_call": ..., ...}

cpu_ms_per_call is this process's CPU time (time.process_time) per call. The Bot API
stand-in therefore runs in a subprocess of its own (flood limits off, the given delay), so
its CPU time does not count; server_cpu_ms_per_call reports it separately (from /proc), to
see whether the stand-in, not the request class, was the limit. Both share 2 CPUs here.

    python -m bench.http [--rtt-ms 30] [--calls 3000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from telegram import Bot
from telegram.request import BaseRequest, HTTPXRequest

from bot.sandbox import BotApiSandbox, FloodLimits
from bot.transport.telegram.http import AiohttpRequest

TOKEN = "7000000001:SANDBOX-token-for-the-http-bench"
FIRST_CHAT = 100_000_000
CHATS = 100  # messages go round these chats; with flood limits off their number is moot
TEXT = "Připomínka: porada k případu P-2026-0001 zítra v 9:00, MěÚ Cheb, zasedačka 2."
REQUESTS: dict[str, Callable[..., BaseRequest]] = {
    "httpx": HTTPXRequest,
    "aiohttp": AiohttpRequest,
}


@dataclass(frozen=True)
class Options:
    rtt_ms: float
    calls: int
    concurrency: int
    requests: tuple[str, ...]


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    parser.add_argument("--rtt-ms", type=float, default=30.0, help="stand-in delay per call")
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per class")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument(
        "--request", choices=sorted(REQUESTS), action="append", help="only these classes"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.rtt_ms))
        raise SystemExit(0)
    if args.calls < 1 or args.concurrency < 1:
        parser.error("--calls and --concurrency must be at least 1")
    return Options(
        rtt_ms=args.rtt_ms,
        calls=args.calls,
        concurrency=args.concurrency,
        requests=tuple(args.request or REQUESTS),
    )


# The stand-in, in its own process.


async def serve(rtt_ms: float) -> None:
    """Serve the stand-in until standard input closes; the first line out is the port."""
    box = BotApiSandbox(token=TOKEN, flood=FloodLimits(enabled=False), rtt_ms=rtt_ms)
    for number in range(CHATS):
        box.person(FIRST_CHAT + number, f"Person {number}")
    await box.start()
    print(box.port, flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await box.stop()


class Server:
    """The stand-in subprocess: its port and how much CPU time it has used so far."""

    def __init__(self, rtt_ms: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.http", "--serve", "--rtt-ms", str(rtt_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"the stand-in did not start (it said {line!r})")
        self.port = int(line)

    def cpu_seconds(self) -> float | None:
        """user + system time from /proc (None where there is no /proc)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # serve() returns and the process ends
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# The client side, in this process.


async def send(bot: Bot, calls: int, concurrency: int) -> None:
    """`calls` send_message calls, `concurrency` of them in flight at any time."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await bot.send_message(FIRST_CHAT + remaining % CHATS, TEXT)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, calls))))


async def measure(name: str, server: Server, options: Options) -> dict[str, object]:
    make = REQUESTS[name]
    base = f"http://127.0.0.1:{server.port}"
    bot = Bot(
        TOKEN,
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        request=make(connection_pool_size=options.concurrency),
    )
    async with bot:
        # Warm up: open the pool's connections and let both sides settle.
        await send(bot, min(options.calls, 4 * options.concurrency), options.concurrency)
        gc.collect()
        server_before = server.cpu_seconds()
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        await send(bot, options.calls, options.concurrency)
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
        server_after = server.cpu_seconds()
    server_cpu = (
        None if server_before is None or server_after is None else server_after - server_before
    )
    return {
        "bench": "http",
        "request": name,
        "rtt_ms": options.rtt_ms,
        "calls": options.calls,
        "concurrency": options.concurrency,
        "calls_per_s": round(options.calls / wall, 1),
        "cpu_ms_per_call": round(cpu * 1000 / options.calls, 3),
        "server_cpu_ms_per_call": (
            None if server_cpu is None else round(server_cpu * 1000 / options.calls, 3)
        ),
        "sniffio": importlib.util.find_spec("sniffio") is not None,
    }


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    options = parse(arguments)
    if importlib.util.find_spec("sniffio") is None:
        print("note: sniffio is not installed; httpcore retries importing it", file=sys.stderr)
    server = Server(options.rtt_ms)
    try:
        for name in options.requests:
            print(json.dumps(asyncio.run(measure(name, server, options))), flush=True)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
