"""The data protection officer's tools: the audit log, anonymising old closed cases and
declined referrals, and all that is held about one case (a subject access request). These run
from the command line, with no member behind them: their audit entries name the operating
system account that ran them instead (`Operator`).

Which case an audit entry belongs to: the case its details name ("case"), else the case of its
subject: a case, or that case's referral, conferences, invitations or tasks. Entries about
members, institutions, districts and invite codes, and about referrals that never became a case,
belong to none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.crypto import Cipher
from bot.core.models import (
    AuditEntry,
    Base,
    BusyTime,
    Case,
    CaseStatus,
    Conference,
    District,
    HandledUpdate,
    Institution,
    InstitutionKind,
    Invitation,
    InviteMessage,
    JoinAttempt,
    Member,
    OutboxRow,
    PollMessage,
    Referral,
    ReferralNote,
    ReferralStatus,
    Task,
    TaskNote,
)
from bot.services import audit, members
from bot.services.errors import NotFound
from bot.services.invitations import reason_of

AUDIT_COLUMNS = (
    "at",
    "actor_id",
    "actor_name",
    "actor_institution",
    "action",
    "subject_type",
    "subject_id",
    "case",
    "details",
)
STREAM_BATCH = 500


@dataclass(frozen=True)
class AuditLine:
    """One audit entry as the data protection officer reads it."""

    at: datetime
    actor_id: int | None
    actor_name: str | None
    actor_institution: str | None
    action: str
    subject_type: str
    subject_id: str | None
    case: str | None
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The entry in AUDIT_COLUMNS order, JSON-ready (the moment in ISO 8601, UTC)."""
        return {
            "at": self.at.isoformat(),
            "actor_id": self.actor_id,
            "actor_name": self.actor_name,
            "actor_institution": self.actor_institution,
            "action": self.action,
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "case": self.case,
            "details": self.details,
        }


@dataclass(frozen=True)
class Operator:
    """Who ran a command: the operating system account, and under sudo the account that
    called sudo. Accounts only, never free text: the audit log is never purged, so nothing
    typed into it could name a child."""

    account: str
    sudo_from: str | None = None

    def details(self) -> dict[str, str]:
        """How an audit entry names them."""
        named = {"via": "cli", "os_user": self.account}
        if self.sudo_from:
            named["sudo_user"] = self.sudo_from
        return named


@dataclass(frozen=True)
class PastRetention:
    """A closed case or a declined referral past retention, and how many of its rows hold
    something to wipe (or delete, or, `members`, guardians to anonymise)."""

    code: str
    ended: str  # "closed" (a case) or "declined" (a referral that never became one)
    ended_at: datetime
    counts: dict[str, int]


async def find_case(session: AsyncSession, code: str) -> Case:
    """A case by its code (in any letter case); an unknown code is NotFound."""
    case = await session.scalar(select(Case).where(Case.code == code.strip().upper()))
    if case is None:
        raise NotFound(f"no case with the code {code.strip()}")
    return case


# The audit log.


@dataclass(frozen=True)
class _CaseCodes:
    """Case codes by the ids of what belongs to a case, per audit subject type."""

    by_subject: dict[str, dict[int, str]]

    def of(self, entry: AuditEntry) -> str | None:
        named = entry.details.get("case")
        if isinstance(named, str):
            return named
        codes = self.by_subject.get(entry.subject_type)
        if codes is None or entry.subject_id is None or not entry.subject_id.isdecimal():
            return None
        return codes.get(int(entry.subject_id))


async def _case_codes(session: AsyncSession, case_id: int | None) -> _CaseCodes:
    """What belongs to which case: every case, or only the given one."""

    async def pairs(query: Any) -> dict[int, str]:
        if case_id is not None:
            query = query.where(Case.id == case_id)
        return {key: code for key, code in await session.execute(query) if key is not None}

    return _CaseCodes(
        {
            "case": await pairs(select(Case.id, Case.code)),
            "referral": await pairs(select(Case.referral_id, Case.code)),
            "conference": await pairs(
                select(Conference.id, Case.code).join(Case, Conference.case_id == Case.id)
            ),
            "invitation": await pairs(
                select(Invitation.id, Case.code)
                .join(Conference, Invitation.conference_id == Conference.id)
                .join(Case, Conference.case_id == Case.id)
            ),
            "task": await pairs(select(Task.id, Case.code).join(Case, Task.case_id == Case.id)),
        }
    )


