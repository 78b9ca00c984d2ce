"""The rules of the conference services (planning, polls, decisions) the dialog tests do not
reach directly."""

from __future__ import annotations

import asyncio
from datetime import time, timedelta

import pytest
from sqlalchemy import select

from bench import world
from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import (
    AuditEntry,
    Case,
    ConferenceSlot,
    District,
    Institution,
    Role,
    SlotAnswer,
)
from bot.services import decisions, members, planning, polls
from bot.services.board import PollClosed, district_calendar
from bot.services.errors import PermissionDenied
from bot.services.members import Actor
from bot.services.planning import Defaults, Plan, Started
from tests.bot.sql import statements
from tests.bot.test_members import _join

DEFAULTS = Defaults()


async def _case(database: Database, clock: FakeClock, manager: Actor) -> int:
    async with database.transaction() as session:
        count = len((await session.scalars(select(Case))).all())
        case = await world.open_case(
            session,
            f"PK-2026-{count + 1:04d}",
            manager.district_id,
            manager.member_id,
            now=clock.now(),
        )
        return case.id


async def _start(
    database: Database, clock: FakeClock, coordinator: Actor, invited: dict[int, bool]
) -> Started:
    """A poll for a new case of the coordinator."""
    case_id = await _case(database, clock, coordinator)
    async with database.transaction() as session:
        started = await planning.start_poll(
            session,
            coordinator,
            Plan(case_id=case_id, invited=invited, place="OSPOD Cheb"),
            now=clock.now(),
            defaults=DEFAULTS,
            mail_enabled=False,
        )
    assert isinstance(started, Started)
    return started


async def _school_poll(
    database: Database, clock: FakeClock, coordinator: Actor, teacher: Actor
) -> Started:
    """A poll of the coordinator's for a new case, inviting the teacher's school."""
    return await _start(database, clock, coordinator, {teacher.institution_id: True})


async def _team(database: Database, clock: FakeClock) -> tuple[Actor, Actor]:
    """A coordinator at OSPOD and a teacher at the school."""
    coordinator = await _join(database, clock, Role.COORDINATOR, 1, institution="OSPOD Cheb")
    return coordinator, await _join(database, clock, Role.REFERRER, 2)


async def _team_polled(database: Database, clock: FakeClock) -> tuple[Actor, Actor, Started]:
    """The team (`_team`) and the coordinator's poll inviting the teacher's school."""
    coordinator, teacher = await _team(database, clock)
    return coordinator, teacher, await _school_poll(database, clock, coordinator, teacher)


async def _slots(database: Database, conference_id: int) -> list[ConferenceSlot]:
    async with database.transaction() as session:
        return list(
            await session.scalars(
                select(ConferenceSlot)
                .where(ConferenceSlot.conference_id == conference_id)
                .order_by(ConferenceSlot.starts_at)
            )
        )


async def test_two_polls_of_one_coordinator_never_offer_overlapping_times(
    database: Database, clock: FakeClock
) -> None:
    coordinator, teacher, first = await _team_polled(database, clock)
    second = await _school_poll(database, clock, coordinator, teacher)
    taken = await _slots(database, first.conference_id)
    offered = await _slots(database, second.conference_id)
    assert len(taken) == len(offered) == 8
    gap = timedelta(minutes=90 + 15)
    for slot in offered:
        assert all(abs(slot.starts_at - other.starts_at) >= gap for other in taken)


