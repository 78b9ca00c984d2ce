"""Busy times from an uploaded calendar file, read in a child process within a time budget.

The calendar libraries loop in Python code that nothing can interrupt, and some rules cost far
more than their size: FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30 never happens, so dateutil looks for
it day by day until the year 9999 (seconds per event, hours for a file of them). A child process
can be killed when its budget is spent, and the memory it took goes with it. Two at a time, so
that a burst of uploads cannot take every core and all the memory.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import weakref
from datetime import datetime
from zoneinfo import ZoneInfo

from scheduling.busy import MAX_BYTES, BusyImportError, BusyRead, busy_intervals

AT_ONCE = 2
CHILD_MEMORY = 1 << 30  # bytes of address space; a 2 MB file takes about 200 MB at most
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


async def read_busy(
    data: bytes, *, start: datetime, end: datetime, zone: ZoneInfo, seconds: float
) -> BusyRead:
    """`scheduling.busy.busy_intervals` in a child process that is killed after `seconds`
    (a file that takes longer is "too_many": it has more in it than anyone's calendar)."""
    if len(data) > MAX_BYTES:
        raise BusyImportError("too_big")
    async with _gate():
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            start.isoformat(),
            end.isoformat(),
            zone.key,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            async with asyncio.timeout(seconds):
                output, _ = await process.communicate(data)
        except TimeoutError:
            raise BusyImportError("too_many") from None
        finally:
            if process.returncode is None:  # out of time, or the update was cancelled
                process.kill()
                await process.wait()
    try:
        answer = json.loads(output)
    except ValueError:  # the child died (out of memory, say): the file was not usable
        raise BusyImportError("not_calendar") from None
    if "refused" in answer:
        raise BusyImportError(str(answer["refused"]))
    return BusyRead(
        [(int(first), int(last)) for first, last in answer["intervals"]], int(answer["skipped"])
    )


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(AT_ONCE)
    return gate


def _child(arguments: list[str]) -> str:
    """The child's work: the file on standard input, the answer as JSON."""
    start, end, zone = arguments
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    data = sys.stdin.buffer.read(MAX_BYTES + 1)
    try:
        read = busy_intervals(
            data,
            start=datetime.fromisoformat(start),
            end=datetime.fromisoformat(end),
            zone=ZoneInfo(zone),
        )
    except BusyImportError as error:
        return json.dumps({"refused": error.reason})
    except MemoryError:
        return json.dumps({"refused": "too_many"})
    return json.dumps({"intervals": read.intervals, "skipped": read.skipped})


if __name__ == "__main__":
    sys.stdout.write(_child(sys.argv[1:]))