async def record_reading(
    session: AsyncSession,
    operator: Operator,
    *,
    case_code: str | None,
    since: date | None,
    now: datetime,
) -> None:
    """Reading the audit log is itself audited (`audit.read`, with what was asked for): it
    shows who did what, when. An unknown case is refused, and nothing recorded."""
    case = None if case_code is None else await find_case(session, case_code)
    asked: dict[str, Any] = {} if case is None else {"case": case.code}
    if since is not None:
        asked["since"] = since.isoformat()
    await audit.record(
        session,
        at=now,
        actor_id=None,
        action="audit.read",
        subject_type="audit_log",
        **asked,
        **operator.details(),
    )


def day_start(day: date) -> datetime:
    """Midnight UTC of a day: where `--since` starts, whatever the district's zone."""
    return datetime.combine(day, time(0), tzinfo=UTC)


async def audit_log(
    session: AsyncSession, *, case_code: str | None = None, since: date | None = None
) -> AsyncIterator[AuditLine]:
    """The audit log, oldest first: all of it, or a case's entries, or those from a day on.

    An unknown case is refused here, before any line. The lines are streamed in batches, so a
    long log never sits in memory. Nothing is decrypted: details hold identifiers and codes
    only."""
    case = None if case_code is None else await find_case(session, case_code)
    codes = await _case_codes(session, None if case is None else case.id)
    return _lines(session, codes, None if case is None else case.code, since)


async def _lines(
    session: AsyncSession, codes: _CaseCodes, case_code: str | None, since: date | None
) -> AsyncIterator[AuditLine]:
    query = (
        select(AuditEntry, Member.display_name, Institution.name)
        .outerjoin(Member, AuditEntry.actor_id == Member.id)
        .outerjoin(Institution, Member.institution_id == Institution.id)
        .order_by(AuditEntry.at, AuditEntry.id)
        .execution_options(yield_per=STREAM_BATCH)
    )
    if since is not None:
        query = query.where(AuditEntry.at >= day_start(since))
    rows = await session.stream(query)
    async for entry, actor_name, actor_institution in rows:
        code = codes.of(entry)
        if case_code is not None and code != case_code:
            continue
        yield AuditLine(
            at=entry.at,
            actor_id=entry.actor_id,
            # No member ran these commands: the account that did stands in the actor's column.
            actor_name=actor_name or entry.details.get("os_user"),
            actor_institution=actor_institution,
            action=entry.action,
            subject_type=entry.subject_type,
            subject_id=entry.subject_id,
            case=code,
            details=entry.details,
        )


# Retention: anonymising closed cases and declined referrals.


