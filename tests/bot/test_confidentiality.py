"""Confidentiality: a confirmation is stored and audited with its version, a second tap changes
nothing, an older version's button confirms nothing, a new version asks again; a case's
notification waits for it (held, the prompt planned once) and comes once confirmed; what a
referrer hears of her own referral does not wait."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.db import Database
from bot.core.models import (
    AuditEntry,
    ConfidentialityConfirmation,
    InstitutionKind,
    OutboxRow,
    OutboxStatus,
)
from bot.services import confidentiality, referrals
from bot.services.confidentiality import Confirmed
from tests.rows import participant_id


async def _rows(database: Database) -> dict[str, tuple[str, OutboxStatus, str | None]]:
    async with database.transaction() as session:
        rows = await session.execute(
            select(OutboxRow.key, OutboxRow.kind, OutboxRow.status, OutboxRow.outcome)
        )
        return {key: (kind, status, outcome) for key, kind, status, outcome in rows}


async def test_a_confirmation_is_stored_and_audited_with_its_version_once(
    database: Database, clock: FakeClock
) -> None:
    member_id = await participant_id(database, clock)
    async with database.transaction() as session:
        assert not await confidentiality.confirmed(session, member_id)
        assert await confidentiality.prompt_for(session, member_id) == confidentiality.Prompt(
            confidentiality.VERSION, guardian=False
        )
        first = await confidentiality.confirm(
            session, member_id, confidentiality.VERSION, now=clock.now()
        )
    clock.advance(timedelta(minutes=1))
    async with database.transaction() as session:
        second = await confidentiality.confirm(
            session, member_id, confidentiality.VERSION, now=clock.now()
        )
        assert await confidentiality.confirmed(session, member_id)
        assert await confidentiality.prompt_for(session, member_id) is None
        stored = list(await session.scalars(select(ConfidentialityConfirmation)))
        entries = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == confidentiality.ACTION)
            )
        )
    assert (first, second) == (Confirmed.NOW, Confirmed.ALREADY)
    assert [(row.member_id, row.version) for row in stored] == [(member_id, 1)]
    assert len(entries) == 1
    assert entries[0].actor_id == member_id and entries[0].subject_id == str(member_id)
    assert entries[0].details == {"version": 1, "wording": "member"}


async def test_a_guardian_gets_the_guardian_wording(database: Database, clock: FakeClock) -> None:
    member_id = await participant_id(database, clock, InstitutionKind.GUARDIANS)
    async with database.transaction() as session:
        prompt = await confidentiality.prompt_for(session, member_id)
        assert prompt is not None and prompt.guardian
        assert prompt.text == confidentiality.GUARDIAN_TEXT
        await confidentiality.confirm(session, member_id, 1, now=clock.now())
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == confidentiality.ACTION)
        )
    assert entry is not None and entry.details == {"version": 1, "wording": "guardian"}


async def test_a_new_version_asks_again_and_an_old_button_confirms_nothing(
    database: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    member_id = await participant_id(database, clock)
    async with database.transaction() as session:
        await confidentiality.confirm(session, member_id, 1, now=clock.now())
    monkeypatch.setattr(confidentiality, "VERSION", 2)
    async with database.transaction() as session:
        assert not await confidentiality.confirmed(session, member_id)
        assert await confidentiality.confirm(session, member_id, 1, now=clock.now()) == (
            Confirmed.STALE
        )
        assert not await confidentiality.confirmed(session, member_id)
        assert await confidentiality.confirm(session, member_id, 2, now=clock.now()) == (
            Confirmed.NOW
        )
        versions = list(
            await session.scalars(
                select(ConfidentialityConfirmation.version).order_by(
                    ConfidentialityConfirmation.version
                )
            )
        )
    assert versions == [1, 2]


async def test_a_case_notification_waits_for_the_confirmation_and_the_prompt_goes_once(
    database: Database, clock: FakeClock
) -> None:
    member_id = await participant_id(database, clock)
    now = clock.now()
    async with database.transaction() as session:
        await outbox.plan(
            session,
            [
                outbox.Planned(f"r{n}", "conference.reminder", "conference:1", member_id, now)
                for n in (1, 2)
            ]
            + [outbox.Planned("own", referrals.ACCEPTED, "referral:1", member_id, now)],
            now=now,
        )
        claimed = await outbox.claim(session, now=now, worker="w", limit=10)
        held = [
            await confidentiality.hold(session, row.id, row.member_id, row.kind, now=now)
            for row in claimed
        ]
    assert held == [True, True, False]
    rows = await _rows(database)
    assert rows["r1"] == ("conference.reminder", OutboxStatus.SKIPPED, outbox.HELD)
    assert rows["own"][1] is OutboxStatus.SENDING  # a referrer's own news does not wait
    prompts = [key for key, (kind, _, _) in rows.items() if kind == confidentiality.PROMPT]
    assert prompts == [f"confidentiality:{member_id}:1"]
    # A held row is cancelled as a pending one would be (a new date, an answer).
    async with database.transaction() as session:
        assert await outbox.cancel(session, now=now, prefix="r2") == 1
        await confidentiality.confirm(session, member_id, 1, now=now)
        assert outbox.planned(session)  # the sender is woken after the commit
    rows = await _rows(database)
    assert rows["r1"] == ("conference.reminder", OutboxStatus.PENDING, None)
    assert rows["r2"][1] is OutboxStatus.CANCELLED
    async with database.transaction() as session:
        assert not await confidentiality.holds(session, member_id, "conference.reminder", now=now)


async def test_seeded_members_are_recorded_without_an_audit_entry(
    database: Database, clock: FakeClock
) -> None:
    member_id = await participant_id(database, clock)
    async with database.transaction() as session:
        await confidentiality.record_seeded(session, now=clock.now())
        await confidentiality.record_seeded(session, now=clock.now())
        assert await confidentiality.confirmed(session, member_id)
        assert await session.scalar(select(AuditEntry.id)) is None
