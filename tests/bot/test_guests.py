"""Guests at planning, in the services: the refusals, the poll's invitations, the review
conference that invites the same guests again, and their names and addresses purged with the
case."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.mail_tables import MailAddress
from bot.core.models import (
    Case,
    CaseStatus,
    Channel,
    Conference,
    ConferenceStatus,
    Institution,
    Invitation,
    InvitationKind,
    OutboxRow,
)
from bot.services import decisions, guests, planning, retention
from bot.services.addresses import InvalidAddress
from bot.services.decisions import Scheduled
from bot.services.guests import (
    AlreadyInvited,
    BadName,
    DuplicateGuest,
    Guest,
    MailOff,
    NoContact,
    TooManyGuests,
)
from bot.services.members import Actor
from bot.services.planning import Plan, Started
from bot.services.privacy import Operator
from tests.bot.test_conferences import DEFAULTS, _case, _team


async def test_guests_are_refused_clearly_and_become_guest_invitations(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    coordinator, teacher = await _team(database, clock)
    case_id = await _case(database, clock, coordinator)
    now = clock.now()
    school_id = teacher.institution_id
    await _set_contact(database, school_id, "skola@example.cz")
    plan = Plan(case_id=case_id, invited={}, place="OSPOD Cheb")
    async with database.transaction() as session:
        args = (session, coordinator, case_id, plan.guests)
        choices = await guests.guest_choices(session, coordinator, case_id, now=now)
        assert [choice.name for choice in choices] == ["ZŠ Hradební"]
        with pytest.raises(MailOff):
            await guests.add_institution_guest(
                *args, invited={}, institution_id=school_id, required=True,
                mail_enabled=False, now=now,
            )  # fmt: skip
        with pytest.raises(AlreadyInvited):
            await guests.add_institution_guest(
                *args, invited={school_id: True}, institution_id=school_id, required=True,
                mail_enabled=True, now=now,
            )  # fmt: skip
        with pytest.raises(NoContact):  # the coordinator's own institution chairs it
            await guests.add_institution_guest(
                *args, invited={}, institution_id=coordinator.institution_id, required=True,
                mail_enabled=True, now=now,
            )  # fmt: skip
        await guests.add_institution_guest(
            *args, invited={}, institution_id=school_id, required=True, mail_enabled=True, now=now
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
        Guest("skola@example.cz", "", school_id, True),
        Guest("eva@example.org", "Eva Dvořák", None, False),
    ]
    assert Plan.from_data(plan.to_data()) == plan  # kept with the dialog's state

    async with database.transaction() as session:
        started = await planning.start_poll(
            session, coordinator, plan, now=now, defaults=DEFAULTS, mail_enabled=True
        )
    assert isinstance(started, Started)
    assert started.targets == []  # guests get no chat message: the coordinator answers for them
    async with database.transaction() as session:
        rows = list(await session.scalars(select(Invitation).order_by(Invitation.id)))
    assert [(r.kind, r.email, r.guest_name, r.institution_id, r.required) for r in rows] == [
        (InvitationKind.GUEST, "skola@example.cz", None, school_id, True),
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
            session, coordinator, cipher, case_id, now=now, defaults=DEFAULTS, mail_enabled=True
        )
    assert review.guests == plan.guests and review.guardians == []

    # Past retention, the case's guests are forgotten: their names and addresses go, from
    # the invitations and from the mails sent to them.
    assert await _mail_addresses(database) == ["eva@example.org", "skola@example.cz"]
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
    assert await _mail_addresses(database) == [None, None]


async def _mail_addresses(database: Database) -> list[str | None]:
    """The addresses of the mail rows in the outbox, sorted (None first)."""
    async with database.transaction() as session:
        found = await session.scalars(
            select(OutboxRow.address).where(OutboxRow.channel == Channel.MAIL)
        )
        return sorted(found, key=lambda address: (address is not None, address or ""))


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


async def test_a_guest_given_again_is_mailed_again_though_its_address_failed(
    database: Database, clock: FakeClock
) -> None:
    """The refusal notice says mail goes again once the address is given again: adding the
    guest gives it again."""
    coordinator, teacher = await _team(database, clock)
    case_id = await _case(database, clock, coordinator)
    now = clock.now()
    school_id = teacher.institution_id
    await _set_contact(database, school_id, "skola@example.cz")
    async with database.transaction() as session:
        for address in ("skola@example.cz", "eva@example.org"):
            session.add(MailAddress(address=address, failing_since=now, reply="550 5.1.1"))
    plan = Plan(case_id=case_id, invited={}, place="OSPOD Cheb")
    async with database.transaction() as session:
        args = (session, coordinator, case_id, plan.guests)
        await guests.add_institution_guest(
            *args, invited={}, institution_id=school_id, required=True, mail_enabled=True, now=now
        )
        await guests.add_named_guest(
            *args, name="Eva", address="Eva@Example.org", mail_enabled=True, now=now
        )
    async with database.transaction() as session:
        assert list(await session.scalars(select(MailAddress))) == []
        started = await planning.start_poll(
            session, coordinator, plan, now=now, defaults=DEFAULTS, mail_enabled=True
        )
    assert isinstance(started, Started)
    # The address as typed (its mailbox's case kept), the failing mark cleared all the same.
    assert await _mail_addresses(database) == ["Eva@example.org", "skola@example.cz"]


async def _held_with_guests(
    database: Database, clock: FakeClock, coordinator: Actor, school_id: int
) -> tuple[int, int]:
    """A case whose conference, held, had the school (at its contact address) and Eva as
    guests: the case's and the conference's ids."""
    case_id = await _case(database, clock, coordinator)
    plan = Plan(case_id=case_id, invited={}, place="OSPOD Cheb")
    now = clock.now()
    async with database.transaction() as session:
        args = (session, coordinator, case_id, plan.guests)
        await guests.add_institution_guest(
            *args, invited={}, institution_id=school_id, required=True, mail_enabled=True, now=now
        )
        await guests.add_named_guest(
            *args, name="Eva", address="eva@example.org", mail_enabled=True, now=now
        )
        started = await planning.start_poll(
            session, coordinator, plan, now=now, defaults=DEFAULTS, mail_enabled=True
        )
        assert isinstance(started, Started)
        await session.execute(
            update(Conference)
            .where(Conference.id == started.conference_id)
            .values(status=ConferenceStatus.HELD, starts_at=now)
        )
    return case_id, started.conference_id


async def _set_contact(database: Database, institution_id: int, email: str | None) -> None:
    async with database.transaction() as session:
        institution = await session.get_one(Institution, institution_id)
        institution.email = email


async def test_a_review_plan_invites_the_guests_as_they_can_be_invited_now(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    coordinator, teacher = await _team(database, clock)
    school_id = teacher.institution_id
    await _set_contact(database, school_id, "skola@example.cz")
    case_id, _held = await _held_with_guests(database, clock, coordinator, school_id)

    async def review(*, mail_enabled: bool) -> list[Guest]:
        async with database.transaction() as session:
            plan = await planning.new_plan(
                session, coordinator, cipher, case_id, now=clock.now(), defaults=DEFAULTS,
                mail_enabled=mail_enabled,
            )  # fmt: skip
        return plan.guests

    eva = Guest("eva@example.org", "Eva", None, False)
    # The school's contact address changed since: the review invites it at the new one.
    await _set_contact(database, school_id, "sekretariat@skola.cz")
    assert await review(mail_enabled=True) == [
        Guest("sekretariat@skola.cz", "", school_id, True),
        eva,
    ]
    # Mail is switched off now: no guests.
    assert await review(mail_enabled=False) == []
    # The school has no contact address any more: only Eva.
    await _set_contact(database, school_id, None)
    assert await review(mail_enabled=True) == [eva]


async def test_starting_the_poll_invites_the_guests_as_they_can_be_invited_now(
    database: Database, clock: FakeClock
) -> None:
    """A plan kept in the dialog while the contact address changed, or mail was switched off."""
    coordinator, teacher = await _team(database, clock)
    school_id = teacher.institution_id
    await _set_contact(database, school_id, "skola@example.cz")
    school = Guest("skola@example.cz", "", school_id, True)
    eva = Guest("eva@example.org", "Eva", None, False)
    await _set_contact(database, school_id, "sekretariat@skola.cz")

    async def start(
        plan_guests: list[Guest], *, mail_enabled: bool
    ) -> list[tuple[str, int | None]]:
        case_id = await _case(database, clock, coordinator)
        plan = Plan(
            case_id=case_id,
            invited={},
            guardians=["offline"],  # somebody is invited when the guests are not
            place="OSPOD Cheb",
            guests=plan_guests,
        )
        async with database.transaction() as session:
            started = await planning.start_poll(
                session, coordinator, plan, now=clock.now(), defaults=DEFAULTS,
                mail_enabled=mail_enabled,
            )  # fmt: skip
            assert isinstance(started, Started)
            rows = await session.execute(
                select(Invitation.email, Invitation.institution_id)
                .where(
                    Invitation.conference_id == started.conference_id,
                    Invitation.kind == InvitationKind.GUEST,
                )
                .order_by(Invitation.id)
            )
            return [(str(email), institution) for email, institution in rows]

    assert await start([school, eva], mail_enabled=True) == [
        ("sekretariat@skola.cz", school_id),
        ("eva@example.org", None),
    ]
    assert await start([school, eva], mail_enabled=False) == []
    await _set_contact(database, school_id, None)
    assert await start([school, eva], mail_enabled=True) == [("eva@example.org", None)]


async def test_a_review_fixed_from_the_record_invites_the_guests_as_they_can_be_invited_now(
    database: Database, clock: FakeClock
) -> None:
    coordinator, teacher = await _team(database, clock)
    school_id = teacher.institution_id
    zone = ZoneInfo("Europe/Prague")

    async def fix(held: int, days: int, *, mail_enabled: bool) -> list[tuple[str, int | None]]:
        """The review of `held` fixed `days` ahead at 10:00: its guests' addresses."""
        day = clock.now().astimezone(zone).date() + timedelta(days=days)
        starts_at = datetime.combine(day, time(10), tzinfo=zone)
        async with database.transaction() as session:
            result = await decisions.fix_review(
                session, coordinator, held, starts_at, now=clock.now(), mail_enabled=mail_enabled
            )
            assert isinstance(result, Scheduled)
            rows = await session.execute(
                select(Invitation.email, Invitation.institution_id)
                .join(Conference, Invitation.conference_id == Conference.id)
                .where(Conference.review_of_id == held, Invitation.kind == InvitationKind.GUEST)
                .order_by(Invitation.id)
            )
            return [(str(email), institution) for email, institution in rows]

    # The school's contact address changed since the conference: the review mails the new one.
    await _set_contact(database, school_id, "skola@example.cz")
    _case_id, held = await _held_with_guests(database, clock, coordinator, school_id)
    await _set_contact(database, school_id, "sekretariat@skola.cz")
    assert await fix(held, 14, mail_enabled=True) == [
        ("sekretariat@skola.cz", school_id),
        ("eva@example.org", None),
    ]
    # Mail is off now: no guests are carried over.
    _case_id, held = await _held_with_guests(database, clock, coordinator, school_id)
    assert await fix(held, 15, mail_enabled=False) == []
    # The school has no contact address any more: only Eva.
    _case_id, held = await _held_with_guests(database, clock, coordinator, school_id)
    await _set_contact(database, school_id, None)
    assert await fix(held, 16, mail_enabled=True) == [("eva@example.org", None)]