def retention_cutoff(now: datetime, years: int) -> datetime:
    """Cases closed (and referrals declined) before this moment are past retention: the same
    day `years` years ago (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def wiped(cipher: Cipher) -> dict[type[Base], dict[str, Any]]:
    """What anonymising leaves in a case's rows: every encrypted column NULL where the schema
    allows it, else an encrypted empty value of the shape its readers expect; the free text
    that could name someone (the place, typed by the coordinator) empty; the referrer's
    message ids (of messages that carried the child's data) and the coordinator's poll board
    gone. Codes, dates, statuses, answers and attendance stay, for the statistics."""
    return {
        Referral: {"sealed": cipher.encrypt_json({}), "message_refs": []},
        ReferralNote: {"body": cipher.encrypt_json("")},
        Conference: {
            "summary": None,
            "place": "",
            "board_chat_id": None,
            "board_message_id": None,
        },
        Invitation: {"decline_reason": None},
        Task: {"title": cipher.encrypt(b""), "party_name": None},
        TaskNote: {"body": cipher.encrypt(b"")},
    }


def _referral_rows(referral_id: int | None) -> dict[type[Base], Any]:
    """Which rows of each table belong to a referral (a WHERE clause)."""
    return {
        Referral: Referral.id == referral_id,
        ReferralNote: ReferralNote.referral_id == referral_id,
    }


def _invitations_of(*cases: Any) -> Any:
    """The ids of the invitations to the conferences of the cases that meet the conditions."""
    return (
        select(Invitation.id)
        .join(Conference, Invitation.conference_id == Conference.id)
        .join(Case, Conference.case_id == Case.id)
        .where(*cases)
    )


def _rows_of(case: Case) -> dict[type[Base], Any]:
    """Which rows of each table belong to the case (a WHERE clause)."""
    tasks = select(Task.id).where(Task.case_id == case.id)
    return {
        **_referral_rows(case.referral_id),
        Conference: Conference.case_id == case.id,
        Invitation: Invitation.id.in_(_invitations_of(Case.id == case.id)),
        Task: Task.case_id == case.id,
        TaskNote: TaskNote.task_id.in_(tasks),
    }


def _dropped_of(case: Case) -> dict[type[Base], Any]:
    """The case's rows that only pointed into people's chats (the calendar invitations and
    polls sent, with the answers not yet sent): deleted, not wiped."""
    invitations = _invitations_of(Case.id == case.id)
    return {
        InviteMessage: InviteMessage.invitation_id.in_(invitations),
        PollMessage: PollMessage.invitation_id.in_(invitations),
    }


# Who answered for, accepted, was handed or attended an invitation: the people it links.
_INVITED = (
    Invitation.member_id,
    Invitation.answered_by_id,
    Invitation.rsvp_by_id,
    Invitation.delegate_id,
    Invitation.attendee_id,
)
GUARDIAN_LABEL = "guardian"


async def _people_invited(session: AsyncSession, invitations: Any) -> set[int]:
    """The members the invitations link (a guardian who joins by a link becomes its member)."""
    found: set[int] = set()
    for column in _INVITED:
        query = select(column).where(Invitation.id.in_(invitations))
        found |= {member_id for member_id in await session.scalars(query) if member_id}
    return found


async def _guardians_to_forget(session: AsyncSession, case: Case) -> list[Member]:
    """The guardians who joined by a link to the case's conferences, not yet anonymised, whose
    last case not yet purged this is (one linked to another such case waits for that one)."""
    mine = await _people_invited(session, _invitations_of(Case.id == case.id))
    others = await _people_invited(
        session, _invitations_of(Case.id != case.id, Case.purged_at.is_(None))
    )
    query = (
        select(Member)
        .join(Institution, Member.institution_id == Institution.id)
        .where(
            Member.id.in_(mine - others),
            Institution.kind == InstitutionKind.GUARDIANS,
            Member.telegram_user_id > 0,  # an anonymised one has a negative one
        )
        .order_by(Member.id)
    )
    return list(await session.scalars(query))


async def _forget(session: AsyncSession, guardian: Member, *, now: datetime) -> None:
    """The guardian's row stays (statistics and foreign keys hold), with nothing that names or
    reaches the person: their name becomes GUARDIAN_LABEL, the e-mail goes, and their Telegram
    user and chat id become minus the row's id everywhere, the audit log included (Telegram's
    user ids are positive, so it can never match anyone, and the person joining again is a new
    member). Their dialog state, busy times and join attempts are deleted."""
    pseudonym = -guardian.id
    await members.forget_dialog_state(session, guardian)
    for query in (
        delete(HandledUpdate).where(HandledUpdate.chat_id == guardian.chat_id),
        delete(JoinAttempt).where(JoinAttempt.telegram_user_id == guardian.telegram_user_id),
        delete(BusyTime).where(BusyTime.member_id == guardian.id),
    ):
        await session.execute(query)
    for model in (OutboxRow, InviteMessage, PollMessage):
        await session.execute(
            update(model).where(model.member_id == guardian.id).values(chat_id=pseudonym)
        )
    # A button they pressed as a leaver was refused and audited under their Telegram id.
    await session.execute(
        update(AuditEntry)
        .where(
            AuditEntry.subject_type == "telegram_user",
            AuditEntry.subject_id == str(guardian.telegram_user_id),
        )
        .values(subject_id=str(pseudonym))
    )
    guardian.display_name = GUARDIAN_LABEL
    guardian.email = None
    guardian.telegram_user_id = pseudonym
    guardian.chat_id = pseudonym
    guardian.active = False
    guardian.reachable = False
    guardian.deactivated_at = guardian.deactivated_at or now


async def _count(session: AsyncSession, where: dict[type[Base], Any]) -> dict[str, int]:
    counts = {}
    for model, condition in where.items():
        query = select(func.count()).select_from(model).where(condition)
        counts[model.__tablename__] = int(await session.scalar(query) or 0)
    return counts


async def _counts(session: AsyncSession, case: Case) -> dict[str, int]:
    """Rows of the case that hold something to wipe or delete, per table (an invitation only
    when it carries a reason for declining), and the guardians to anonymise."""
    where = _rows_of(case)
    where[Invitation] = where[Invitation] & Invitation.decline_reason.is_not(None)
    counts = await _count(session, {**where, **_dropped_of(case)})
    counts[Member.__tablename__] = len(await _guardians_to_forget(session, case))
    return counts


def _ended_before(model: type[Case | Referral], ended: Any, cutoff: datetime, kind: Any) -> Any:
    """The model's rows of the kind that ended (`ended`) before the cutoff, not yet purged."""
    return (
        select(model)
        .where(kind, ended < cutoff, model.purged_at.is_(None))
        .order_by(ended, model.code)
    )


