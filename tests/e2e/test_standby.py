"""Two outbox workers on one database never send the same notification: neither one that
starts while the other is sending, nor one that finds the other's claims past their lease."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot import outbox
from bot.app import build_application
from bot.clock import FakeClock
from bot.config import Settings, isolated_settings
from bot.crypto import Cipher
from bot.db import Database
from bot.models import Member, OutboxRow, OutboxStatus, Role
from bot.runtime import Runtime
from bot.sandbox import Person
from bot.services.referrals import DRAFT_EXPIRED
from handlers.common import Context
from tests.e2e.conftest import RunningBot


async def _until(check: Callable[[], bool], within: float, what: str) -> None:
    """Wait for a condition of another process (a log line, a database row)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


async def plan_notices(
    database: Database, people: list[Person], each: int, *, prefix: str, now: datetime
) -> None:
    """Each person gets `each` notifications due now (their expired draft, told), keyed by
    prefix: planned by another process, as far as the bot can tell."""
    async with database.transaction() as session:
        rows = await session.execute(
            select(Member.chat_id, Member.id).where(Member.chat_id.in_([p.chat_id for p in people]))
        )
        ids = {chat_id: member_id for chat_id, member_id in rows}
        await outbox.plan(
            session,
            [
                outbox.Planned(
                    key=f"{prefix}:{person.chat_id}:{number}",
                    kind=DRAFT_EXPIRED,
                    subject=f"member:{ids[person.chat_id]}",
                    member_id=ids[person.chat_id],
                    chat_id=person.chat_id,
                    due_at=now,
                    payload={"started_at": (now - timedelta(days=14)).isoformat()},
                )
                for person in people
                for number in range(each)
            ],
            now=now,
        )


# Two outbox workers on one database (two processes' worth: each its own engine and pool).


@pytest.fixture
def two_runtimes(settings: Settings, clock: FakeClock, cipher: Cipher) -> list[Runtime]:
    """Together below the stand-in's 30 messages a second: no 429 to wait out in fake time."""
    return [
        Runtime(
            settings=isolated_settings(**{**settings.model_dump(), "outbox_per_second": 12}),
            database=Database(settings.effective_database_url),
            clock=clock,
            cipher=cipher,
        )
        for _worker in range(2)
    ]


async def _recipients(bot: RunningBot, count: int) -> list[Person]:
    people = []
    for number in range(count):
        people.append(await bot.join(300 + number, f"Učitel {number}", Role.REFERRER))
    return people


def _received(person: Person) -> int:
    return sum(
        1
        for event in person.events
        if event.kind == "sent"
        and event.message
        and "was deleted after 14 days" in (event.message.text or "")
    )


async def _statuses(runtime: Runtime) -> dict[OutboxStatus, int]:
    async with runtime.database.reading() as session:
        rows = await session.execute(
            select(OutboxRow.status, func.count())
            .where(OutboxRow.key.startswith("two:"))
            .group_by(OutboxRow.status)
        )
        return {status: int(count) for status, count in rows}


async def test_two_outbox_workers_on_one_database_send_every_notification_exactly_once(
    bot: RunningBot, two_runtimes: list[Runtime], clock: FakeClock
) -> None:
    people = await _recipients(bot, 30)
    await bot.settle()
    first, second = (build_application(runtime) for runtime in two_runtimes)
    workers: list[outbox.Dispatcher] = [
        app.bot_data[outbox.DISPATCHER_KEY] for app in (first, second)
    ]
    await plan_notices(
        bot.runtime.database, people, 4, prefix="two", now=clock.now()
    )  # 120 due at once: more than one batch of 100
    try:
        async with workers[0].bot, workers[1].bot:
            running = asyncio.create_task(workers[0].run(Context(first)))
            # The second starts while the first is sending its batch.
            await _until(lambda: sum(map(_received, people)) >= 10, 30, "the first sends")
            assert not running.done()
            await asyncio.gather(running, workers[1].run(Context(second)))
    finally:
        for runtime in two_runtimes:
            await runtime.database.dispose()
    assert [_received(person) for person in people] == [4] * 30
    assert await _statuses(bot.runtime) == {OutboxStatus.SENT: 120}


async def test_a_claim_past_its_lease_is_left_to_the_worker_that_took_it_over(
    bot: RunningBot, two_runtimes: list[Runtime], clock: FakeClock
) -> None:
    """A worker held up longer than the lease (a long 429 wait, a frozen host) finds its rows
    taken over by another worker and does not send them as well."""
    people = await _recipients(bot, 10)
    await bot.settle()
    first, second = (build_application(runtime) for runtime in two_runtimes)
    slow: outbox.Dispatcher = first.bot_data[outbox.DISPATCHER_KEY]
    other: outbox.Dispatcher = second.bot_data[outbox.DISPATCHER_KEY]
    held = asyncio.Event()
    waiting = 0
    overall = slow.pacer.overall

    async def held_up() -> None:
        nonlocal waiting
        waiting += 1
        await held.wait()
        await overall()

    slow.pacer.overall = held_up  # type: ignore[method-assign]
    await plan_notices(bot.runtime.database, people, 2, prefix="two", now=clock.now())
    try:
        async with slow.bot, other.bot:
            running = asyncio.create_task(slow.run(Context(first)))
            await _until(lambda: waiting == slow.concurrency, 30, "the slow worker has claimed")
            clock.advance(slow.lease + timedelta(seconds=1))
            await other.run(Context(second))
            assert [_received(person) for person in people] == [2] * 10
            held.set()
            await running
    finally:
        for runtime in two_runtimes:
            await runtime.database.dispose()
    assert [_received(person) for person in people] == [2] * 10
    assert await _statuses(bot.runtime) == {OutboxStatus.SENT: 20}
