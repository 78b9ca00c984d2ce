"""The audit log: one row for every view or change that matters to data protection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import AuditEntry


def entry(
    *,
    at: datetime,
    actor_id: int | None,
    action: str,
    subject_type: str,
    subject_id: object = None,
    **details: Any,
) -> AuditEntry:
    """One audit entry. Details are identifiers and codes only, never a child's data."""
    return AuditEntry(
        at=at,
        actor_id=actor_id,
        action=action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        details=details,
    )


async def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor_id: int | None,
    action: str,
    subject_type: str,
    subject_id: object = None,
    **details: Any,
) -> None:
    """Write one audit entry in the session's transaction."""
    session.add(
        entry(
            at=at,
            actor_id=actor_id,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            **details,
        )
    )