def _cases_past_retention(now: datetime, years: int) -> Any:
    cutoff = retention_cutoff(now, years)
    return _ended_before(Case, Case.closed_at, cutoff, Case.status == CaseStatus.CLOSED)


def _declined_past_retention(now: datetime, years: int) -> Any:
    """Referrals declined before the cutoff: they never became a case, so nothing else would
    ever purge them."""
    cutoff = retention_cutoff(now, years)
    declined = Referral.status == ReferralStatus.DECLINED
    return _ended_before(Referral, Referral.decided_at, cutoff, declined)


def _declined(referral: Referral, counts: dict[str, int]) -> PastRetention:
    assert referral.code is not None and referral.decided_at is not None
    return PastRetention(referral.code, "declined", referral.decided_at, counts)


def _closed(case: Case, counts: dict[str, int]) -> PastRetention:
    assert case.closed_at is not None
    return PastRetention(case.code, "closed", case.closed_at, counts)


async def purgeable(session: AsyncSession, *, now: datetime, years: int) -> list[PastRetention]:
    """The closed cases, then the declined referrals, `purge` would anonymise now; changes
    nothing."""
    found = [
        _closed(case, await _counts(session, case))
        for case in await session.scalars(_cases_past_retention(now, years))
    ]
    for referral in await session.scalars(_declined_past_retention(now, years)):
        found.append(_declined(referral, await _count(session, _referral_rows(referral.id))))
    return found


async def purge(
    session: AsyncSession, cipher: Cipher, operator: Operator, *, now: datetime, years: int
) -> list[PastRetention]:
    """Anonymise every closed case past retention (see `wiped`; the calendar invitations and
    polls sent are deleted, and its guardians anonymised when it was their last case) and
    every referral declined before the cutoff, mark each purged, with a `case.purged` or
    `referral.purged` audit entry naming the operator. Nothing is purged twice."""
    purged = []
    values = wiped(cipher)
    # Locked, so two purges at once cannot both take a case (PostgreSQL; SQLite's writers
    # take turns anyway).
    for case in list(await session.scalars(_cases_past_retention(now, years).with_for_update())):
        counts = await _counts(session, case)
        await _wipe(session, _rows_of(case), values)
        for model, condition in _dropped_of(case).items():
            await session.execute(delete(model).where(condition))
        for guardian in await _guardians_to_forget(session, case):
            await _forget(session, guardian, now=now)
        await session.execute(
            update(Referral).where(Referral.id == case.referral_id).values(purged_at=now)
        )
        case.purged_at = now
        purged.append(_closed(case, counts))
        await _audit_purge(session, operator, "case", case.id, done=purged[-1], now=now)
    declined = _declined_past_retention(now, years).with_for_update()
    for referral in list(await session.scalars(declined)):
        where = _referral_rows(referral.id)
        counts = await _count(session, where)
        await _wipe(session, where, values)
        referral.purged_at = now
        purged.append(_declined(referral, counts))
        await _audit_purge(session, operator, "referral", referral.id, done=purged[-1], now=now)
    return purged