async def test_only_the_invited_institution_answers_and_nobody_after_the_deadline(
    database: Database, clock: FakeClock
) -> None:
    coordinator, teacher = await _team(database, clock)
    stranger = await _join(database, clock, Role.PARTICIPANT, 3, institution="Policie Cheb")
    other_coordinator = await _join(
        database, clock, Role.COORDINATOR, 4, district="Sokolov", institution="OSPOD Sokolov"
    )
    started = await _school_poll(database, clock, coordinator, teacher)
    invitation = started.targets[0].invitation_id
    slot = (await _slots(database, started.conference_id))[0]
    for intruder in (stranger, other_coordinator):
        with pytest.raises(PermissionDenied):
            async with database.transaction() as session:
                await polls.toggle(session, intruder, invitation, slot.id, now=clock.now())
    with pytest.raises(PermissionDenied):
        async with database.transaction() as session:
            await decisions.confirm(
                session, other_coordinator, started.conference_id, slot.id, now=clock.now()
            )
    async with database.transaction() as session:
        refused = list(
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("%.refused"))
            )
        )
    assert refused == ["conference.answer.refused"] * 2 + ["conference.manage.refused"]

    async with database.transaction() as session:
        view = await polls.toggle(session, teacher, invitation, slot.id, now=clock.now())
    assert view.votes[slot.id].value == "yes"
    async with database.transaction() as session:
        conference = await decisions.board(
            session, coordinator, started.conference_id, now=clock.now()
        )
    clock.set(conference.deadline)
    with pytest.raises(PollClosed):
        async with database.transaction() as session:
            await polls.send_answer(session, teacher, invitation, 1, now=clock.now())


async def test_institution_hours_narrow_the_district_hours(
    database: Database, clock: FakeClock
) -> None:
    coordinator, teacher = await _team(database, clock)
    async with database.transaction() as session:
        school = await session.get_one(Institution, teacher.institution_id)
        school.day_starts = time(12, 0)  # the school's staff can come in the afternoon only
        district = await session.get_one(District, school.district_id)
        district.day_ends = time(17, 0)
    started = await _school_poll(database, clock, coordinator, teacher)
    for slot in await _slots(database, started.conference_id):
        local = slot.starts_at.astimezone(district_calendar(district).zone)
        assert time(12, 0) <= local.time() and local + timedelta(minutes=90) <= local.replace(
            hour=17, minute=0
        )


