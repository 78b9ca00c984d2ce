"""`roundtable audit`, `purge` and `export` as the data protection officer runs them (bot.cli.main
on a real database; the cases are built with the services, as the bot builds them)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.clock import FakeClock
from bot.crypto import Cipher
from bot.db import Database
from bot.models import (
    ENCRYPTED_COLUMNS,
    AuditEntry,
    Case,
    CaseStatus,
    Conference,
    ConferenceSlot,
    ConferenceStatus,
    Invitation,
    Referral,
    ReferralStatus,
    Role,
    Rsvp,
    Task,
    TaskStatus,
)
from bot.services import conferences, invitations, members, privacy, referrals, tasks
from bot.services.conferences import Defaults, Plan, Scheduled, Started
from bot.services.errors import PermissionDenied
from bot.services.members import Actor
from tests.bot.test_keys import stored
from tests.bot.test_members import _join
from tests.conftest import TEST_KEY

T = TypeVar("T")
CIPHER = Cipher([TEST_KEY])
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Team:
    coordinator: Actor  # OSPOD Cheb
    teacher: Actor  # a school's referrer
    officer: Actor  # Policie Cheb


@dataclass(frozen=True)
class Lived:
    code: str
    case_id: int
    referral_id: int
    conference_id: int
    task_id: int
    closed_at: datetime | None


# What purging the old case wipes: rows holding something to wipe, per table.
WIPED = "referrals 1, referral_notes 2, conferences 1, invitations 1, tasks 1, task_notes 1"


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """main() configures logging for the process; the other tests keep theirs."""
    factory = logging.getLogRecordFactory()
    levels = {name: logging.getLogger(name).level for name in ("", "telegram", "alembic")}
    yield
    logging.setLogRecordFactory(factory)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def roundtable(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., Ran]:
    """`roundtable ARGS...` in this process, on the test's database, with the test key."""
    for name in list(os.environ):
        if name.startswith("ROUNDTABLE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    monkeypatch.setenv("ROUNDTABLE_DATABASE_URL", database_url)
    monkeypatch.setenv("ROUNDTABLE_ENCRYPTION_KEY", TEST_KEY.decode())

    def run(*argv: str) -> Ran:
        capsys.readouterr()
        try:
            main(list(argv))
            code = 0
        except SystemExit as stop:
            code = int(stop.code or 0)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def _with_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def go() -> T:
        database = Database(url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(go())


def _monday_morning(moment: datetime) -> datetime:
    """08:00 in Prague (07:00 UTC, winter or summer close enough) of the Monday before."""
    day = moment.date() - timedelta(days=moment.weekday())
    return datetime(day.year, day.month, day.day, 7, 0, tzinfo=UTC)


async def _team(database: Database, clock: FakeClock) -> Team:
    return Team(
        coordinator=await _join(database, clock, Role.COORDINATOR, 1, institution="OSPOD Cheb"),
        teacher=await _join(database, clock, Role.REFERRER, 2, institution="ZŠ Hradební"),
        officer=await _join(database, clock, Role.PARTICIPANT, 3, institution="Policie Cheb"),
    )


async def _referral(
    database: Database, clock: FakeClock, team: Team, child: str, marker: str
) -> int:
    """The teacher reports a concern; the coordinator asks, the teacher answers."""
    teacher, now = team.teacher, clock.now()
    async with database.transaction() as session:
        await referrals.start_draft(session, teacher, CIPHER, now=now)
        await referrals.set_choice(session, teacher, CIPHER, "danger", "no", now=now)
        for text in (child, str(now.year - 10), f"4.B {marker}"):
            await referrals.set_text(session, teacher, CIPHER, text, now=now)
        await referrals.set_choice(session, teacher, CIPHER, "concerns", "truancy", now=now)
        await referrals.set_choice(session, teacher, CIPHER, "concerns", "done", now=now)
        description = f"Misses school since September {marker}; the mother works nights."
        await referrals.set_text(session, teacher, CIPHER, description, now=now)
        await referrals.set_choice(session, teacher, CIPHER, "tried", "skip", now=now)
        await referrals.set_choice(session, teacher, CIPHER, "guardians", "agree", now=now)
        await referrals.set_choice(session, teacher, CIPHER, "urgency", "routine", now=now)
        sent = await referrals.submit(session, teacher, CIPHER, now=now)
    assert isinstance(sent, referrals.Submitted)
    async with database.transaction() as session:
        await referrals.ask(
            session, team.coordinator, CIPHER, sent.referral_id, f"Since when? {marker}", now=now
        )
    async with database.transaction() as session:
        await referrals.answer(
            session, teacher, CIPHER, sent.referral_id, f"Since September {marker}", now=now
        )
    return sent.referral_id


async def _case_through_its_life(
    database: Database,
    clock: FakeClock,
    team: Team,
    *,
    child: str,
    marker: str,
    close: bool,
) -> Lived:
    """Referral, case, a poll, a conference (the officer declines with a reason), its record
    with a task and a note, and (if asked) the case closed. Every free text carries the marker."""
    referral_id = await _referral(database, clock, team, child, marker)
    coordinator = team.coordinator
    async with database.transaction() as session:
        decision = await referrals.accept(session, coordinator, referral_id, now=clock.now())
        case = await session.scalar(select(Case).where(Case.code == decision.case_code))
        assert case is not None
        plan = Plan(
            case_id=case.id,
            invited={team.teacher.institution_id: True, team.officer.institution_id: False},
            place=f"Family home {marker}",
        )
        started = await conferences.start_poll(
            session, coordinator, plan, now=clock.now(), defaults=Defaults()
        )
    assert isinstance(started, Started)
    async with database.transaction() as session:
        slot = await session.scalar(
            select(ConferenceSlot)
            .where(ConferenceSlot.conference_id == started.conference_id)
            .order_by(ConferenceSlot.starts_at)
        )
        assert slot is not None
        scheduled = await conferences.confirm(
            session, coordinator, started.conference_id, slot.id, now=clock.now()
        )
    assert isinstance(scheduled, Scheduled)
    invitation_of = {t.recipient.member_id: t.invitation_id for t in started.targets}
    async with database.transaction() as session:
        conference = await session.get_one(Conference, started.conference_id)
        sequence = conference.sequence
        await invitations.answer(
            session,
            team.teacher,
            invitation_of[team.teacher.member_id],
            sequence,
            Rsvp.ACCEPTED,
            now=clock.now(),
        )
        await invitations.answer(
            session,
            team.officer,
            invitation_of[team.officer.member_id],
            sequence,
            Rsvp.DECLINED,
            now=clock.now(),
        )
        await invitations.give_reason(
            session,
            team.officer,
            invitation_of[team.officer.member_id],
            sequence,
            f"On leave that week {marker}",
            cipher=CIPHER,
            now=clock.now(),
        )

    clock.set(scheduled.starts_at + timedelta(hours=2))
    conference_id = started.conference_id
    async with database.transaction() as session:
        await tasks.set_summary(
            session,
            coordinator,
            CIPHER,
            conference_id,
            f"The mother asked for help {marker}.",
            now=clock.now(),
        )
        task_id = await tasks.add_task(
            session,
            coordinator,
            CIPHER,
            conference_id,
            title=f"Talk to the class teacher {marker}",
            owner_id=team.teacher.member_id,
            due_on=clock.now().date() + timedelta(days=14),
            now=clock.now(),
        )
        await tasks.finish_record(session, coordinator, conference_id, now=clock.now())
    async with database.transaction() as session:
        await tasks.add_note(
            session, team.teacher, CIPHER, task_id, f"Talked on Monday {marker}", now=clock.now()
        )
    closed_at = None
    if close:
        clock.advance(timedelta(days=7))
        closed_at = clock.now()
        async with database.transaction() as session:
            await tasks.close_case(
                session, coordinator, case.id, tasks.Outcome.FULFILLED, now=closed_at
            )
    return Lived(case.code, case.id, referral_id, conference_id, task_id, closed_at)


@dataclass(frozen=True)
class Three:
    team: Team
    old: Lived  # closed seven years ago: past the default five years' retention
    recent: Lived  # closed two to three months ago
    open: Lived  # begun two months ago


def _three_cases(url: str) -> Three:
    async def build(database: Database) -> Three:
        old_clock = FakeClock(_monday_morning(NOW - timedelta(days=7 * 365)))
        team = await _team(database, old_clock)
        old = await _case_through_its_life(
            database, old_clock, team, child="Anička Stará", marker="OLD", close=True
        )
        recent = await _case_through_its_life(
            database,
            FakeClock(_monday_morning(NOW - timedelta(days=90))),
            team,
            child="Bohouš Nový",
            marker="RECENT",
            close=True,
        )
        still_open = await _case_through_its_life(
            database,
            FakeClock(_monday_morning(NOW - timedelta(days=60))),
            team,
            child="Cyril Otevřený",
            marker="OPEN",
            close=False,
        )
        return Three(team, old, recent, still_open)

    return _with_database(url, build)


def _one_open_case(url: str) -> Lived:
    async def build(database: Database) -> Lived:
        clock = FakeClock(_monday_morning(NOW - timedelta(days=30)))
        team = await _team(database, clock)
        return await _case_through_its_life(
            database, clock, team, child="Anička Dvořáková", marker="SAR", close=False
        )

    return _with_database(url, build)


def _audit_entries(url: str) -> list[AuditEntry]:
    async def read(database: Database) -> list[AuditEntry]:
        async with database.transaction() as session:
            return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))

    return _with_database(url, read)


