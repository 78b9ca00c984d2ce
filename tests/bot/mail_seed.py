"""A small world for the mail tests: a district, a coordinator, a case and its scheduled
conference, and a participant with a confirmed address."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from bench import world
from bot.core import outbox
from bot.core.clock import Clock, FakeClock
from bot.core.db import Database
from bot.core.models import (
    Channel,
    InstitutionKind,
    Member,
    Role,
)
from bot.core.outbox import Letter
from bot.services import confidentiality, members

KIND = "test.mail"


@dataclass(frozen=True)
class World:
    conference_id: int
    coordinator_id: int
    member_id: int
    member_address: str


def mail_row(world: World, clock: Clock, key: str, address: str, **changes: Any) -> outbox.Planned:
    """A mail of the test kind to a guest's `address` about the world's conference, due now;
    `changes` set other fields."""
    mail = outbox.Planned(
        key=key,
        kind=KIND,
        subject=f"conference:{world.conference_id}",
        member_id=None,
        due_at=clock.now(),
        channel=Channel.MAIL,
        address=address,
    )
    return replace(mail, **changes)


def letter_text(letter: Letter) -> str:
    return f"Invitation {letter.payload.get('n')} to {letter.address}"


async def seed_world(database: Database, clock: FakeClock) -> World:
    now = clock.now()
    async with database.transaction() as session:
        district = await members.ensure_district(session, "Cheb", now=now)
        office = await members.ensure_institution(
            session, district, "OSPOD Cheb", InstitutionKind.OSPOD, now=now
        )
        school = await members.ensure_institution(
            session, district, "ZŠ Hradební", InstitutionKind.SCHOOL, now=now
        )
        coordinator = world.member(501, "Hana", office.id, Role.COORDINATOR, locale="en", now=now)
        participant = Member(
            **world.member_values(502, "Petr", school.id, Role.PARTICIPANT, locale="cs", now=now),
            email="petr.novak@zs.example.cz",
        )
        session.add_all([coordinator, participant])
        await session.flush()
        await confidentiality.record_seeded(session, now=now)  # as joining asks them to
        case = await world.open_case(session, "PK-2026-0042", district.id, coordinator.id, now=now)
        conference = await world.scheduled_conference(
            session, case, starts_at=now + timedelta(days=3), uid="mail-test@roundtable", now=now
        )
        return World(conference.id, coordinator.id, participant.id, "petr.novak@zs.example.cz")