async def test_a_plan_starts_from_the_district_place_and_the_referral_concerns(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    coordinator = await _join(database, clock, Role.COORDINATOR, 1, institution="OSPOD Cheb")
    case_id = await _case(database, clock, coordinator)

    async def new_plan() -> Plan:
        async with database.transaction() as session:
            return await planning.new_plan(
                session,
                coordinator,
                cipher,
                case_id,
                now=clock.now(),
                defaults=DEFAULTS,
                mail_enabled=False,
            )

    plan = await new_plan()
    assert plan.place == "OSPOD Cheb"  # no district place set: the coordinator's institution
    assert (plan.minutes, plan.starts_after, plan.window) == (90, 2, 15)
    async with database.transaction() as session:
        await members.configure_district(
            session, "Cheb", place="MěÚ Cheb, zasedačka 2", now=clock.now()
        )
    assert (await new_plan()).place == "MěÚ Cheb, zasedačka 2"


async def test_a_time_already_past_cannot_be_confirmed(
    database: Database, clock: FakeClock
) -> None:
    coordinator, _teacher, started = await _team_polled(database, clock)
    first = (await _slots(database, started.conference_id))[0]
    clock.set(first.starts_at + timedelta(minutes=1))
    async with database.transaction() as session:
        result = await decisions.confirm(
            session, coordinator, started.conference_id, first.id, now=clock.now()
        )
    assert result == decisions.Passed(first.starts_at)
    async with database.transaction() as session:
        board = await decisions.board(session, coordinator, started.conference_id, now=clock.now())
    assert board.status.value == "polling"


async def test_answers_sent_at_the_same_moment_are_all_taken_and_offer_once(
    database: Database, clock: FakeClock
) -> None:
    """Two members of the school at once, and the police at the same moment: no answer is
    lost, no error, and the coordinator is offered the date exactly once (on PostgreSQL the
    conference row is locked; on SQLite transactions are serial)."""
    coordinator, teacher = await _team(database, clock)
    colleague = await _join(database, clock, Role.REFERRER, 3)
    officer = await _join(database, clock, Role.PARTICIPANT, 4, institution="Policie Cheb")
    started = await _start(
        database,
        clock,
        coordinator,
        {teacher.institution_id: True, officer.institution_id: True},
    )
    school = next(t.invitation_id for t in started.targets if t.recipient.member_id == 2)
    police = next(t.invitation_id for t in started.targets if t.recipient.member_id == 4)

    async def send(actor: Actor, invitation: int) -> polls.Answered:
        async with database.transaction() as session:
            return await polls.send_answer(session, actor, invitation, 1, now=clock.now())

    results = await asyncio.gather(
        send(teacher, school), send(colleague, school), send(officer, police)
    )
    assert sum(result.offer is not None for result in results) == 1
    async with database.transaction() as session:
        answers = (await session.scalars(select(SlotAnswer))).all()
    assert len(answers) == 2 * 8


async def test_the_board_and_a_tap_cost_the_same_queries_for_two_or_six_institutions(
    database: Database, clock: FakeClock
) -> None:
    """No query per invitee: the coordinator's board and the poll a tap redraws read the
    invited institutions, who answered and who can be reached in a fixed number of queries."""
    coordinator = await _join(database, clock, Role.COORDINATOR, 1, institution="OSPOD Cheb")
    people = [
        await _join(database, clock, Role.PARTICIPANT, 10 + n, institution=f"Škola {n}")
        for n in range(6)
    ]
    costs = []
    for invited in (people[:2], people):
        started = await _start(
            database, clock, coordinator, {person.institution_id: True for person in invited}
        )
        slot = (await _slots(database, started.conference_id))[0]
        by_institution = {target.recipient.member_id: target for target in started.targets}
        for person in invited:  # everyone has answered: the board names who did
            invitation = by_institution[person.member_id].invitation_id
            async with database.transaction() as session:
                await polls.toggle(session, person, invitation, slot.id, now=clock.now())
            async with database.transaction() as session:
                await polls.send_answer(session, person, invitation, 1, now=clock.now())
        with statements(database) as board_queries:
            async with database.transaction() as session:
                board = await decisions.board(
                    session, coordinator, started.conference_id, now=clock.now()
                )
        assert [invitee.answered_by for invitee in board.invitees] == [
            person.display_name for person in invited
        ]
        invitation = by_institution[invited[0].member_id].invitation_id
        with statements(database) as tap_queries:
            async with database.transaction() as session:
                await polls.toggle(session, invited[0], invitation, slot.id, now=clock.now())
        costs.append((len(board_queries), len(tap_queries)))
    print("statements for the board and a tap, 2 and 6 institutions:", costs)
    assert costs[0] == costs[1], costs


async def test_a_refused_make_optional_is_audited_under_the_invitation_it_named(
    database: Database, clock: FakeClock
) -> None:
    """An invitation id is filed as an invitation, never as a conference of the same number:
    the audit log of a case (and its export) lists only what concerns that case."""
    coordinator, _teacher = await _team(database, clock)
    with pytest.raises(PermissionDenied):
        async with database.transaction() as session:
            await decisions.make_optional(session, coordinator, 9999, now=clock.now())
    async with database.transaction() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action.like("conference.make_optional%"))
        )
    assert entry is not None
    assert (entry.subject_type, entry.subject_id) == ("invitation", "9999")


async def test_deciding_or_choosing_a_time_is_refused_once_the_poll_is_over(
    database: Database, clock: FakeClock
) -> None:
    """ "Decide now" and "Choose a time" on a board whose poll was decided meanwhile are refused
    by the service (the dialog answers "This poll is over"); the board itself can still be read."""
    coordinator, _teacher, started = await _team_polled(database, clock)
    first = (await _slots(database, started.conference_id))[0]
    async with database.transaction() as session:
        scheduled = await decisions.confirm(
            session, coordinator, started.conference_id, first.id, now=clock.now()
        )
    assert isinstance(scheduled, decisions.Scheduled)
    conference_id = started.conference_id
    for look in (
        lambda session: decisions.board_to_decide(
            session, coordinator, conference_id, now=clock.now()
        ),
        lambda session: decisions.board(
            session, coordinator, conference_id, now=clock.now(), polling=True
        ),
    ):
        with pytest.raises(PollClosed):
            async with database.transaction() as session:
                await look(session)
    async with database.reading() as session:
        board = await decisions.board(session, coordinator, conference_id, now=clock.now())
    assert board.status.value == "scheduled"
