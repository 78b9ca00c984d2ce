"""The rules of the referral services (drafting, referrals) that the dialog tests do not reach
directly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import Referral, Role
from bot.services import cases, drafting, leavers
from bot.services.drafting import Draft
from bot.services.members import Actor
from bot.services.referrals import Rejected
from tests.bot.sql import statements
from tests.bot.test_members import _join


async def _draft_at(
    database: Database, clock: FakeClock, cipher: Cipher, actor: Actor, step: str
) -> Draft:
    async with database.transaction() as session:
        await drafting.start_draft(session, actor, cipher, now=clock.now())
        return await drafting.go_to(session, actor, cipher, step, now=clock.now())


async def _teacher_at(database: Database, clock: FakeClock, cipher: Cipher, step: str) -> Actor:
    """A teacher who refers (the first member) with a draft at `step`."""
    teacher = await _join(database, clock, Role.REFERRER, 1)
    await _draft_at(database, clock, cipher, teacher, step)
    return teacher


async def test_codes_count_per_prefix_and_year_without_duplicates_under_concurrency(
    database: Database,
) -> None:
    now = datetime(2026, 12, 31, 22, 0, tzinfo=UTC)

    async def one(prefix: str, moment: datetime) -> str:
        async with database.transaction() as session:
            return await cases.next_code(session, prefix, moment)

    codes = await asyncio.gather(*(one("R", now) for _ in range(20)))
    assert sorted(codes) == [f"R-2026-{n:04d}" for n in range(1, 21)]
    assert await one("PK", now) == "PK-2026-0001"
    assert await one("R", datetime(2027, 1, 1, 8, 0, tzinfo=UTC)) == "R-2027-0001"


async def test_the_year_of_birth_must_be_a_school_age(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    teacher = await _teacher_at(database, clock, cipher, "year")
    results = []
    for typed in ("2006", "2005", "2023", "2024", "２０１５", " 2015 "):
        async with database.transaction() as session:
            results.append(
                await drafting.set_text(session, teacher, cipher, typed, now=clock.now())
            )
            if isinstance(results[-1], Draft):
                await drafting.go_to(session, teacher, cipher, "year", now=clock.now())
    kinds = [r.reason if isinstance(r, Rejected) else r.birth_year for r in results]
    assert kinds == [2006, "year", 2023, "year", 2015, 2015]  # full-width digits are digits


async def test_a_button_of_another_step_changes_nothing(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    teacher = await _teacher_at(database, clock, cipher, "name")
    async with database.transaction() as session:
        stale = await drafting.set_choice(
            session, teacher, cipher, "urgency", "urgent", now=clock.now()
        )
        forged = await drafting.set_choice(
            session, teacher, cipher, "name", "anything", now=clock.now()
        )
        row = await session.scalar(select(Referral))
    assert stale is None and forged is None
    assert row is not None and row.urgency is None and row.step == "name"


async def test_sending_an_incomplete_draft_asks_for_what_is_missing(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    teacher = await _teacher_at(database, clock, cipher, "danger")
    async with database.transaction() as session:
        result = await drafting.submit(session, teacher, cipher, now=clock.now())
    assert isinstance(result, Draft) and result.step == "danger" and result.back_to_summary


async def test_a_participant_cannot_start_a_referral_and_only_one_draft_exists(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    teacher = await _join(database, clock, Role.REFERRER, 1)
    for _ in range(3):
        await _draft_at(database, clock, cipher, teacher, "name")
    async with database.transaction() as session:
        drafts = list(await session.scalars(select(Referral)))
    assert len(drafts) == 1
    assert not drafting.can_refer(await _join(database, clock, Role.PARTICIPANT, 2))


async def test_a_leavers_unfinished_draft_is_deleted_with_them(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    admin = await _join(database, clock, Role.ADMIN, 1)
    teacher = await _join(database, clock, Role.REFERRER, 2)
    await _draft_at(database, clock, cipher, teacher, "name")
    async with database.transaction() as session:
        await leavers.deactivate_member(session, admin, teacher.member_id, now=clock.now())
    async with database.transaction() as session:
        assert await session.scalar(select(Referral)) is None


async def test_a_typed_answer_reads_the_draft_once(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    """The dialog's step notes the message, takes the text and shows the draft: one query
    for the draft, however many times the step asks for it."""
    teacher = await _teacher_at(database, clock, cipher, "name")
    with statements(database) as seen:
        async with database.transaction() as session:
            draft, _rejected = await drafting.typed_step(
                session,
                teacher,
                cipher,
                "Jan Vzorový",
                message_id=41,
                sent_at=1_790_000_000,
                now=clock.now(),
            )
    assert draft is not None and draft.step == "year" and draft.name == "Jan Vzorový"
    assert (
        sum(1 for sql in seen if sql.lstrip().startswith("SELECT") and "FROM referrals" in sql) == 1
    )
    async with database.transaction() as session:
        gone = await drafting.discard_draft(session, teacher)
        assert gone == [[41, 1_790_000_000, 0]]
        assert await drafting.find_draft(session, teacher, cipher) is None