def _csv(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == privacy.AUDIT_COLUMNS
    return list(reader)


def _decrypted(url: str) -> dict[tuple[str, Any, str], bytes]:
    """Every encrypted value in the database, decrypted, by table, primary key and column."""
    return {where: CIPHER.decrypt(token) for where, token in _with_database(url, stored).items()}


# roundtable audit


def test_the_audit_log_is_csv_with_every_entry_its_actor_and_its_case(
    roundtable: Callable[..., Ran], database_url: str
) -> None:
    three = _three_cases(database_url)
    entries = _audit_entries(database_url)

    ran = roundtable("audit")
    assert (ran.code, ran.err) == (0, "")
    rows = _csv(ran.out)
    assert len(rows) == len(entries)
    assert [row["action"] for row in rows] == [
        entry.action for entry in sorted(entries, key=lambda e: (e.at, e.id))
    ]
    for row in rows:
        at = datetime.fromisoformat(row["at"])
        assert at.utcoffset() == timedelta(0)
        assert isinstance(json.loads(row["details"]), dict)

    opened = next(row for row in rows if row["action"] == "case.opened")
    assert opened["actor_name"] == "Person 1"
    assert opened["actor_institution"] == "OSPOD Cheb"
    assert opened["actor_id"] == str(three.team.coordinator.member_id)
    assert opened["subject_type"] == "case"
    assert opened["case"] == three.old.code
    # The case is found through whatever the entry is about.
    assert {row["action"] for row in rows if row["case"] == three.recent.code} >= {
        "referral.submitted",  # the referral that became the case
        "referral.asked",
        "case.opened",
        "conference.poll_started",
        "conference.scheduled",
        "invitation.answered",  # an invitation to one of its conferences
        "record.summary",  # one of its conferences
        "task.added",  # one of its tasks
        "task.note",
        "case.closed",
    }
    joined = [row for row in rows if row["action"] == "member.joined"]
    assert len(joined) == 3
    assert all(row["case"] == "" for row in joined)
    assert {row["case"] for row in rows} == {
        "",
        three.old.code,
        three.recent.code,
        three.open.code,
    }
    # Nothing is decrypted: no child's name, no text anyone typed.
    for secret in ("Anička", "Bohouš", "Cyril", "OLD", "RECENT", "OPEN", "September"):
        assert secret not in ran.out


def test_the_audit_log_of_one_case_and_from_one_day(
    roundtable: Callable[..., Ran], database_url: str
) -> None:
    three = _three_cases(database_url)
    everything = _csv(roundtable("audit").out)

    of_recent = _csv(roundtable("audit", "--case", three.recent.code).out)
    assert of_recent == [row for row in everything if row["case"] == three.recent.code]
    assert len(of_recent) >= 10
    assert of_recent[0]["action"] == "referral.submitted"
    assert of_recent[-1]["action"] == "case.closed"

    # From midnight UTC of the day on, whatever the district's zone.
    day = (NOW - timedelta(days=70)).date()  # after the recent case, before the open one
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    _with_database(database_url, lambda database: _entries_around_midnight(database, midnight))
    everything = _csv(roundtable("audit").out)
    since = _csv(roundtable("audit", "--since", day.isoformat()).out)
    assert since == [row for row in everything if datetime.fromisoformat(row["at"]) >= midnight]
    assert [row["subject_id"] for row in since if row["subject_type"] == "district"] == ["at"]
    assert {row["case"] for row in since} == {"", three.open.code}
    assert len(since) < len(everything)

    assert _csv(roundtable("audit", "--case", three.old.code, "--since", day.isoformat()).out) == []
    tomorrow = (NOW + timedelta(days=2)).date().isoformat()
    assert _csv(roundtable("audit", "--since", tomorrow).out) == []


async def _entries_around_midnight(database: Database, midnight: datetime) -> None:
    """An entry a second before midnight and one at midnight (about no case)."""
    async with database.transaction() as session:
        for at, name in ((midnight - timedelta(seconds=1), "before"), (midnight, "at")):
            session.add(
                AuditEntry(
                    at=at, action="district.checked", subject_type="district", subject_id=name
                )
            )


@pytest.mark.parametrize("wrong", ["2026-13-01", "2026-02-30", "26-01-01", "2026-1-5", "today"])
def test_a_wrong_day_is_refused_in_one_line(roundtable: Callable[..., Ran], wrong: str) -> None:
    ran = roundtable("audit", "--since", wrong)
    assert ran.code == 2
    assert ran.out == ""
    assert ran.err.splitlines() == [
        f"roundtable: --since: {wrong!r} is not a day; use YYYY-MM-DD, e.g. 2026-01-31"
    ]


@pytest.mark.parametrize("command", ["audit", "export"])
def test_an_unknown_case_is_refused_in_one_line(
    roundtable: Callable[..., Ran], database_url: str, command: str
) -> None:
    _one_open_case(database_url)
    before = len(_audit_entries(database_url))
    ran = roundtable(command, "--case", "PK-1999-0001")
    assert ran.code == 2
    assert ran.out == ""
    assert ran.err.splitlines() == ["roundtable: no case with the code PK-1999-0001"]
    assert len(_audit_entries(database_url)) == before


# roundtable purge


def test_a_dry_run_lists_the_old_closed_case_and_changes_nothing(
    roundtable: Callable[..., Ran],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    three = _three_cases(database_url)
    values, entries = _decrypted(database_url), _audit_entries(database_url)
    monkeypatch.delenv("ROUNDTABLE_ENCRYPTION_KEY")  # a dry run needs no key

    ran = roundtable("purge", "--dry-run")
    assert (ran.code, ran.err) == (0, "")
    listed, summary = ran.out.splitlines()
    code, closed, counts = listed.split("\t")
    assert code == three.old.code
    assert three.old.closed_at is not None
    assert closed == f"closed {three.old.closed_at:%Y-%m-%d}"
    assert counts == WIPED
    cutoff = NOW.replace(year=NOW.year - 5).date()
    assert summary in {
        f"Would purge 1 case(s) closed before {day} (retention 5 years); nothing was changed."
        for day in (cutoff, cutoff + timedelta(days=1))  # should midnight pass meanwhile
    }
    assert _decrypted(database_url) == values
    assert len(_audit_entries(database_url)) == len(entries)
    assert _purged_at(database_url) == {}


def _purged_at(url: str) -> dict[str, datetime]:
    async def read(database: Database) -> dict[str, datetime]:
        async with database.transaction() as session:
            rows = await session.execute(
                select(Case.code, Case.purged_at).where(Case.purged_at.is_not(None))
            )
            return {code: at for code, at in rows if at is not None}

    return _with_database(url, read)


async def _rows_of(database: Database, lived: Lived) -> dict[str, Any]:
    async with database.transaction() as session:
        return {
            "case": await session.get_one(Case, lived.case_id),
            "referral": await session.get_one(Referral, lived.referral_id),
            "conference": await session.get_one(Conference, lived.conference_id),
            "invitations": list(
                await session.scalars(
                    select(Invitation)
                    .where(Invitation.conference_id == lived.conference_id)
                    .order_by(Invitation.id)
                )
            ),
            "task": await session.get_one(Task, lived.task_id),
        }


def _markers(values: dict[tuple[str, Any, str], bytes]) -> dict[str, int]:
    """How many encrypted values mention each case's marker."""
    return {
        marker: sum(marker.encode() in plain for plain in values.values())
        for marker in ("OLD", "RECENT", "OPEN")
    }


def test_purge_wipes_the_old_closed_case_keeps_its_statistics_and_runs_once(
    roundtable: Callable[..., Ran], database_url: str
) -> None:
    three = _three_cases(database_url)
    before = _decrypted(database_url)
    assert _markers(before) == {"OLD": 7, "RECENT": 7, "OPEN": 7}

    ran = roundtable("purge")
    assert (ran.code, ran.err) == (0, "")
    listed, summary = ran.out.splitlines()
    assert listed.startswith(f"{three.old.code}\tclosed ")
    assert listed.endswith(f"\t{WIPED}")
    assert summary.startswith("Purged 1 case(s) closed before ")

    after = _decrypted(database_url)
    # Nothing the people typed about the old case is left in any encrypted column; the other
    # cases' values are untouched.
    assert _markers(after) == {"OLD": 0, "RECENT": 7, "OPEN": 7}
    changed = {where for where in before if after.get(where) != before[where]}
    assert changed == {
        ("referrals", three.old.referral_id, "sealed"),
        *{where for where in before if where[0] == "referral_notes" and b"OLD" in before[where]},
        ("conferences", three.old.conference_id, "summary"),
        *{where for where in before if where[0] == "invitations" and b"OLD" in before[where]},
        ("tasks", three.old.task_id, "title"),
        *{where for where in before if where[0] == "task_notes" and b"OLD" in before[where]},
    }
    assert after[("referrals", three.old.referral_id, "sealed")] == b"{}"
    assert after[("tasks", three.old.task_id, "title")] == b""

    old = _with_database(database_url, lambda database: _rows_of(database, three.old))
    recent = _with_database(database_url, lambda database: _rows_of(database, three.recent))
    # Codes, dates, statuses, answers and attendance stay, for the statistics.
    assert old["case"].code == three.old.code
    assert old["case"].status is CaseStatus.CLOSED
    assert old["case"].outcome == "fulfilled"
    assert old["case"].closed_at is not None
    assert old["case"].purged_at is not None
    assert old["referral"].code is not None
    assert old["referral"].status is ReferralStatus.ACCEPTED
    assert old["referral"].urgency is not None
    assert old["referral"].submitted_at is not None
    assert old["referral"].message_refs == []
    assert old["conference"].status is ConferenceStatus.HELD
    assert old["conference"].starts_at is not None
    assert old["conference"].summary is None
    assert old["conference"].place == ""
    assert [(i.rsvp, i.attended) for i in old["invitations"]] == [
        (Rsvp.ACCEPTED, True),
        (Rsvp.DECLINED, False),
    ]
    assert all(i.decline_reason is None for i in old["invitations"])
    assert old["task"].status is TaskStatus.CANCELLED  # closing the case cancelled it
    assert old["task"].due_on is not None
    # The recent case keeps everything.
    assert recent["case"].purged_at is None
    assert recent["conference"].place == "Family home RECENT"
    assert recent["conference"].summary is not None

    purged = [e for e in _audit_entries(database_url) if e.action == "case.purged"]
    assert [(e.actor_id, e.subject_type, e.subject_id) for e in purged] == [
        (None, "case", str(three.old.case_id))
    ]
    assert purged[0].details == {
        "case": three.old.code,
        "wiped": {
            "referrals": 1,
            "referral_notes": 2,
            "conferences": 1,
            "invitations": 1,
            "tasks": 1,
            "task_notes": 1,
        },
    }

    # Once only: a second run finds nothing and changes nothing.
    purged_at = _purged_at(database_url)
    again = roundtable("purge")
    assert (again.code, again.err) == (0, "")
    assert again.out.startswith("Purged 0 case(s) closed before ")
    assert len(again.out.splitlines()) == 1
    assert _decrypted(database_url) == after
    assert _purged_at(database_url) == purged_at
    assert [e.action for e in _audit_entries(database_url)].count("case.purged") == 1


def test_a_purged_referral_shows_nothing_and_its_export_holds_nothing_typed(
    roundtable: Callable[..., Ran], database_url: str
) -> None:
    three = _three_cases(database_url)
    assert roundtable("purge").code == 0

    async def coordinator_opens_the_referral(database: Database) -> None:
        async with database.transaction() as session:
            actor = await members.find_actor(session, 1)
            assert actor is not None
            await referrals.view(
                session, actor, CIPHER, three.old.referral_id, now=datetime.now(UTC)
            )

    with pytest.raises(PermissionDenied):
        _with_database(database_url, coordinator_opens_the_referral)

    ran = roundtable("export", "--case", three.old.code)
    assert (ran.code, ran.err) == (0, "")
    assert "OLD" not in ran.out
    assert "Anička" not in ran.out
    exported = json.loads(ran.out)
    assert exported["referral"]["details"] == {}
    assert exported["case"]["purged_at"] is not None


def test_every_encrypted_column_of_a_case_is_wiped() -> None:
    per_person = {("user_data", "data"), ("chat_data", "data")}  # dialog drafts, no case's
    encrypted = {(model.__tablename__, column) for model, _, column in ENCRYPTED_COLUMNS}
    wiped = {
        (model.__tablename__, column)
        for model, values in privacy.wiped(CIPHER).items()
        for column in values
    }
    assert encrypted - per_person <= wiped


def test_the_cutoff_is_the_same_day_years_ago() -> None:
    assert privacy.retention_cutoff(datetime(2031, 3, 1, 9, tzinfo=UTC), 5) == datetime(
        2026, 3, 1, 9, tzinfo=UTC
    )
    assert privacy.retention_cutoff(datetime(2028, 2, 29, tzinfo=UTC), 5) == datetime(
        2023, 2, 28, tzinfo=UTC
    )


# roundtable export


def test_an_export_holds_the_decrypted_referral_and_is_audited(
    roundtable: Callable[..., Ran], database_url: str
) -> None:
    lived = _one_open_case(database_url)

    ran = roundtable("export", "--case", lived.code.lower())
    assert (ran.code, ran.err) == (0, "")
    assert ran.out.startswith('{\n  "case": {\n    "code": ')
    assert "Anička Dvořáková" in ran.out  # not escaped
    exported = json.loads(ran.out)

    assert exported["case"]["code"] == lived.code
    assert exported["case"]["status"] == "open"
    assert exported["case"]["manager"] == {
        "member_id": 1,
        "name": "Person 1",
        "institution": "OSPOD Cheb",
    }
    referral = exported["referral"]
    assert referral["details"]["name"] == "Anička Dvořáková"
    assert referral["details"]["class_name"] == "4.B SAR"
    assert referral["details"]["categories"] == ["truancy"]
    assert "the mother works nights" in referral["details"]["description"]
    assert [(note["kind"], note["text"]) for note in referral["notes"]] == [
        ("question", "Since when? SAR"),
        ("answer", "Since September SAR"),
    ]
    assert referral["referrer"]["name"] == "Person 2"

    (conference,) = exported["conferences"]
    assert conference["status"] == "held"
    assert conference["place"] == "Family home SAR"
    assert conference["summary"] == "The mother asked for help SAR."
    assert [
        (i["institution"], i["rsvp"], i["decline_reason"], i["attended"])
        for i in conference["invitations"]
    ] == [
        ("ZŠ Hradební", "accepted", None, True),
        ("Policie Cheb", "declined", "On leave that week SAR", False),
    ]
    assert conference["invitations"][0]["attendee"]["name"] == "Person 2"

    (task,) = exported["tasks"]
    assert task["title"] == "Talk to the class teacher SAR"
    assert task["owner"]["name"] == "Person 2"
    assert task["status"] == "open"
    assert [(note["kind"], note["text"]) for note in task["notes"]] == [
        ("note", "Talked on Monday SAR")
    ]

    actions = [entry["action"] for entry in exported["audit"]]
    assert actions[0] == "referral.submitted"
    assert actions[-1] == "case.exported"
    assert {entry["case"] for entry in exported["audit"]} == {lived.code}
    assert "member.joined" not in actions

    exports = [e for e in _audit_entries(database_url) if e.action == "case.exported"]
    assert [(e.actor_id, e.subject_type, e.subject_id, e.details) for e in exports] == [
        (None, "case", str(lived.case_id), {"case": lived.code, "via": "cli"})
    ]
