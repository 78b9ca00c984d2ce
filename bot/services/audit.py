"""The audit log: one row for every view or change that matters to data protection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.models import AuditEntry
from bot.services.errors import PermissionDenied


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


def refusal(
    action: str,
    *,
    at: datetime,
    actor_id: int,
    subject_type: str,
    subject_id: object = None,
    **details: Any,
) -> PermissionDenied:
    """The refusal to raise when an actor may not do `action`; its "<action>.refused" entry is
    written even though the transaction rolls back."""
    return PermissionDenied(
        action,
        audit=entry(
            at=at,
            actor_id=actor_id,
            action=f"{action}.refused",
            subject_type=subject_type,
            subject_id=subject_id,
            **details,
        ),
    )
