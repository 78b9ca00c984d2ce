"""The data protection officer's tools: the audit log.

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

from bot.models import (
    AuditEntry,
    Case,
    Conference,
    Institution,
    Invitation,
    Member,
    Task,
)
from bot.services.errors import NotFound

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
            actor_name=actor_name,
            actor_institution=actor_institution,
            action=entry.action,
            subject_type=entry.subject_type,
            subject_id=entry.subject_id,
            case=code,
            details=entry.details,
        )
