"""The rows the benchmarks' seeds share: members, schools in bulk, a case with no referral and
a coordinator's scheduled conference.

The seeds write these rows directly, thousands at a time, where the services would take one
transaction each; what a service offers for a single row (a district, an office) they take
from `bot.services.members` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import migrate
from bot.core.db import Database
from bot.core.models import (
    Case,
    CaseStatus,
    Conference,
    ConferenceStatus,
    Institution,
    InstitutionKind,
    Member,
    Role,
)
from bot.services import confidentiality, members


def member_values(
    chat_id: int, name: str, institution_id: int, role: Role, *, locale: str, now: datetime
) -> dict[str, object]:
    """A member who has joined, in a private chat whose id is their Telegram id."""
    return {
        "telegram_user_id": chat_id,
        "chat_id": chat_id,
        "display_name": name,
        "institution_id": institution_id,
        "role": role,
        "locale": locale,
        "joined_at": now,
    }


def member(
    chat_id: int, name: str, institution_id: int, role: Role, *, locale: str, now: datetime
) -> Member:
    """One such member, to add to the session."""
    return Member(**member_values(chat_id, name, institution_id, role, locale=locale, now=now))


async def insert_schools(
    session: AsyncSession, district_id: int, names: list[str], *, now: datetime
) -> list[int]:
    """The ids of new schools of the district, one per name, in the names' order."""
    return list(
        await session.scalars(
            insert(Institution).returning(Institution.id),
            [
                {
                    "district_id": district_id,
                    "name": name,
                    "kind": InstitutionKind.SCHOOL,
                    "created_at": now,
                }
                for name in names
            ],
        )
    )


async def insert_members(session: AsyncSession, rows: list[dict[str, object]]) -> list[int]:
    """The ids of new members made of `member_values` rows, in the rows' order; each has
    confirmed confidentiality, as joining asks them to."""
    ids = list(await session.scalars(insert(Member).returning(Member.id), rows))
    for member_id, row in zip(ids, rows, strict=True):
        joined = row["joined_at"]
        assert isinstance(joined, datetime)
        await confidentiality.record_seeded(session, now=joined, member_ids=[member_id])
    return ids


async def open_case(
    session: AsyncSession, code: str, district_id: int, manager_id: int, *, now: datetime
) -> Case:
    """An open case with no referral behind it, managed by the given coordinator."""
    case = Case(
        code=code,
        district_id=district_id,
        manager_id=manager_id,
        status=CaseStatus.OPEN,
        opened_at=now,
    )
    session.add(case)
    await session.flush()
    return case


async def scheduled_conference(
    session: AsyncSession,
    case: Case,
    *,
    starts_at: datetime,
    uid: str,
    now: datetime,
    created_at: datetime | None = None,
    decided_at: datetime | None = None,
) -> Conference:
    """The case's conference, set for `starts_at` and invited to it (SEQUENCE 0)."""
    conference = Conference(
        case_id=case.id,
        district_id=case.district_id,
        coordinator_id=case.manager_id,
        status=ConferenceStatus.SCHEDULED,
        duration_minutes=90,
        place="MěÚ Cheb, zasedačka 2",
        window_first=now.date(),
        window_last=starts_at.date(),
        deadline=now,
        nudge_at=now,
        starts_at=starts_at,
        created_at=created_at or now,
        decided_at=decided_at or now,
        uid=uid,
        sequence=0,
        invited_starts_at=starts_at,
    )
    session.add(conference)
    await session.flush()
    return conference


@dataclass(frozen=True)
class Coordinator:
    """Who coordinates a seed's conferences: a coordinator at OSPOD Cheb, district Cheb."""

    chat_id: int
    name: str
    locale: str


async def coordinator(
    session: AsyncSession, who: Coordinator, *, now: datetime
) -> tuple[int, Member]:
    """The district's id and the coordinator, added (with the district and the office when
    they are missing) and flushed."""
    district = await members.ensure_district(session, "Cheb", now=now)
    office = await members.ensure_institution(
        session, district, "OSPOD Cheb", InstitutionKind.OSPOD, now=now
    )
    person = member(who.chat_id, who.name, office.id, Role.COORDINATOR, locale=who.locale, now=now)
    session.add(person)
    await session.flush()
    await confidentiality.record_seeded(session, now=now, member_ids=[person.id])
    return district.id, person


async def coordinators_conference(
    session: AsyncSession,
    who: Coordinator,
    code: str,
    uid: str,
    *,
    starts_at: datetime,
    now: datetime,
) -> Conference:
    """An open case of the coordinator with the code `code`, and its conference, planned a
    week ago, decided yesterday and set for `starts_at`."""
    district_id, person = await coordinator(session, who, now=now)
    case = await open_case(session, code, district_id, person.id, now=now)
    return await scheduled_conference(
        session,
        case,
        starts_at=starts_at,
        uid=uid,
        now=now,
        created_at=now - timedelta(days=7),
        decided_at=now - timedelta(days=1),
    )


@asynccontextmanager
async def fresh(url: str) -> AsyncIterator[AsyncSession]:
    """One transaction of the database at `url`, brought to the newest schema first and closed
    afterwards."""
    database = Database(url)
    try:
        await migrate.upgrade(database)
        async with database.transaction() as session:
            yield session
    finally:
        await database.dispose()