async def _wipe(
    session: AsyncSession, where: dict[type[Base], Any], values: dict[type[Base], dict[str, Any]]
) -> None:
    """The rows that `where` names, per table, set to what `wiped` leaves in them."""
    for model, condition in where.items():
        await session.execute(update(model).where(condition).values(**values[model]))


async def _audit_purge(
    session: AsyncSession,
    operator: Operator,
    subject_type: str,
    subject_id: int,
    *,
    done: PastRetention,
    now: datetime,
) -> None:
    await audit.record(
        session,
        at=now,
        actor_id=None,
        action=f"{subject_type}.purged",
        subject_type=subject_type,
        subject_id=subject_id,
        **{subject_type: done.code},
        wiped=done.counts,
        **operator.details(),
    )


# A subject access request: everything held about a case.


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def _text(cipher: Cipher, token: bytes | None) -> str | None:
    """A column encrypted as plain UTF-8 text (summaries, tasks and their notes)."""
    return None if token is None else cipher.decrypt(token).decode()


class _People:
    """Members as they appear in an export: id, name and institution, each looked up once."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._known: dict[int, dict[str, Any]] = {}

    async def __call__(self, member_id: int | None) -> dict[str, Any] | None:
        if member_id is None:
            return None
        if member_id not in self._known:
            member = await self._session.get_one(Member, member_id)
            institution = await self._session.get_one(Institution, member.institution_id)
            self._known[member_id] = {
                "member_id": member.id,
                "name": member.display_name,
                "institution": institution.name,
            }
        return self._known[member_id]


async def export_case(
    session: AsyncSession, cipher: Cipher, code: str, operator: Operator, *, now: datetime
) -> dict[str, Any]:
    """The case, its referral with the child's details (decrypted), its conferences with the
    invitations and attendance, its tasks with their notes, and its audit entries. This is an
    explicit request, so it is audited (`case.exported`, naming the operator, also in the
    export)."""
    case = await find_case(session, code)
    await audit.record(
        session,
        at=now,
        actor_id=None,
        action="case.exported",
        subject_type="case",
        subject_id=case.id,
        case=case.code,
        **operator.details(),
    )
    person = _People(session)
    district = await session.get_one(District, case.district_id)
    return {
        "case": {
            "code": case.code,
            "district": district.name,
            "status": case.status.value,
            "manager": await person(case.manager_id),
            "opened_at": _iso(case.opened_at),
            "closed_at": _iso(case.closed_at),
            "outcome": case.outcome,
            "purged_at": _iso(case.purged_at),
        },
        "referral": await _referral(session, cipher, person, case.referral_id),
        "conferences": await _conferences(session, cipher, person, case.id),
        "tasks": await _tasks(session, cipher, person, case.id),
        "audit": [line.as_dict() async for line in await audit_log(session, case_code=case.code)],
    }


async def _referral(
    session: AsyncSession, cipher: Cipher, person: _People, referral_id: int | None
) -> dict[str, Any] | None:
    if referral_id is None:
        return None
    referral = await session.get_one(Referral, referral_id)
    institution = await session.get_one(Institution, referral.institution_id)
    notes = list(
        await session.scalars(
            select(ReferralNote)
            .where(ReferralNote.referral_id == referral.id)
            .order_by(ReferralNote.at, ReferralNote.id)
        )
    )
    return {
        "code": referral.code,
        "status": referral.status.value,
        "referrer": await person(referral.referrer_id),
        "institution": institution.name,
        "danger": referral.danger,
        "urgency": None if referral.urgency is None else referral.urgency.value,
        "guardians_informed": referral.guardians_informed,
        "guardians_consent": (
            None if referral.guardians_consent is None else referral.guardians_consent.value
        ),
        "created_at": _iso(referral.created_at),
        "submitted_at": _iso(referral.submitted_at),
        "decided_at": _iso(referral.decided_at),
        "decided_by": await person(referral.decided_by_id),
        "details": cipher.decrypt_json(referral.sealed),
        "notes": [
            {
                "kind": note.kind.value,
                "at": _iso(note.at),
                "author": await person(note.author_id),
                "text": cipher.decrypt_json(note.body),
            }
            for note in notes
        ],
    }


async def _conferences(
    session: AsyncSession, cipher: Cipher, person: _People, case_id: int
) -> list[dict[str, Any]]:
    conferences = list(
        await session.scalars(
            select(Conference).where(Conference.case_id == case_id).order_by(Conference.id)
        )
    )
    exported = []
    for conference in conferences:
        invitations = await session.execute(
            select(Invitation, Institution.name)
            .outerjoin(Institution, Invitation.institution_id == Institution.id)
            .where(Invitation.conference_id == conference.id)
            .order_by(Invitation.id)
        )
        exported.append(
            {
                "id": conference.id,
                "status": conference.status.value,
                "review_of": conference.review_of_id,
                "coordinator": await person(conference.coordinator_id),
                "place": conference.place,
                "duration_minutes": conference.duration_minutes,
                "created_at": _iso(conference.created_at),
                "poll_window": [_iso(conference.window_first), _iso(conference.window_last)],
                "poll_deadline": _iso(conference.deadline),
                "decided_at": _iso(conference.decided_at),
                "starts_at": _iso(conference.starts_at),
                "cancelled_at": _iso(conference.cancelled_at),
                "recorded_at": _iso(conference.recorded_at),
                "summary": _text(cipher, conference.summary),
                "review_by": _iso(conference.review_by),
                "invitations": [
                    {
                        "id": invitation.id,
                        "kind": invitation.kind.value,
                        "institution": institution,
                        "guardian": invitation.number or None,
                        "member": await person(invitation.member_id),
                        "required": invitation.required,
                        "answered_poll_at": _iso(invitation.answered_at),
                        "rsvp": invitation.rsvp.value,
                        "rsvp_by": await person(invitation.rsvp_by_id),
                        "rsvp_at": _iso(invitation.rsvp_at),
                        "decline_reason": reason_of(invitation, cipher),
                        "attended": invitation.attended,
                        "attendee": await person(invitation.attendee_id),
                    }
                    for invitation, institution in invitations.all()
                ],
            }
        )
    return exported


async def _tasks(
    session: AsyncSession, cipher: Cipher, person: _People, case_id: int
) -> list[dict[str, Any]]:
    tasks = list(
        await session.scalars(select(Task).where(Task.case_id == case_id).order_by(Task.id))
    )
    exported = []
    for task in tasks:
        notes = list(
            await session.scalars(
                select(TaskNote)
                .where(TaskNote.task_id == task.id)
                .order_by(TaskNote.created_at, TaskNote.id)
            )
        )
        exported.append(
            {
                "id": task.id,
                "conference_id": task.conference_id,
                "title": _text(cipher, task.title),
                "party": task.party.value,
                "party_name": _text(cipher, task.party_name),
                "owner": await person(task.owner_id),
                "due_on": _iso(task.due_on),
                "asked_due_on": _iso(task.asked_due_on),
                "status": task.status.value,
                "created_at": _iso(task.created_at),
                "issued_at": _iso(task.issued_at),
                "done_at": _iso(task.done_at),
                "notes": [
                    {
                        "kind": note.kind,
                        "at": _iso(note.created_at),
                        "author": await person(note.member_id),
                        "text": _text(cipher, note.body),
                    }
                    for note in notes
                ],
            }
        )
    return exported
