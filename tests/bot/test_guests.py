"""Guests at planning, in the services: the refusals, the poll's invitations, the review
conference that invites the same guests again, and their names and addresses purged with the
case."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import (
    Case,
    CaseStatus,
    Conference,
    ConferenceStatus,
    Institution,
    Invitation,
    InvitationKind,
)
from bot.services import guests, planning, retention
from bot.services.addresses import InvalidAddress
from bot.services.guests import (
    AlreadyInvited,
    BadName,
    DuplicateGuest,
    Guest,
    MailOff,
    NoContact,
    TooManyGuests,
)
from bot.services.planning import Plan, Started
from bot.services.privacy import Operator
from tests.bot.test_conferences import DEFAULTS, _case, _team


async def test_guests_are_refused_clearly_and_become_guest_invitations(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    coordinator, teacher = await _team(database, clock)
    case_id = await _case(database, clock, coordinator)
    now = clock.now()
    async with database.transaction() as session:
        school = await session.get_one(Institution, teacher.institution_id)
        school.email = "skola@example.cz"
    plan = Plan(case_id=case_id, invited={}, place="OSPOD Cheb")
    async with database.transaction() as session:
        args = (session, coordinator, case_id, plan.guests)
        choices = await guests.guest_choices(session, coordinator, case_id, now=now)
        assert [choice.name for choice in choices] == ["ZŠ Hradební"]
        with pytest.raises(MailOff):
            await guests.add_institution_guest(
                *args, invited={}, institution_id=school.id, required=True,
                mail_enabled=False, now=now,
            )  # fmt: skip
        with pytest.raises(AlreadyInvited):
            await guests.add_institution_guest(
                *args, invited={school.id: True}, institution_id=school.id, required=True,
                mail_enabled=True, now=now,
            )  # fmt: skip
        with pytest.raises(NoContact):  # the coordinator's own institution chairs it
            await guests.add_institution_guest(
                *args, invited={}, institution_id=coordinator.institution_id, required=True,
                mail_enabled=True, now=now,
            )  # fmt: skip
        await guests.add_institution_guest(
            *args, invited={}, institution_id=school.id, required=True, mail_enabled=True, now=now
        )
        with pytest.raises(DuplicateGuest):
            await guests.add_named_guest(
                *args, name="Eva", address="SKOLA@example.cz", mail_enabled=True, now=now
            )
        with pytest.raises(BadName):
            await guests.add_named_guest(
                *args, name="e" * 121, address="eva@example.org", mail_enabled=True, now=now
            )
        with pytest.raises(InvalidAddress):
            await guests.add_named_guest(
                *args, name="Eva", address="eva@", mail_enabled=True, now=now
            )
        await guests.add_named_guest(
            *args, name="  Eva   Dvořák ", address="eva@example.org", mail_enabled=True, now=now
        )
    assert plan.guests == [
        Guest("skola@example.cz", "", school.id, True),
        Guest("eva@example.org", "Eva Dvořák", None, False),
    ]
    assert Plan.from_data(plan.to_data()) == plan  # kept with the dialog's state

    async with database.transaction() as session:
        started = await planning.start_poll(session, coordinator, plan, now=now, defaults=DEFAULTS)
    assert isinstance(started, Started)
    assert started.targets == []  # guests get no chat message: the coordinator answers for them
    async with database.transaction() as session:
        rows = list(await session.scalars(select(Invitation).order_by(Invitation.id)))
    assert [(r.kind, r.email, r.guest_name, r.institution_id, r.required) for r in rows] == [
        (InvitationKind.GUEST, "skola@example.cz", None, school.id, True),
        (InvitationKind.GUEST, "eva@example.org", "Eva Dvořák", None, False),
    ]

    # The review conference starts from the same table: the same guests, no guardians.
    async with database.transaction() as session:
        await session.execute(
            update(Conference)
            .where(Conference.id == started.conference_id)
            .values(status=ConferenceStatus.HELD, starts_at=now)
        )
    async with database.transaction() as session:
        review = await planning.new_plan(
            session, coordinator, cipher, case_id, now=now, defaults=DEFAULTS
        )
    assert review.guests == plan.guests and review.guardians == []

    # Past retention, the case's guests are forgotten: their names and addresses go.
    async with database.transaction() as session:
        await session.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(status=CaseStatus.CLOSED, closed_at=now - timedelta(days=6 * 366))
        )
    async with database.transaction() as session:
        purged = await retention.purge(session, cipher, Operator("test"), now=now, years=5)
    assert len(purged) == 1
    async with database.transaction() as session:
        rows = list(await session.scalars(select(Invitation)))
    assert len(rows) == 2 and all(r.email is None and r.guest_name is None for r in rows)


async def test_at_most_eight_guests(database: Database, clock: FakeClock) -> None:
    coordinator, _teacher = await _team(database, clock)
    case_id = await _case(database, clock, coordinator)
    invited: list[Guest] = []
    async with database.transaction() as session:
        for number in range(guests.MAX_GUESTS):
            await guests.add_named_guest(
                session, coordinator, case_id, invited, name=f"Guest {number}",
                address=f"guest{number}@example.org", mail_enabled=True, now=clock.now(),
            )  # fmt: skip
        with pytest.raises(TooManyGuests):
            await guests.add_named_guest(
                session, coordinator, case_id, invited, name="One more",
                address="more@example.org", mail_enabled=True, now=clock.now(),
            )  # fmt: skip
    assert len(invited) == 8
