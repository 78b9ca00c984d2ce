"""`roundtable audit`, `purge` and `export` as the data protection officer runs them (bot.cli.main
on a real database; the cases are built with the services, as the bot builds them)."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from bot.cli import main
from bot.core import migrate
from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import (
    ENCRYPTED_COLUMNS,
    AuditEntry,
    Base,
    BusyTime,
    Case,
    CaseStatus,
    ChatData,
    Conference,
    ConferenceStatus,
    ConversationState,
    HandledUpdate,
    Invitation,
    InviteMessage,
    JoinAttempt,
    Member,
    PollMessage,
    Referral,
    ReferralStatus,
    Role,
    Rsvp,
    Task,
    TaskStatus,
    UserData,
    conversation_key,
)
from bot.services import (
    addresses,
    cases,
    decisions,
    drafting,
    invitations,
    leavers,
    members,
    planning,
    polls,
    privacy,
    records,
    referrals,
    replies,
    retention,
    tasks,
)
from bot.services.board import Target
from bot.services.decisions import Scheduled
from bot.services.members import Actor
from bot.services.planning import Defaults, Plan, Started
from tests.bot.test_conferences import _slots
from tests.bot.test_keys import stored
from tests.bot.test_members import _join
from tests.conftest import TEST_KEY, with_database

CIPHER = Cipher([TEST_KEY])
NOW = datetime.now(UTC)
OPERATOR = pwd.getpwuid(os.getuid()).pw_name  # who runs the tests runs the commands
BY_CLI = {"via": "cli", "os_user": OPERATOR}


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


@dataclass(frozen=True)
class Guardian:
    """A parent who joins by the conference's link, with their Telegram name."""

    telegram_user_id: int
    name: str


