"""The rules of the method's service (bot.services.method) the dialog tests do not reach
directly: who reads the goal, the limits of the typed fields, nothing changes once the record is
finished, the record's section, and a conference planned before there were any kinds."""

from __future__ import annotations

import dataclasses
import io
from zoneinfo import ZoneInfo

import docx
import pytest
from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.i18n import Translator
from bot.core.method_record import MethodSection, child_attendance, method_section
from bot.core.method_tables import ChildPart, ConferenceKind, ConferenceMethod
from bot.core.models import AuditEntry, Case, Conference, ConferenceStatus, Invitation, Role
from bot.core.record import AttendanceLine, RecordDocument, record_docx
from bot.services import method, planning, privacy
from bot.services.errors import PermissionDenied
from bot.services.members import Actor
from bot.services.method import BadText, MethodClosed
from tests.bot.test_conferences import _team_polled
from tests.bot.test_members import _join


async def _planned(
    database: Database, clock: FakeClock, cipher: Cipher
) -> tuple[Actor, Actor, int]:
    """A coordinator's poll with the teacher's school invited, its kind and goal set."""
    coordinator, teacher, started = await _team_polled(database, clock)
    async with database.transaction() as session:
        await method.start(
            session,
            cipher,
            started.conference_id,
            ConferenceKind.COURT,
            "The goal",
            now=clock.now(),
        )
    return coordinator, teacher, started.conference_id


