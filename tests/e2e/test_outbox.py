"""The outbox against the Bot API stand-in: a 5xx is retried later and sent once, a 429 puts
the row back without holding up the bot's answers, a person who blocked the bot is marked
unreachable, and after downtime a late reminder is sent only while it
still makes sense."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.models import InstitutionKind, Member, OutboxRow, OutboxStatus, Role
from bot.sandbox import Person
from bot.transport.telegram import delivery
from tests.e2e.conftest import RunningBot
from tests.rows import draft_expired_notice


async def _petr(bot: RunningBot) -> Person:
    """Petr of Policie Cheb, to whom the tests' rows go."""
    return await bot.join(
        3, "Petr", Role.PARTICIPANT, institution="Policie Cheb", kind=InstitutionKind.POLICE
    )


async def _plan(bot: RunningBot, name: str, key: str, **kw: Any) -> int:
    runtime = bot.runtime
    now = runtime.clock.now()
    async with runtime.database.transaction() as session:
        member = await session.scalar(select(Member).where(Member.display_name == name))
        assert member is not None
        await outbox.plan(session, [draft_expired_notice(key, member.id, now, **kw)], now=now)
        return member.id


async def _row(bot: RunningBot, key: str) -> OutboxRow:
    async with bot.runtime.database.transaction() as session:
        row = await session.scalar(select(OutboxRow).where(OutboxRow.key == key))
    assert row is not None
    return row


def _told(person: object) -> int:
    messages = person.messages.values()  # type: ignore[attr-defined]
    return sum("was deleted after 14 days" in (m.text or "") for m in messages)


async def test_a_server_error_is_retried_with_backoff_and_sent_once(
    bot: RunningBot, clock: FakeClock
) -> None:
    petr = await _petr(bot)
    await _plan(bot, "Petr", "retry")
    bot.sandbox.fail_next("sendMessage", 502)
    await bot.sweep()
    row = await _row(bot, "retry")
    assert (row.status, row.attempts, row.retry_at) == (
        OutboxStatus.PENDING,
        1,
        clock.now() + timedelta(seconds=5),
    )
    assert _told(petr) == 0
    await bot.sweep()  # not yet: the backoff has not passed
    assert _told(petr) == 0
    clock.advance(timedelta(seconds=5))
    await bot.sweep()
    assert _told(petr) == 1
    await bot.sweep()
    assert _told(petr) == 1
    assert (await _row(bot, "retry")).status is OutboxStatus.SENT


async def test_a_flood_wait_puts_the_row_back_and_holds_up_no_one_else(
    bot: RunningBot, clock: FakeClock
) -> None:
    petr = await _petr(bot)
    await _plan(bot, "Petr", "flood")
    bot.sandbox.fail_next("sendMessage", 429, retry_after=40)
    # Not retried by the rate limiter in place (that would wait 40 s per try): the row goes
    # back until the moment Telegram gave, and no attempt is used up.
    await asyncio.wait_for(bot.sweep(), timeout=10)
    row = await _row(bot, "flood")
    assert (row.status, row.attempts, row.retry_at) == (
        OutboxStatus.PENDING,
        0,
        clock.now() + timedelta(seconds=40),
    )
    assert _told(petr) == 0
    # The outbox waits; the bot's answers to people do not.
    await petr.send_text("/help")
    assert "As a participant" in ((await petr.next_message(timeout=5)).text or "")
    assert _told(petr) == 0


async def test_a_person_who_blocked_the_bot_is_marked_unreachable(
    bot: RunningBot, clock: FakeClock
) -> None:
    nina = await bot.join(
        6, "Nina", Role.PARTICIPANT, institution="Spirála", kind=InstitutionKind.NGO
    )
    await nina.block_bot()
    member_id = await _plan(bot, "Nina", "blocked")
    await bot.sweep()
    row = await _row(bot, "blocked")
    assert (row.status, row.outcome) == (OutboxStatus.FAILED, "blocked")
    async with bot.runtime.database.transaction() as session:
        member = await session.get_one(Member, member_id)
    assert not member.reachable


async def test_after_downtime_a_late_row_is_sent_only_while_it_makes_sense(
    bot: RunningBot, clock: FakeClock
) -> None:
    petr = await _petr(bot)
    now = clock.now()
    # "Tomorrow at 9" planned for yesterday evening: still worth sending this morning.
    await _plan(
        bot, "Petr", "useful", due_at=now - timedelta(hours=14), expires_at=now + timedelta(hours=1)
    )
    # "In two hours", for a conference that began an hour ago: moot.
    await _plan(
        bot, "Petr", "moot", due_at=now - timedelta(hours=3), expires_at=now - timedelta(hours=1)
    )
    await bot.sweep()
    assert (await _row(bot, "useful")).status is OutboxStatus.SENT
    moot = await _row(bot, "moot")
    assert (moot.status, moot.outcome) == (OutboxStatus.SKIPPED, "too late")
    assert _told(petr) == 1


async def test_the_database_away_while_the_outbox_works_loses_and_doubles_nothing(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away (a PostgreSQL restart) while the outbox looks for due rows, then
    again right after a message went out: it looks again shortly, and notes the message as
    sent once it can, instead of stopping for good or sending it again."""
    petr = await _petr(bot)
    failures = {"claim": 1, "next_due": 1, "finish": 1}

    def away_once(name: str, real: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            if failures[name]:
                failures[name] -= 1
                raise ConnectionRefusedError(111, "Connect call failed")
            return await real(*args, **kwargs)

        return call

    for name in failures:
        monkeypatch.setattr(outbox, name, away_once(name, getattr(outbox, name)))
    await _plan(bot, "Petr", "away")
    delivery.wake(bot.application)
    told = await petr.next_message(timeout=20)  # the outbox looked again
    assert "was deleted after 14 days" in (told.text or "")
    for _ in range(1000):  # waits for the bookkeeping and the next look, not for time to pass
        sent = (await _row(bot, "away")).status is OutboxStatus.SENT
        if sent and not any(failures.values()):
            break
        await asyncio.sleep(0.01)
    assert (await _row(bot, "away")).status is OutboxStatus.SENT
    assert failures == {"claim": 0, "next_due": 0, "finish": 0}
    await bot.sweep()
    assert _told(petr) == 1
