"""What a referral's notifications show, read when the outbox sends them.

The triage plans them with each event, ids only (bot.services.referrals, `tell`); the text is
made at send time from what is true then: the referral's code, urgency and institution, who
decided and the case opened, and the typed reason or question, decrypted from its note. Never a
detail of the child.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.crypto import Cipher
from bot.core.models import (
    Institution,
    Referral,
    ReferralNote,
    ReferralStatus,
    Urgency,
)
from bot.services.referrals import OPEN_STATUSES, case_code, decided_by


@dataclass(frozen=True)
class Notice:
    referral_id: int
    code: str
    status: ReferralStatus
    urgency: Urgency
    danger: bool
    institution_name: str
    decided_by: str | None  # the coordinator who accepted or declined it
    case_code: str | None  # the case opened when it was accepted
    note: str | None  # the question or reason the notification is about

    @property
    def waiting(self) -> bool:
        """Still waiting for a decision: the coordinators' alert still makes sense."""
        return self.status in OPEN_STATUSES


async def notice(
    session: AsyncSession, cipher: Cipher, referral_id: int, note_id: int | None = None
) -> Notice | None:
    """The referral as a notification about it shows it (with the note `note_id`); None once it
    is gone or anonymised, when nothing is to be said about it any more."""
    row = await session.get(Referral, referral_id)
    if row is None or row.code is None or row.urgency is None or row.purged_at is not None:
        return None
    note = None
    if note_id is not None:
        body = await session.scalar(
            select(ReferralNote.body).where(
                ReferralNote.id == note_id, ReferralNote.referral_id == referral_id
            )
        )
        if body is None:
            return None
        note = cipher.decrypt_json(body)
    institution = await session.get_one(Institution, row.institution_id)
    return Notice(
        referral_id=row.id,
        code=row.code,
        status=row.status,
        urgency=row.urgency,
        danger=bool(row.danger),
        institution_name=institution.name,
        decided_by=await decided_by(session, row),
        case_code=await case_code(session, row.id),
        note=note,
    )
