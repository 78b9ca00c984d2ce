"""A bot as its own process against the Bot API stand-in, and what /proc says about it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from bot.sandbox import BotApiSandbox

LOG = "bot.log"  # the process's output, in the run's temporary directory
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
_TICKS = os.sysconf("SC_CLK_TCK")


def bot_environment(
    sandbox: BotApiSandbox, *, url: str, directory: Path, key: str, **settings: object
) -> dict[str, str]:
    """`roundtable run`'s environment: this machine's, without any ROUNDTABLE_ setting of the
    shell, pointed at the stand-in; keyword arguments become further ROUNDTABLE_ settings.
    The process reads the real clock, so the stand-in must date messages by it too: a test that
    hands it one on the tests' fake clock passes only until the real date leaves the fake one
    behind (a referral's messages look older than Telegram's 48 hours, say)."""
    if not sandbox.on_real_time:
        raise ValueError("a real process runs on real time: start the stand-in on time.time")
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith("ROUNDTABLE_")},
        "ROUNDTABLE_TOKEN": sandbox.token,
        "ROUNDTABLE_BOT_API_URL": sandbox.base_url,
        "ROUNDTABLE_BOT_FILE_URL": sandbox.base_file_url,
        "ROUNDTABLE_DATABASE_URL": url,
        "ROUNDTABLE_ENCRYPTION_KEY": key,
        "ROUNDTABLE_DATA_DIR": str(directory / "data"),
        **{f"ROUNDTABLE_{name.upper()}": str(value) for name, value in settings.items()},
    }


async def start(
    module: str, arguments: list[str], environment: dict[str, str], directory: Path
) -> asyncio.subprocess.Process:
    """`python -m module arguments…` with its output appended to directory/bot.log."""
    with (directory / LOG).open("ab") as output:
        # The working directory is the temporary one: no .env of the repository is read.
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *arguments,
            env=environment,
            cwd=directory,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    await process.wait()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command's closing parenthesis: state is field 0, utime 11 and stime 12.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mb(pid: int) -> float:
    """The process's resident memory now, in MiB."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * _PAGE_KIB / 1024


def peak_rss_mb(pid: int) -> float:
    """The most resident memory the process has had, in MiB (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/<pid>/status")


def tail(directory: Path, lines: int = 20) -> str:
    log = directory / LOG
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