async def _actions(database: Database) -> list[str]:
    async with database.transaction() as session:
        return [e.action for e in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


async def test_the_goal_is_read_by_the_invited_and_refused_to_others_both_audited(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    coordinator, teacher, conference_id = await _planned(database, clock, cipher)
    async with database.transaction() as session:
        goal = await method.read_goal(session, teacher, cipher, conference_id, now=clock.now())
    assert (goal.kind, goal.goal) == (ConferenceKind.COURT, "The goal")
    async with database.transaction() as session:
        own = await method.read_goal(session, coordinator, cipher, conference_id, now=clock.now())
    assert own.goal == "The goal"
    # Someone of another institution of the district (not invited) is refused.
    stranger = await _join(database, clock, Role.PARTICIPANT, 9, institution="PPP Cheb")
    with pytest.raises(PermissionDenied) as refused:
        async with database.transaction() as session:
            await method.read_goal(session, stranger, cipher, conference_id, now=clock.now())
    async with database.transaction() as session:
        session.add_all(refused.value.rows_to_keep)
    actions = await _actions(database)
    assert actions.count("conference.goal_read") == 2
    assert actions.count("conference.goal.refused") == 1
    async with database.transaction() as session:
        stored = await session.get_one(ConferenceMethod, conference_id)
        assert stored.goal is not None and b"The goal" not in stored.goal


async def test_typed_fields_have_limits_and_nothing_changes_after_the_record(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    coordinator, teacher, conference_id = await _planned(database, clock, cipher)
    for field, limit in (("goal", 500), ("support", 120), ("reason", 300), ("view", 2000)):
        with pytest.raises(BadText) as too_long:
            async with database.transaction() as session:
                await method.set_text(
                    session,
                    coordinator,
                    cipher,
                    conference_id,
                    field,
                    text="x" * (limit + 1),
                    now=clock.now(),
                )
        assert too_long.value.limit == limit
    with pytest.raises(BadText):
        async with database.transaction() as session:
            await method.set_text(
                session, coordinator, cipher, conference_id, "view", text="   ", now=clock.now()
            )
    # Not the coordinator's: refused.
    with pytest.raises(PermissionDenied):
        async with database.transaction() as session:
            await method.set_child_part(
                session, teacher, conference_id, ChildPart.ABSENT, now=clock.now()
            )
    async with database.transaction() as session:
        await method.set_child_part(
            session, coordinator, conference_id, ChildPart.ABSENT, now=clock.now()
        )
        await method.set_text(
            session, coordinator, cipher, conference_id, "reason", text="Ill", now=clock.now()
        )
    async with database.transaction() as session:
        conference = await session.get_one(Conference, conference_id)
        conference.recorded_at = clock.now()
    with pytest.raises(MethodClosed):
        async with database.transaction() as session:
            await method.set_kind(
                session, coordinator, conference_id, ConferenceKind.OTHER, now=clock.now()
            )
    async with database.transaction() as session:
        view = await method.method_view(
            session, coordinator, cipher, conference_id, now=clock.now()
        )
    assert not view.open
    assert (view.section.kind, view.section.child_part, view.section.reason) == (
        ConferenceKind.COURT,
        ChildPart.ABSENT,
        "Ill",
    )


async def test_a_conference_planned_before_kinds_is_initial_or_a_review(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    coordinator, _teacher, started = await _team_polled(database, clock)
    async with database.transaction() as session:
        assert await method.kind_of(session, started.conference_id) is ConferenceKind.INITIAL
        conference = await session.get_one(Conference, started.conference_id)
        assert await method_section(session, cipher, conference) == MethodSection()
        conference.review_of_id = conference.id  # as a review names what it reviews
    async with database.transaction() as session:
        # Before its row is made, as after: the Kind button steps on from review, and the
        # record says what the board says.
        assert await method.kind_of(session, started.conference_id) is ConferenceKind.REVIEW
        conference = await session.get_one(Conference, started.conference_id)
        section = await method_section(session, cipher, conference)
        assert section == MethodSection(kind=ConferenceKind.REVIEW)
    async with database.transaction() as session:
        view = await method.method_view(
            session, coordinator, cipher, started.conference_id, now=clock.now()
        )
    assert view.section == MethodSection(kind=ConferenceKind.REVIEW)
    async with database.transaction() as session:
        invitations = await session.scalars(select(Invitation))
        assert len(list(invitations)) == 1


def test_the_record_has_its_own_headings_and_the_child_on_the_sheet(clock: FakeClock) -> None:
    tr = Translator("en", ZoneInfo("Europe/Prague"))
    section = MethodSection(
        kind=ConferenceKind.OTHER,
        goal="First line\nSecond line",
        child_part=ChildPart.VIEW,
        child_view="I want\x00 to stay",  # a stray control character cannot break the file
        child_present=True,
    )
    assert child_attendance(section, None, tr) == [("The child", "", "yes", "")]
    assert child_attendance(MethodSection(), "Anna", tr) == []
    record = RecordDocument(
        code="PK-2026-0001",
        starts_at=clock.now(),
        duration_minutes=90,
        place="OSPOD",
        coordinator="Hana",
        attendance=[AttendanceLine("ZŠ", "Jana", True)],
        summary="",
        tasks=[],
        method=section,
    )
    document = docx.Document(io.BytesIO(record_docx(record, tr)))
    paragraphs = [p.text for p in document.paragraphs]
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert "Kind and goal of the conference" in headings and "The child's voice" in headings
    for expected in (
        "Kind: other conference",
        "Goal: First line",
        "Second line",
        "How the child takes part: through a written or reported view",
        "I want to stay",
    ):
        assert expected in paragraphs, expected
    assert not any(text.startswith(("Support person", "Reason")) for text in paragraphs)
    rows = [[c.text for c in row.cells] for table in document.tables for row in table.rows]
    assert ["The child", "", "yes", ""] in rows
    # Without the method's data (an older caller), the document has none of it.
    plain = docx.Document(io.BytesIO(record_docx(dataclasses.replace(record, method=None), tr)))
    assert "The child's voice" not in [p.text for p in plain.paragraphs]


async def test_a_subject_access_export_holds_the_goal_and_the_childs_voice(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    coordinator, _teacher, conference_id = await _planned(database, clock, cipher)
    async with database.transaction() as session:
        await method.set_child_part(
            session, coordinator, conference_id, ChildPart.VIEW, now=clock.now()
        )
        await method.set_text(
            session, coordinator, cipher, conference_id, "view", text="I'm fine", now=clock.now()
        )
        case_id = (await session.get_one(Conference, conference_id)).case_id
        case = await session.get_one(Case, case_id)
        exported = await privacy.export_case(
            session, cipher, case.code, privacy.Operator("dpo"), now=clock.now()
        )
    assert exported["conferences"][0]["method"] == {
        "kind": "court",
        "goal": "The goal",
        "child_part": "view",
        "support": None,
        "reason": None,
        "child_view": "I'm fine",
        "child_present": False,
    }


async def test_a_review_is_planned_as_a_review(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    coordinator, _teacher, started = await _team_polled(database, clock)
    async with database.transaction() as session:
        held = await session.get_one(Conference, started.conference_id)
        held.status = ConferenceStatus.HELD
        held.starts_at = clock.now()
        case_id = held.case_id
    async with database.transaction() as session:
        plan = await planning.new_plan(
            session,
            coordinator,
            cipher,
            case_id,
            now=clock.now(),
            defaults=planning.Defaults(),
            mail_enabled=False,
        )
    assert (plan.kind, plan.goal) == ("review", "")
    assert planning.Plan.from_data(plan.to_data()) == plan
    # A plan kept by an older version (without a kind) reads as an initial one.
    older = {k: v for k, v in plan.to_data().items() if k not in ("kind", "goal")}
    assert planning.Plan.from_data(older).kind == "initial"
