"""Rows the tests write straight into the database, as the services would leave them.

A case with no referral behind it is `bench.world.open_case` (the benchmarks' seeds write the
same row); a sent referral and the case opened from one, as triage leaves it, are here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bench import world
from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.db import Database
from bot.core.models import (
    Case,
    Conference,
    Institution,
    InstitutionKind,
    Invitation,
    InvitationKind,
    Member,
    Referral,
    ReferralStatus,
    Role,
    Urgency,
)
from bot.services import members
from bot.services.referral_sweep import DRAFT_EXPIRED


async def sent_referral(  # noqa: PLR0917 - a row's columns
    session: AsyncSession,
    code: str,
    district_id: int,
    referrer: Member,
    status: ReferralStatus,
    sealed: bytes,
    *,
    sent: datetime,
    **more: Any,
) -> Referral:
    """A routine referral (no danger) from the referrer's institution, at the summary step,
    sent and its coordinators alerted at `sent`; `more` sets other columns (the guardians'
    consent, the decision)."""
    referral = Referral(
        code=code,
        district_id=district_id,
        referrer_id=referrer.id,
        institution_id=referrer.institution_id,
        status=status,
        step="summary",
        danger=False,
        urgency=Urgency.ROUTINE,
        sealed=sealed,
        created_at=sent,
        updated_at=sent,
        submitted_at=sent,
        alerted_at=sent,
        **more,
    )
    session.add(referral)
    await session.flush()
    return referral


async def case_from(
    session: AsyncSession, referral: Referral, code: str, manager_id: int, *, now: datetime
) -> Case:
    """The open case of an accepted referral, in the referral's district, opened at `now`."""
    case = await world.open_case(session, code, referral.district_id, manager_id, now=now)
    case.referral_id = referral.id
    await session.flush()
    return case


async def invited_schools(
    session: AsyncSession,
    conference: Conference,
    names: Sequence[str],
    *,
    now: datetime,
    **more: Any,
) -> None:
    """Schools of the conference's district, each invited to it as optional (a conference of
    many institutions, as the long lists' tests need); `more` sets the invitations' columns."""
    for name in names:
        school = Institution(
            district_id=conference.district_id,
            name=name,
            kind=InstitutionKind.SCHOOL,
            created_at=now,
        )
        session.add(school)
        await session.flush()
        session.add(optional_invitation(conference, school.id, **more))


def optional_invitation(conference: Conference, institution_id: int, **more: Any) -> Invitation:
    """The institution's invitation to the conference, as optional; `more` sets its columns."""
    return Invitation(
        conference_id=conference.id,
        kind=InvitationKind.INSTITUTION,
        institution_id=institution_id,
        required=False,
        **more,
    )


def draft_expired_notice(key: str, member_id: int, now: datetime, **changes: Any) -> outbox.Planned:
    """The member's notice that their referral draft, started 14 days before, was deleted, due
    `now` (a row planned by the sweep, or by another process); `changes` set other fields."""
    notice = outbox.Planned(
        key=key,
        kind=DRAFT_EXPIRED,
        subject=f"member:{member_id}",
        member_id=member_id,
        due_at=now,
        payload={"started_at": (now - timedelta(days=14)).isoformat()},
    )
    return replace(notice, **changes)


async def participant_id(
    database: Database, clock: FakeClock, kind: InstitutionKind = InstitutionKind.POLICE
) -> int:
    """Petr (Telegram and chat id 77), a participant of Policie Cheb (an institution of `kind`)
    in the district without a name, reading English, joined now: his member id."""
    now = clock.now()
    async with database.transaction() as session:
        district = await members.ensure_district(session, None, now=now)
        place = await members.ensure_institution(session, district, "Policie Cheb", kind, now=now)
        member = world.member(77, "Petr", place.id, Role.PARTICIPANT, locale="en", now=now)
        session.add(member)
        await session.flush()
        return member.id
