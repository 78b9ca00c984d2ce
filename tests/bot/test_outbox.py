"""The outbox's rows: planning is idempotent, cancelling is precise, claiming never hands the
same row to two dispatchers (two concurrent claimers on the real database), late rows are
skipped, and a dead process's claims come back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.db import Database
from bot.core.models import OutboxRow, OutboxStatus
from tests.rows import participant_id


def _row(member_id: int, key: str, clock: FakeClock, **kw: object) -> outbox.Planned:
    values: dict[str, object] = {
        "key": key,
        "kind": "test",
        "subject": "conference:1",
        "member_id": member_id,
        "due_at": clock.now(),
    }
    values.update(kw)
    return outbox.Planned(**values)  # type: ignore[arg-type]


async def _statuses(database: Database) -> dict[str, OutboxStatus]:
    async with database.transaction() as session:
        rows = await session.execute(select(OutboxRow.key, OutboxRow.status))
        return {key: status for key, status in rows}


async def test_planning_twice_is_one_row_and_cancel_takes_only_what_it_names(
    database: Database, clock: FakeClock
) -> None:
    member = await participant_id(database, clock)
    now = clock.now()
    for _ in range(2):
        async with database.transaction() as session:
            await outbox.plan(
                session,
                [
                    _row(member, "conference:1:s0:remind-2d:i1:m1", clock),
                    _row(member, "conference:1:s0:remind-2d:i10:m1", clock),
                    _row(member, "conference:1:s0:rsvp:i1:m1", clock),
                    _row(member, "conference:2:s0:rsvp:i1:m1", clock, subject="conference:2"),
                ],
                now=now,
            )
    assert len(await _statuses(database)) == 4
    async with database.transaction() as session:
        # "i1:" must not take "i10:" with it; an underscore or percent sign is no wildcard.
        assert await outbox.cancel(session, prefix="conference:1:s0:remind-2d:i1:", now=now) == 1
        assert await outbox.cancel(session, prefix="conference:1:s0:remind_2d", now=now) == 0
        assert await outbox.cancel(session, subject="conference:2", now=now) == 1
    statuses = await _statuses(database)
    assert statuses == {
        "conference:1:s0:remind-2d:i1:m1": OutboxStatus.CANCELLED,
        "conference:1:s0:remind-2d:i10:m1": OutboxStatus.PENDING,
        "conference:1:s0:rsvp:i1:m1": OutboxStatus.PENDING,
        "conference:2:s0:rsvp:i1:m1": OutboxStatus.CANCELLED,
    }
    async with database.transaction() as session:
        await outbox.plan(session, [_row(member, "conference:2:s0:rsvp:i1:m1", clock)], now=now)
    assert (await _statuses(database))["conference:2:s0:rsvp:i1:m1"] is OutboxStatus.CANCELLED


async def test_two_dispatchers_claiming_at_once_never_get_the_same_row(
    database: Database, clock: FakeClock
) -> None:
    member = await participant_id(database, clock)
    async with database.transaction() as session:
        await outbox.plan(
            session, [_row(member, f"k{n}", clock) for n in range(120)], now=clock.now()
        )

    async def claimer(worker: str) -> list[int]:
        taken: list[int] = []
        while True:
            async with database.transaction() as session:
                batch = await outbox.claim(session, now=clock.now(), worker=worker, limit=7)
            if not batch:
                return taken
            taken += [row.id for row in batch]
            await asyncio.sleep(0)

    first, second = await asyncio.gather(claimer("a"), claimer("b"))
    assert not set(first) & set(second)
    assert len(first) + len(second) == 120
    assert first and second  # both took part
    async with database.transaction() as session:
        owners = set(await session.scalars(select(OutboxRow.claimed_by)))
    assert owners == {"a", "b"}


async def test_late_rows_are_skipped_and_a_dead_process_claims_come_back(
    database: Database, clock: FakeClock
) -> None:
    member = await participant_id(database, clock)
    now = clock.now()
    async with database.transaction() as session:
        await outbox.plan(
            session,
            [
                _row(member, "late", clock, expires_at=now - timedelta(minutes=1)),
                _row(member, "still-useful", clock, expires_at=now + timedelta(hours=1)),
                _row(member, "later", clock, due_at=now + timedelta(hours=2)),
            ],
            now=now,
        )
        assert await outbox.skip_expired(session, now=now) == 1
        claimed = await outbox.claim(session, now=now, worker="dead", limit=10)
    assert [row.key for row in claimed] == ["still-useful"]
    async with database.transaction() as session:
        assert await outbox.next_due(session) == now + timedelta(hours=2)
        # The same worker's claims stay (it is alive); another worker's come back at its start.
        assert (
            await outbox.release(session, now=now, lease=timedelta(minutes=5), except_worker="dead")
            == 0
        )
        assert (
            await outbox.release(session, now=now, lease=timedelta(minutes=5), except_worker="new")
            == 1
        )
    statuses = await _statuses(database)
    assert statuses == {
        "late": OutboxStatus.SKIPPED,
        "still-useful": OutboxStatus.PENDING,
        "later": OutboxStatus.PENDING,
    }
    async with database.transaction() as session:
        await outbox.claim(session, now=now, worker="stuck", limit=10)
        later = now + timedelta(minutes=6)
        # A claim older than the lease is released by whoever runs.
        assert await outbox.release(session, now=later, lease=timedelta(minutes=5)) == 1


async def test_a_transaction_knows_whether_it_planned_rows(
    database: Database, clock: FakeClock
) -> None:
    """What the dialogs' use-case runner asks before waking the dispatcher."""
    member_id = await participant_id(database, clock)
    async with database.transaction() as session:
        assert not outbox.planned(session)
        await outbox.plan(session, [_row(member_id, "k1", clock)], now=clock.now())
        assert outbox.planned(session)
    async with database.transaction() as session:
        assert not outbox.planned(session)
        await outbox.plan(session, [], now=clock.now())
        assert not outbox.planned(session)


async def test_revived_rows_are_pending_again_and_wake_the_sender(
    database: Database, clock: FakeClock
) -> None:
    """Accept, decline, accept again: the reminders the decline cancelled come back, and the
    transaction that brings them back wakes the sender like one that plans."""
    member_id = await participant_id(database, clock)
    now = clock.now()
    async with database.transaction() as session:
        await outbox.plan(
            session,
            [
                _row(member_id, "conference:1:s0:remind-2d:i1:m1", clock),
                _row(member_id, "conference:1:s0:remind-2d:i2:m1", clock),
            ],
            now=now,
        )
        await outbox.cancel(session, subject="conference:1", now=now)
    async with database.transaction() as session:
        revived = await outbox.revive(
            session, kind="test", member_id=member_id, prefix="conference:1:s0:remind-2d:i1:"
        )
        assert revived == 1
        assert outbox.planned(session)
    async with database.transaction() as session:
        assert not await outbox.revive(
            session, kind="test", member_id=member_id, prefix="conference:1:s0:remind-2d:i1:"
        )
        assert not outbox.planned(session)
    assert await _statuses(database) == {
        "conference:1:s0:remind-2d:i1:m1": OutboxStatus.PENDING,
        "conference:1:s0:remind-2d:i2:m1": OutboxStatus.CANCELLED,
    }
