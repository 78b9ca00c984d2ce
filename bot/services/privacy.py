"""The data protection officer's reading tools: the audit log, and all that is held about one
case (a subject access request); anonymising what is past retention is bot.services.retention.
These run from the command line, with no member behind them: their audit entries name the
operating system account that ran them instead (`Operator`).

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

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.crypto import Cipher
from bot.core.method_record import MethodSection, method_section
from bot.core.models import (
    AuditEntry,
    Case,
    Conference,
    District,
    Institution,
    Invitation,
    Member,
    RecordComment,
    Referral,
    ReferralNote,
    Task,
    TaskNote,
)
from bot.services import audit
from bot.services.cases import find_case
from bot.services.invitation_views import reason_of

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
    await audit.acted(
        session, None, "case.exported", case, at=now, case=case.code, **operator.details()
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
                "method": _method(await method_section(session, cipher, conference)),
                "invitations": [
                    {
                        "id": invitation.id,
                        "kind": invitation.kind.value,
                        "institution": institution,
                        "guardian": invitation.number or None,
                        # A guest invited by e-mail: a named person's name, and the address.
                        "guest": invitation.guest_name,
                        "email": invitation.email,
                        "member": await person(invitation.member_id),
                        "required": invitation.required,
                        "answered_poll_at": _iso(invitation.answered_at),
                        "rsvp": invitation.rsvp.value,
                        "rsvp_by": await person(invitation.rsvp_by_id),
                        "rsvp_at": _iso(invitation.rsvp_at),
                        "decline_reason": reason_of(invitation, cipher),
                        "attended": invitation.attended,
                        "attendee": await person(invitation.attendee_id),
                        "record_comments": [
                            {
                                "by": await person(comment.member_id),
                                "at": _iso(comment.at),
                                "late": comment.late,
                                "text": _text(cipher, comment.text),
                            }
                            for comment in await session.scalars(
                                select(RecordComment)
                                .where(RecordComment.invitation_id == invitation.id)
                                .order_by(RecordComment.id)
                            )
                        ],
                    }
                    for invitation, institution in invitations.all()
                ],
            }
        )
    return exported


def _method(section: MethodSection) -> dict[str, Any]:
    """The conference's kind and goal and the child's voice (bot.services.method)."""
    return {
        "kind": section.kind.value,
        "goal": section.goal or None,
        "child_part": section.child_part.value if section.child_part else None,
        "support": section.support or None,
        "reason": section.reason or None,
        "child_view": section.child_view or None,
        "child_present": section.child_present,
    }


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