# What purging the old case wipes: rows holding something to wipe, per table.
WIPED = (
    "referrals 1, referral_notes 2, conferences 1, invitations 1, tasks 1, task_notes 1, "
    "conference_methods 0, record_comments 0, invite_messages 2, poll_messages 2, web_links 0, "
    "members 0"
)


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
    monkeypatch.delenv("SUDO_USER", raising=False)
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
        await drafting.start_draft(session, teacher, CIPHER, now=now)
        await drafting.set_choice(session, teacher, CIPHER, "danger", "no", now=now)
        for text in (child, str(now.year - 10), f"4.B {marker}"):
            await drafting.set_text(session, teacher, CIPHER, text, now=now)
        await drafting.set_choice(session, teacher, CIPHER, "concerns", "truancy", now=now)
        await drafting.set_choice(session, teacher, CIPHER, "concerns", "done", now=now)
        description = f"Misses school since September {marker}; the mother works nights."
        await drafting.set_text(session, teacher, CIPHER, description, now=now)
        await drafting.set_choice(session, teacher, CIPHER, "tried", "skip", now=now)
        await drafting.set_choice(session, teacher, CIPHER, "guardians", "agree", now=now)
        await drafting.set_choice(session, teacher, CIPHER, "urgency", "routine", now=now)
        sent = await drafting.submit(session, teacher, CIPHER, now=now)
    assert isinstance(sent, drafting.Submitted)
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
    guardians: Sequence[Guardian] = (),
) -> Lived:
    """Referral, case, a poll (the guardians, if any, join by their links), a conference (the
    officer declines with a reason), its record with a task and a note, and (if asked) the
    case closed. Every free text carries the marker. The polls and calendar invitations are
    recorded as sent, as the bot records them."""
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
            guardians=["link"] * len(guardians),
        )
        started = await planning.start_poll(
            session, coordinator, plan, now=clock.now(), defaults=Defaults(), mail_enabled=False
        )
    assert isinstance(started, Started)
    targets = list(started.targets)
    for guardian, link in zip(guardians, started.links, strict=True):
        targets += await _guardian_joins(database, clock, guardian, link.code)
    async with database.transaction() as session:
        await decisions.set_board(session, started.conference_id, 1, 900)
        for number, target in enumerate(targets, start=1000):
            await polls.record_message(session, target.invitation_id, target.recipient, number)
    slot = (await _slots(database, started.conference_id))[0]
    async with database.transaction() as session:
        scheduled = await decisions.confirm(
            session, coordinator, started.conference_id, slot.id, now=clock.now()
        )
    assert isinstance(scheduled, Scheduled)
    invitation_of = {t.recipient.member_id: t.invitation_id for t in started.targets}
    async with database.transaction() as session:
        conference = await session.get_one(Conference, started.conference_id)
        sequence = conference.sequence
        for number, target in enumerate(targets, start=2000):
            await invitations.record_message(
                session,
                target.invitation_id,
                target.recipient.member_id,
                sequence=sequence,
                chat_id=target.recipient.chat_id,
                message_id=number,
            )
        for member, rsvp in ((team.teacher, Rsvp.ACCEPTED), (team.officer, Rsvp.DECLINED)):
            await replies.answer(
                session, member, invitation_of[member.member_id], sequence, rsvp, now=clock.now()
            )
        await replies.give_reason(
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
        await records.set_summary(
            session,
            coordinator,
            CIPHER,
            conference_id,
            f"The mother asked for help {marker}.",
            now=clock.now(),
        )
        task_id = await records.add_task(
            session,
            coordinator,
            CIPHER,
            conference_id,
            title=f"Talk to the class teacher {marker}",
            owner_id=team.teacher.member_id,
            due_on=clock.now().date() + timedelta(days=14),
            now=clock.now(),
        )
        await records.finish_record(session, coordinator, conference_id, now=clock.now())
    async with database.transaction() as session:
        await tasks.add_note(
            session, team.teacher, CIPHER, task_id, f"Talked on Monday {marker}", now=clock.now()
        )
    closed_at = None
    if close:
        clock.advance(timedelta(days=7))
        closed_at = clock.now()
        async with database.transaction() as session:
            await cases.close_case(
                session, coordinator, case.id, cases.Outcome.FULFILLED, now=closed_at
            )
    return Lived(case.code, case.id, referral_id, conference_id, task_id, closed_at)


async def _guardian_joins(
    database: Database, clock: FakeClock, guardian: Guardian, code: str
) -> list[Target]:
    """The guardian opens the link: registered, and the poll reaches their chat."""
    async with database.transaction() as session:
        joined = await members.redeem_invite(
            session,
            code=code,
            telegram_user_id=guardian.telegram_user_id,
            chat_id=guardian.telegram_user_id,
            display_name=guardian.name,
            locale="cs",
            now=clock.now(),
            attempts_per_hour=5,
        )
        assert isinstance(joined, members.Joined)
        assert joined.actor.is_guardian
        return await polls.open_polls(session, joined.actor, now=clock.now())


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
        recent, still_open = [
            await _case_through_its_life(
                database,
                FakeClock(_monday_morning(NOW - timedelta(days=days_ago))),
                team,
                child=child,
                marker=marker,
                close=close,
            )
            for days_ago, child, marker, close in (
                (90, "Bohouš Nový", "RECENT", True),
                (60, "Cyril Otevřený", "OPEN", False),
            )
        ]
        return Three(team, old, recent, still_open)

    return with_database(url, build)


def _one_open_case(url: str) -> Lived:
    async def build(database: Database) -> Lived:
        clock = FakeClock(_monday_morning(NOW - timedelta(days=30)))
        team = await _team(database, clock)
        return await _case_through_its_life(
            database, clock, team, child="Anička Dvořáková", marker="SAR", close=False
        )

    return with_database(url, build)


def _audit_entries(url: str) -> list[AuditEntry]:
    async def read(database: Database) -> list[AuditEntry]:
        async with database.transaction() as session:
            return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))

    return with_database(url, read)


