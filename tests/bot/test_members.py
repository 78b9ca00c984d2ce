"""Joining by invite code, invites by role, deactivation: the rules in bot.services.members."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import AuditEntry, InstitutionKind, Member, Role
from bot.services import leavers, members
from bot.services.errors import NotFound, PermissionDenied
from bot.transport.telegram.persistence import DatabasePersistence

TTL = timedelta(days=7)


async def _invite(
    database: Database,
    clock: FakeClock,
    role: Role = Role.REFERRER,
    *,
    district: str = "Cheb",
    institution: str = "ZŠ Hradební",
    creator: members.Actor | None = None,
) -> members.IssuedInvite:
    async with database.transaction() as session:
        found = await members.ensure_district(session, district, now=clock.now())
        school = await members.ensure_institution(
            session, found, institution, InstitutionKind.SCHOOL, now=clock.now()
        )
        return await members.create_invite(
            session, institution_id=school.id, role=role, creator=creator, now=clock.now(), ttl=TTL
        )


async def _redeem(
    database: Database, clock: FakeClock, code: str, user_id: int, attempts: int = 5
) -> members.JoinResult:
    async with database.transaction() as session:
        return await members.redeem_invite(
            session,
            code=code,
            telegram_user_id=user_id,
            chat_id=user_id,
            display_name=f"Person {user_id}",
            locale="cs",
            now=clock.now(),
            attempts_per_hour=attempts,
        )


async def _join(
    database: Database, clock: FakeClock, role: Role, user_id: int, **kw: Any
) -> members.Actor:
    invite = await _invite(database, clock, role, **kw)
    result = await _redeem(database, clock, invite.code, user_id)
    assert isinstance(result, members.Joined)
    return result.actor


async def test_a_code_registers_one_person_once(database: Database, clock: FakeClock) -> None:
    invite = await _invite(database, clock)
    first = await _redeem(database, clock, invite.code, 101)
    assert isinstance(first, members.Joined)
    assert first.actor.role is Role.REFERRER
    assert first.actor.institution_name == "ZŠ Hradební"
    assert await _redeem(database, clock, invite.code, 102) == members.CodeRefused("used")
    again = await _redeem(database, clock, invite.code, 101)
    assert isinstance(again, members.AlreadyMember)
    async with database.transaction() as session:
        assert await members.find_actor(session, 102) is None


async def test_two_people_racing_with_one_code_only_one_gets_in(
    database: Database, clock: FakeClock
) -> None:
    invite = await _invite(database, clock)
    results = await asyncio.gather(
        *(_redeem(database, clock, invite.code, 200 + i) for i in range(8))
    )
    joined = [result for result in results if isinstance(result, members.Joined)]
    assert len(joined) == 1
    assert results.count(members.CodeRefused("used")) == 7


async def test_an_expired_code_is_refused(database: Database, clock: FakeClock) -> None:
    invite = await _invite(database, clock)
    clock.advance(TTL)
    assert await _redeem(database, clock, invite.code, 101) == members.CodeRefused("expired")


async def test_wrong_codes_are_throttled_for_an_hour(database: Database, clock: FakeClock) -> None:
    invite = await _invite(database, clock)
    for attempt in range(3):
        assert await _redeem(database, clock, f"wrong{attempt}", 101, attempts=3) == (
            members.CodeRefused("unknown")
        )
    throttled = await _redeem(database, clock, invite.code, 101, attempts=3)
    assert isinstance(throttled, members.Throttled)
    assert throttled.retry_after == timedelta(hours=1)
    clock.advance(timedelta(hours=1, seconds=1))
    assert isinstance(await _redeem(database, clock, invite.code, 101, attempts=3), members.Joined)


async def test_only_the_hash_of_a_code_is_stored(database: Database, clock: FakeClock) -> None:
    invite = await _invite(database, clock)
    async with database.transaction() as session:
        stored = (await session.execute(text("SELECT code_hash FROM invite_codes"))).scalars().all()
    assert stored == [members.hash_code(invite.code)]
    assert invite.code not in stored[0]


async def test_coordinators_invite_referrers_and_participants_only(
    database: Database, clock: FakeClock
) -> None:
    coordinator = await _join(database, clock, Role.COORDINATOR, 1, institution="OSPOD Cheb")
    invite = await _invite(database, clock, Role.PARTICIPANT, creator=coordinator)
    assert invite.role is Role.PARTICIPANT
    with pytest.raises(PermissionDenied):
        await _invite(database, clock, Role.ADMIN, creator=coordinator)
    referrer = await _join(database, clock, Role.REFERRER, 2)
    with pytest.raises(PermissionDenied):
        await _invite(database, clock, Role.REFERRER, creator=referrer)
    async with database.transaction() as session:
        refused = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "invite.refused"))
        ).all()
    assert [entry.actor_id for entry in refused] == [coordinator.member_id, referrer.member_id]


async def test_nobody_invites_into_another_district(database: Database, clock: FakeClock) -> None:
    admin = await _join(database, clock, Role.ADMIN, 1, district="Cheb", institution="Town hall")
    with pytest.raises(PermissionDenied):
        await _invite(database, clock, Role.REFERRER, district="Sokolov", creator=admin)


async def test_a_deactivated_member_is_a_stranger_until_invited_again(
    database: Database, clock: FakeClock
) -> None:
    admin = await _join(database, clock, Role.ADMIN, 1, institution="Town hall")
    teacher = await _join(database, clock, Role.REFERRER, 2)
    async with database.transaction() as session:
        view = await leavers.deactivate_member(session, admin, teacher.member_id, now=clock.now())
        assert not view.active
        assert await members.find_actor(session, 2) is None
        listed = await members.list_members(session, admin, now=clock.now())
    assert [(v.display_name, v.active) for v in listed] == [("Person 1", True), ("Person 2", False)]
    # Joining again in another role is a new membership: the old row stays, inactive, with
    # what it held.
    rejoined = await _join(database, clock, Role.PARTICIPANT, 2)
    assert rejoined.member_id != teacher.member_id
    assert rejoined.role is Role.PARTICIPANT
    async with database.transaction() as session:
        assert (await members.find_actor(session, 2)) == rejoined
        old = await session.get_one(Member, teacher.member_id)
        assert not old.active and old.role is Role.REFERRER


async def test_only_admins_deactivate_and_not_themselves(
    database: Database, clock: FakeClock
) -> None:
    admin = await _join(database, clock, Role.ADMIN, 1, institution="Town hall")
    coordinator = await _join(database, clock, Role.COORDINATOR, 2)
    async with database.transaction() as session:
        with pytest.raises(PermissionDenied):
            await leavers.deactivate_member(session, coordinator, admin.member_id, now=clock.now())
    async with database.transaction() as session:
        with pytest.raises(PermissionDenied):
            await leavers.deactivate_member(session, admin, admin.member_id, now=clock.now())
    async with database.transaction() as session:  # no such member (a forged button): refused
        with pytest.raises(PermissionDenied):
            await leavers.deactivate_member(session, admin, 9999, now=clock.now())


async def test_several_districts_need_a_name(database: Database, clock: FakeClock) -> None:
    async with database.transaction() as session:
        only = await members.ensure_district(session, None, now=clock.now())
        assert only.name == members.DEFAULT_DISTRICT
        assert (await members.ensure_district(session, None, now=clock.now())).id == only.id
        await members.ensure_district(session, "Sokolov", now=clock.now())
        with pytest.raises(NotFound):
            await members.ensure_district(session, None, now=clock.now())


async def test_a_leavers_unused_invites_and_drafts_go_with_them(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    admin = await _join(database, clock, Role.ADMIN, 1, institution="Town hall")
    coordinator = await _join(database, clock, Role.COORDINATOR, 2, institution="OSPOD Cheb")
    pending = await _invite(database, clock, Role.PARTICIPANT, creator=coordinator)
    persistence = DatabasePersistence(database, cipher)
    await persistence.update_user_data(2, {"invite": {"new_name": "half typed"}})
    await persistence.update_conversation("invite", (2, 2), "new_name")
    async with database.transaction() as session:
        await leavers.deactivate_member(session, admin, coordinator.member_id, now=clock.now())
    assert await _redeem(database, clock, pending.code, 3) == members.CodeRefused("expired")
    assert await persistence.get_user_data() == {}
    assert await persistence.get_conversations("invite") == {}


async def test_two_admins_creating_the_same_institution_at_once_get_one(
    database: Database, clock: FakeClock
) -> None:
    async def create() -> int:
        async with database.transaction() as session:
            district = await members.ensure_district(session, "Cheb", now=clock.now())
            school = await members.ensure_institution(
                session, district, "ZŠ Kamenná", InstitutionKind.SCHOOL, now=clock.now()
            )
            return school.id

    assert len(set(await asyncio.gather(*(create() for _ in range(8))))) == 1
