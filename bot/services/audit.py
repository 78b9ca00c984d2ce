"""The audit log: one row for every view or change that matters to data protection."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import models
from bot.services.errors import PermissionDenied


class Acting(Protocol):
    """Whoever acts through the bot (the services' Actor): their member id is written."""

    @property
    def member_id(self) -> int: ...


# The rows an entry is about, and what each is called as its subject.
Subject = (
    models.Case
    | models.Conference
    | models.District
    | models.Institution
    | models.Invitation
    | models.InviteCode
    | models.Member
    | models.Referral
    | models.Task
)
SUBJECT_TYPES: dict[type[Subject], str] = {
    models.Case: "case",
    models.Conference: "conference",
    models.District: "district",
    models.Institution: "institution",
    models.Invitation: "invitation",
    models.InviteCode: "invite",
    models.Member: "member",
    models.Referral: "referral",
    models.Task: "task",
}


def entry(
    *,
    at: datetime,
    actor_id: int | None,
    action: str,
    subject_type: str,
    subject_id: object = None,
    **details: Any,
) -> models.AuditEntry:
    """One audit entry. Details are identifiers and codes only, never a child's data."""
    return models.AuditEntry(
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


async def on_self(
    session: AsyncSession, member_id: int, action: str, /, *, at: datetime, **details: Any
) -> None:
    """`record` for what a member did about themself (their busy times, their pledge)."""
    await record(
        session,
        at=at,
        actor_id=member_id,
        action=action,
        subject_type="member",
        subject_id=member_id,
        **details,
    )


async def acted(
    session: AsyncSession,
    actor: Acting | None,
    action: str,
    subject: Subject,
    /,
    *,
    at: datetime,
    **details: Any,
) -> None:
    """`record` for the common case: what a member did through the bot (None: the operator at
    the command line, or the bot on its own), and to which row."""
    await record(
        session,
        at=at,
        actor_id=None if actor is None else actor.member_id,
        action=action,
        subject_type=SUBJECT_TYPES[type(subject)],
        subject_id=subject.id,
        **details,
    )


def refused(
    actor: Acting,
    action: str,
    subject_type: str,
    subject_id: object = None,
    /,
    *,
    at: datetime,
    **details: Any,
) -> PermissionDenied:
    """The refusal to raise when a member may not do `action` to the subject; its
    "<action>.refused" entry is written even though the transaction rolls back."""
    return PermissionDenied(
        action,
        audit=entry(
            at=at,
            actor_id=actor.member_id,
            action=f"{action}.refused",
            subject_type=subject_type,
            subject_id=subject_id,
            **details,
        ),
    )