def _csv(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == privacy.AUDIT_COLUMNS
    return list(reader)


def _decrypted(url: str) -> dict[tuple[str, Any, str], bytes]:
    """Every encrypted value in the database, decrypted, by table, primary key and column."""
    return {where: CIPHER.decrypt(token) for where, token in with_database(url, stored).items()}


# roundtable audit


def test_the_audit_log_is_csv_with_every_entry_its_actor_and_its_case(
    roundtable: Callable[..., Ran], database_url: str
) -> None:
    three = _three_cases(database_url)
    entries = _audit_entries(database_url)

    ran = roundtable("audit")
    assert (ran.code, ran.err) == (0, "")
    rows = _csv(ran.out)
    assert [row["action"] for row in rows[:-1]] == [
        entry.action for entry in sorted(entries, key=lambda e: (e.at, e.id))
    ]
    # The reading itself is audited, and is the last entry: no member, so the account that ran
    # it stands in the actor's name.
    read = rows[-1]
    assert (read["action"], read["actor_id"], read["actor_name"], read["case"]) == (
        "audit.read",
        "",
        OPERATOR,
        "",
    )
    assert json.loads(read["details"]) == BY_CLI
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
    # This reading is the case's last entry.
    assert of_recent[:-1] == [row for row in everything if row["case"] == three.recent.code]
    assert len(of_recent) >= 10
    assert of_recent[0]["action"] == "referral.submitted"
    assert [row["action"] for row in of_recent[-2:]] == ["case.closed", "audit.read"]
    assert json.loads(of_recent[-1]["details"]) == {"case": three.recent.code, **BY_CLI}

    # From midnight UTC of the day on, whatever the district's zone.
    day = (NOW - timedelta(days=70)).date()  # after the recent case, before the open one
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with_database(database_url, lambda database: _entries_around_midnight(database, midnight))
    everything = _csv(roundtable("audit").out)
    since = _csv(roundtable("audit", "--since", day.isoformat()).out)
    assert since[:-1] == [
        row for row in everything if datetime.fromisoformat(row["at"]) >= midnight
    ]
    assert json.loads(since[-1]["details"]) == {"since": day.isoformat(), **BY_CLI}
    assert [row["subject_id"] for row in since if row["subject_type"] == "district"] == ["at"]
    # The readings of today are there too, the one of the recent case's entries with it.
    assert {row["case"] for row in since} == {"", three.open.code, three.recent.code}
    assert len(since) < len(everything)

    (read,) = _csv(roundtable("audit", "--case", three.old.code, "--since", day.isoformat()).out)
    assert read["action"] == "audit.read"
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


def test_the_audit_log_for_excel_is_a_private_file_with_a_byte_order_mark(
    roundtable: Callable[..., Ran], database_url: str, tmp_path: Path
) -> None:
    _one_open_case(database_url)
    on_stdout = roundtable("audit").out
    assert not on_stdout.startswith("\ufeff")  # a pipe's next reader gets plain UTF-8

    path = tmp_path / "audit.csv"
    ran = roundtable("audit", "--output", str(path))
    assert (ran.code, ran.out, ran.err) == (0, "", "")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfat,actor_id,")  # how Excel knows it is UTF-8
    rows = _csv(raw.decode("utf-8-sig"))
    assert "ZŠ Hradební" in {row["actor_institution"] for row in rows}
    assert rows[:-1] == _csv(on_stdout)  # the same lines, and the second reading last
    assert path.stat().st_mode & 0o777 == 0o600  # who did what is for the DPO's eyes


def test_the_account_behind_sudo_is_named_too(
    roundtable: Callable[..., Ran], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lived = _one_open_case(database_url)
    monkeypatch.setenv("SUDO_USER", "jana.novakova")
    assert roundtable("export", "--case", lived.code).code == 0
    exported = [e for e in _audit_entries(database_url) if e.action == "case.exported"]
    assert [e.details for e in exported] == [
        {"case": lived.code, **BY_CLI, "sudo_user": "jana.novakova"}
    ]


async def _many_entries(database: Database) -> None:
    """Far more audit lines than a pipe holds (64 KiB)."""
    async with database.transaction() as session:
        session.add_all(
            AuditEntry(
                at=NOW, action="district.checked", subject_type="district", subject_id=str(n)
            )
            for n in range(3000)
        )


def _command(
    database_url: str, tmp_path: Path, *argv: str, **pipes: Any
) -> subprocess.Popen[bytes]:
    """`roundtable ARGS...` as its own process, on the test's database."""
    environment = {
        # Without this machine's PYTHONUNBUFFERED: output is buffered, as it usually is.
        **{
            name: value
            for name, value in os.environ.items()
            if not name.startswith("ROUNDTABLE") and name != "PYTHONUNBUFFERED"
        },
        "ROUNDTABLE_DATABASE_URL": database_url,
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *argv],
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=environment,
        **pipes,
    )


SIGPIPED = 128 + signal.SIGPIPE  # how the shell reports a tool that SIGPIPE ended, e.g. cat


def test_the_audit_log_piped_into_head_ends_quietly(database_url: str, tmp_path: Path) -> None:
    """`roundtable audit | head -3`, with a real pipe: head leaves after three lines."""
    with_database(database_url, _many_entries)
    audit = _command(database_url, tmp_path, "audit", stdout=subprocess.PIPE)
    assert audit.stdout is not None and audit.stderr is not None
    head = subprocess.Popen(["head", "-3"], stdin=audit.stdout, stdout=subprocess.PIPE)
    audit.stdout.close()  # head is the only reader now
    shown, _ = head.communicate(timeout=120)
    err = audit.stderr.read()
    assert audit.wait(timeout=120) == SIGPIPED
    assert err.decode() == ""  # no traceback, no "Exception ignored"
    assert shown.decode().splitlines()[0] == ",".join(privacy.AUDIT_COLUMNS)
    assert len(shown.decode().splitlines()) == 3


def test_a_short_audit_log_into_a_pipe_nobody_reads_ends_quietly(
    database_url: str, tmp_path: Path
) -> None:
    """A new database: the header and this reading fit in the output buffer, so the pipe
    breaks only when that is flushed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        audit = _command(database_url, tmp_path, "audit", stdout=write_end)
    finally:
        os.close(write_end)
    _, err = audit.communicate(timeout=120)
    assert (audit.returncode, err.decode()) == (SIGPIPED, "")


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
    cutoff = retention.retention_cutoff(NOW, 5).date()  # 29 February included
    assert summary in {
        f"Would purge 1 case(s) closed and 0 referral(s) declined before {day} "
        "(retention 5 years); nothing was changed."
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

    return with_database(url, read)


async def _rows_of(database: Database, lived: Lived) -> dict[str, Any]:
    async with database.transaction() as session:
        sent = [
            await session.scalar(
                select(func.count())
                .select_from(model)
                .join(Invitation, model.invitation_id == Invitation.id)
                .where(Invitation.conference_id == lived.conference_id)
            )
            for model in (InviteMessage, PollMessage)
        ]
        return {
            "invite_messages": sent[0],
            "poll_messages": sent[1],
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
    assert summary.startswith("Purged 1 case(s) closed and 0 referral(s) declined before ")

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

    old = with_database(database_url, lambda database: _rows_of(database, three.old))
    recent = with_database(database_url, lambda database: _rows_of(database, three.recent))
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
    assert (old["conference"].board_chat_id, old["conference"].board_message_id) == (None, None)
    # The polls and invitations sent only pointed into people's chats: gone.
    assert (old["invite_messages"], old["poll_messages"]) == (0, 0)
    assert old["referral"].purged_at == old["case"].purged_at
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
    assert (recent["invite_messages"], recent["poll_messages"]) == (2, 2)
    assert recent["referral"].purged_at is None

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
            "conference_methods": 0,
            "record_comments": 0,
            "invite_messages": 2,
            "poll_messages": 2,
            "web_links": 0,
            "members": 0,
        },
        **BY_CLI,
    }

    # Once only: a second run finds nothing and changes nothing.
    purged_at = _purged_at(database_url)
    again = roundtable("purge")
    assert (again.code, again.err) == (0, "")
    assert again.out.startswith("Purged 0 case(s) closed and 0 referral(s) declined before ")
    assert len(again.out.splitlines()) == 1
    assert _decrypted(database_url) == after
    assert _purged_at(database_url) == purged_at
    assert [e.action for e in _audit_entries(database_url)].count("case.purged") == 1


# Guardians who joined by a link: telegram ids no real chat in the tests uses.
MARIE = Guardian(770_000_501, "Marie Rodičová")
PETR = Guardian(770_000_502, "Petr Sdílený")
MARIE_EMAIL = "marie@seznam.cz"


def _where_found(url: str, *needles: str) -> set[tuple[str, str]]:
    """Every table and column holding a needle (a name, or a Telegram id as digits), in any
    plain value: text, number or JSON."""

    async def scan(database: Database) -> set[tuple[str, str]]:
        found = set()
        async with database.transaction() as session:
            for table in Base.metadata.sorted_tables:
                for row in await session.execute(select(table)):
                    for column, value in row._mapping.items():
                        if isinstance(value, bytes):  # ciphertext: the other tests' business
                            continue
                        text = json.dumps(value, ensure_ascii=False, default=str)
                        if any(needle in text for needle in needles):
                            found.add((table.name, column))
        return found

    return with_database(url, scan)


def _needles(guardian: Guardian) -> tuple[str, ...]:
    """What identifies the guardian: the surname, the Telegram id (and Marie's e-mail)."""
    email = (MARIE_EMAIL,) if guardian is MARIE else ()
    return guardian.name.split()[1], str(guardian.telegram_user_id), *email


def _guardian_cases(url: str) -> tuple[Lived, Lived]:
    """An old closed case with two guardians, Marie and Petr, who joined by its links; Marie
    left dialog state, busy times and an e-mail address behind. Petr, deactivated since,
    joined again by a link of a recent closed case."""

    async def build(database: Database) -> tuple[Lived, Lived]:
        old_clock = FakeClock(_monday_morning(NOW - timedelta(days=7 * 365)))
        team = await _team(database, old_clock)
        old = await _case_through_its_life(
            database,
            old_clock,
            team,
            child="Anička",
            marker="OLD",
            close=True,
            guardians=[MARIE, PETR],
        )
        async with database.transaction() as session:
            marie = await members.find_actor(session, MARIE.telegram_user_id)
            petr = await members.find_actor(session, PETR.telegram_user_id)
            assert marie is not None and petr is not None
            # Her address came with a code by mail (the code's mail row and its confirmation).
            await addresses.request_code(session, marie, CIPHER, MARIE_EMAIL, now=old_clock.now())
            await session.execute(
                update(Member).where(Member.id == marie.member_id).values(email=MARIE_EMAIL)
            )
            key = conversation_key((marie.chat_id, MARIE.telegram_user_id))
            session.add_all(
                [
                    ConversationState(handler="invitations", key=key, state="reason"),
                    UserData(user_id=marie.chat_id, data=CIPHER.encrypt_json({"waiting": [1]})),
                    ChatData(chat_id=marie.chat_id, data=CIPHER.encrypt_json({"x": 1})),
                    HandledUpdate(chat_id=marie.chat_id, update_id=41),
                    JoinAttempt(telegram_user_id=marie.chat_id, attempted_at=old_clock.now()),
                    BusyTime(
                        member_id=marie.member_id,
                        intervals=[[0, 60]],
                        imported_at=old_clock.now(),
                        until=old_clock.now(),
                    ),
                ]
            )
            # A button in an old message of Marie's, pressed after she left, was refused.
            await members.turned_away(
                session, MARIE.telegram_user_id, "inv:rsvp", now=old_clock.now()
            )
            await leavers.deactivate_member(session, None, petr.member_id, now=old_clock.now())
        recent_clock = FakeClock(_monday_morning(NOW - timedelta(days=90)))
        recent = await _case_through_its_life(
            database,
            recent_clock,
            team,
            child="Bohouš",
            marker="RECENT",
            close=True,
            guardians=[PETR],
        )
        return old, recent

    return with_database(url, build)


def _guardian(url: str, guardian: Guardian | int) -> Member:
    """A guardian's member row: by who joined, or by the row's id (once anonymised)."""

    async def read(database: Database) -> Member:
        async with database.transaction() as session:
            if isinstance(guardian, int):
                return await session.get_one(Member, guardian)
            found = await session.scalar(
                select(Member).where(Member.telegram_user_id == guardian.telegram_user_id)
            )
            assert found is not None
            return found

    return with_database(url, read)


def _busy_members(url: str) -> set[int]:
    async def read(database: Database) -> set[int]:
        async with database.transaction() as session:
            return set(await session.scalars(select(BusyTime.member_id)))

    return with_database(url, read)


def test_purge_anonymises_the_guardians_whose_last_case_it_is(
    roundtable: Callable[..., Ran], database_url: str
) -> None:
    old, recent = _guardian_cases(database_url)
    # Before: Marie's name and Telegram id sit in her member row, the calendar invitations
    # and polls sent to her chat, the notifications planned for her, her dialog state, and an
    # audit entry of a refused button; her address in the mail of her code and its
    # confirmation.
    marie_before = _where_found(database_url, *_needles(MARIE))
    assert marie_before == {
        ("members", "telegram_user_id"),
        ("members", "chat_id"),
        ("members", "display_name"),
        ("members", "email"),
        ("poll_messages", "chat_id"),
        ("invite_messages", "chat_id"),
        ("outbox", "chat_id"),
        ("outbox", "address"),
        ("email_confirmations", "address"),
        ("conversation_states", "key"),
        ("user_data", "user_id"),
        ("chat_data", "chat_id"),
        ("handled_updates", "chat_id"),
        ("join_attempts", "telegram_user_id"),
        ("audit_log", "subject_id"),
    }
    marie_id = _guardian(database_url, MARIE).id
    assert _busy_members(database_url) == {marie_id}
    petr_before = _where_found(database_url, *_needles(PETR))

    dry = roundtable("purge", "--dry-run")
    # Marie's only case is the old one; Petr is also a guardian of the recent case: he waits.
    assert dry.out.startswith(f"{old.code}\tclosed ")
    assert dry.out.splitlines()[0].endswith(
        "invite_messages 4, poll_messages 4, web_links 0, members 1"
    ), dry.out
    assert _where_found(database_url, *_needles(MARIE)) == marie_before  # changed nothing

    ran = roundtable("purge")
    assert (ran.code, ran.err) == (0, "")
    assert ran.out.splitlines()[0] == dry.out.splitlines()[0]
    assert _where_found(database_url, *_needles(MARIE)) == set()
    # Petr's row, and the polls and invitations of the recent case in his chat, stay.
    assert _where_found(database_url, *_needles(PETR)) == petr_before

    marie = _guardian(database_url, marie_id)
    # The row stays, for the statistics and the foreign keys, and names and reaches no one.
    assert (marie.display_name, marie.email, marie.active, marie.reachable) == (
        "guardian",
        None,
        False,
        False,
    )
    assert (marie.telegram_user_id, marie.chat_id) == (-marie_id, -marie_id)
    assert marie.deactivated_at is not None
    assert _busy_members(database_url) == set()  # her calendar's busy times too
    petr = _guardian(database_url, PETR)
    assert (petr.display_name, petr.active) == (PETR.name, True)
    # The audit log shows the neutral label where her name was.
    joined = [row for row in _csv(roundtable("audit").out) if row["action"] == "member.joined"]
    assert {row["actor_name"] for row in joined} >= {"guardian", PETR.name}
    assert MARIE.name not in roundtable("audit").out

    # Once the recent case is past retention too, Petr goes with it.
    async def later(database: Database) -> list[retention.PastRetention]:
        async with database.transaction() as session:
            return await retention.purge(
                session,
                CIPHER,
                privacy.Operator("dpo"),
                now=NOW + timedelta(days=6 * 365),
                years=5,
            )

    (purged,) = with_database(database_url, later)
    assert (purged.code, purged.counts["members"]) == (recent.code, 1)
    assert _where_found(database_url, *_needles(PETR)) == set()
    assert _guardian(database_url, petr.id).display_name == "guardian"


def _declined_referrals(url: str) -> tuple[Team, int, int]:
    """Two referrals the coordinator declined (with a reason): seven years ago, and last month."""

    async def build(database: Database) -> tuple[Team, int, int]:
        clock = FakeClock(_monday_morning(NOW - timedelta(days=7 * 365)))
        team = await _team(database, clock)
        declined = []
        for moment, marker in ((clock.now(), "OLD"), (NOW - timedelta(days=30), "RECENT")):
            clock.set(moment)
            referral_id = await _referral(database, clock, team, f"Dana {marker}", marker)
            async with database.transaction() as session:
                await referrals.decline(
                    session,
                    team.coordinator,
                    CIPHER,
                    referral_id,
                    f"Not for a conference {marker}",
                    now=clock.now(),
                )
            declined.append(referral_id)
        return team, declined[0], declined[1]

    return with_database(url, build)


def _referral_row(url: str, referral_id: int) -> Referral:
    async def read(database: Database) -> Referral:
        async with database.transaction() as session:
            return await session.get_one(Referral, referral_id)

    return with_database(url, read)


def test_the_operators_member_list_keeps_guardians_marked(
    roundtable: Callable[..., Ran], database_url: str
) -> None:
    """Admins do not see guardians; the operator does, marked, to act on a data-protection
    request (`members deactivate ID`), and nobody takes a family for staff."""
    _guardian_cases(database_url)
    marie = _guardian(database_url, MARIE)
    listed = roundtable("members", "list")
    lines = {line.split("\t")[1]: line.split("\t") for line in listed.out.splitlines()}
    assert lines[MARIE.name][2:] == ["Guardians", "participant", "active", "guardian"]
    assert {line[-1] for name, line in lines.items() if name not in (MARIE.name, PETR.name)} == {
        "staff"
    }
    as_json = json.loads(roundtable("members", "list", "--json").out)
    assert [entry["guardian"] for entry in as_json if entry["member_id"] == marie.id] == [True]
    assert roundtable("members", "deactivate", str(marie.id)).code == 0
    assert not _guardian(database_url, MARIE).active


def test_purge_anonymises_a_referral_declined_longer_ago_than_the_retention(
    roundtable: Callable[..., Ran], database_url: str
) -> None:
    team, old_id, recent_id = _declined_referrals(database_url)
    old_code = _referral_row(database_url, old_id).code
    before = _decrypted(database_url)
    assert _markers(before) == {"OLD": 4, "RECENT": 4, "OPEN": 0}

    dry = roundtable("purge", "--dry-run")
    listed, summary = dry.out.splitlines()
    assert listed.startswith(f"{old_code}\tdeclined ")
    assert listed.endswith("\treferrals 1, referral_notes 3")  # asked, answered, declined
    assert summary.startswith("Would purge 0 case(s) closed and 1 referral(s) declined before ")
    assert _decrypted(database_url) == before

    ran = roundtable("purge")
    assert (ran.code, ran.err) == (0, "")
    assert ran.out.splitlines()[0] == listed
    after = _decrypted(database_url)
    assert _markers(after) == {"OLD": 0, "RECENT": 4, "OPEN": 0}
    assert after[("referrals", old_id, "sealed")] == b"{}"
    old, recent = _referral_row(database_url, old_id), _referral_row(database_url, recent_id)
    assert old.purged_at is not None and old.message_refs == []
    # The code, status and dates stay, for the statistics.
    assert (old.code, old.status) == (old_code, ReferralStatus.DECLINED)
    assert old.decided_at is not None
    assert recent.purged_at is None

    purged = [e for e in _audit_entries(database_url) if e.action == "referral.purged"]
    assert [(e.actor_id, e.subject_type, e.subject_id, e.details) for e in purged] == [
        (
            None,
            "referral",
            str(old_id),
            {"referral": old_code, "wiped": {"referrals": 1, "referral_notes": 3}, **BY_CLI},
        )
    ]

    # The coordinator who opens it is told it is no longer kept, not shown an empty referral.
    async def coordinator_opens(database: Database) -> None:
        async with database.transaction() as session:
            actor = await members.find_actor(session, team.coordinator.chat_id)
            assert actor is not None
            await referrals.view(session, actor, CIPHER, old_id, now=datetime.now(UTC))

    with pytest.raises(referrals.NoLongerKept):
        with_database(database_url, coordinator_opens)

    again = roundtable("purge")
    assert again.out.startswith("Purged 0 case(s) closed and 0 referral(s) declined before ")
    assert _decrypted(database_url) == after


# A case purged before referrals had purged_at, and one not purged (schema 0007).
BEFORE_0008 = (
    "INSERT INTO districts (id, name, timezone, created_at, day_starts, day_ends) "
    "VALUES (1, 'Cheb', 'Europe/Prague', '2019-01-01 00:00:00', '08:00:00', '16:00:00')",
    "INSERT INTO institutions (id, district_id, name, kind, created_at) "
    "VALUES (1, 1, 'OSPOD Cheb', 'ospod', '2019-01-01 00:00:00')",
    "INSERT INTO members (id, telegram_user_id, chat_id, display_name, institution_id, role, "
    "locale, active, reachable, joined_at) "
    "VALUES (1, 1, 1, 'Person 1', 1, 'coordinator', 'cs', true, true, '2019-01-01 00:00:00')",
    *(
        "INSERT INTO referrals (id, code, district_id, referrer_id, institution_id, status, "
        "step, back_to_summary, sealed, message_refs, created_at, updated_at) "
        f"VALUES ({n}, 'R-2019-000{n}', 1, 1, 1, 'accepted', 'done', false, '', '[]', "
        "'2019-01-01 00:00:00', '2019-01-01 00:00:00')"
        for n in (1, 2)
    ),
    "INSERT INTO cases (id, code, district_id, referral_id, manager_id, status, opened_at, "
    "closed_at, purged_at) VALUES (1, 'PK-2019-0001', 1, 1, 1, 'closed', "
    "'2019-01-01 00:00:00', '2019-02-01 00:00:00', '2025-03-01 03:30:00')",
    "INSERT INTO cases (id, code, district_id, referral_id, manager_id, status, opened_at) "
    "VALUES (2, 'PK-2019-0002', 1, 2, 1, 'open', '2019-01-01 00:00:00')",
)


def test_the_migration_marks_the_referrals_of_cases_purged_before_it(tmp_path: Path) -> None:
    async def migrate_with_cases(database: Database) -> dict[int, datetime | None]:
        def to_0007(connection: Connection) -> None:
            config = migrate.alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0007")
            for statement in BEFORE_0008:
                connection.exec_driver_sql(statement)

        async with database.engine.begin() as connection:
            await connection.run_sync(to_0007)
        await migrate.upgrade(database)
        async with database.transaction() as session:
            return dict((await session.execute(select(Referral.id, Referral.purged_at))).all())

    purged_at = with_database(f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}", migrate_with_cases)
    assert purged_at == {1: datetime(2025, 3, 1, 3, 30, tzinfo=UTC), 2: None}


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

    with pytest.raises(referrals.NoLongerKept):
        with_database(database_url, coordinator_opens_the_referral)

    ran = roundtable("export", "--case", three.old.code)
    assert (ran.code, ran.err) == (0, "")
    assert "OLD" not in ran.out
    assert "Anička" not in ran.out
    exported = json.loads(ran.out)
    assert exported["referral"]["details"] == {}
    assert exported["case"]["purged_at"] is not None


def test_every_encrypted_column_of_a_case_is_wiped() -> None:
    # Dialog drafts and address confirmations: a person's, no case's.
    per_person = {("user_data", "data"), ("chat_data", "data"), ("email_confirmations", "code")}
    # A guest's personal link is deleted with the case, not wiped (test_purge_... counts it).
    per_person.add(("web_links", "token"))
    encrypted = {(model.__tablename__, column) for model, _, column in ENCRYPTED_COLUMNS}
    wiped = {
        (model.__tablename__, column)
        for model, values in retention.wiped(CIPHER).items()
        for column in values
    }
    assert encrypted - per_person <= wiped


def test_the_cutoff_is_the_same_day_years_ago() -> None:
    assert retention.retention_cutoff(datetime(2031, 3, 1, 9, tzinfo=UTC), 5) == datetime(
        2026, 3, 1, 9, tzinfo=UTC
    )
    assert retention.retention_cutoff(datetime(2028, 2, 29, tzinfo=UTC), 5) == datetime(
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
        (None, "case", str(lived.case_id), {"case": lived.code, **BY_CLI})
    ]
