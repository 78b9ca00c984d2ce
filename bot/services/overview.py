"""The coordinator's overview across cases: their agenda of conferences for the weeks ahead,
and the Monday digest of what waits in their district."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.models import (
    Case,
    Conference,
    ConferenceStatus,
    District,
    Institution,
    Member,
    Referral,
    ReferralStatus,
    Role,
    Task,
    TaskStatus,
)
from bot.services.board import ACTIVE, today_in, zone_of
from bot.services.members import Actor, require_coordinator
from bot.services.tasks import task_items
from scheduling import policy

DIGEST = "digest.weekly"


@dataclass(frozen=True)
class AgendaItem:
    case_code: str
    starts_at: datetime
    place: str


@dataclass(frozen=True)
class DigestItem:
    id: int  # referral, conference or task id
    code: str
    when: datetime | None
    title: str = ""


@dataclass(frozen=True)
class Digest:
    referrals: list[DigestItem]
    polls: list[DigestItem]
    this_week: list[DigestItem]
    next_week: list[DigestItem]
    overdue: list[DigestItem]
    due_this_week: list[DigestItem]
    to_record: list[DigestItem]

    def __bool__(self) -> bool:
        return any(
            (
                self.referrals,
                self.polls,
                self.this_week,
                self.next_week,
                self.overdue,
                self.due_this_week,
                self.to_record,
            )
        )


async def agenda(
    session: AsyncSession, actor: Actor, *, now: datetime, weeks: int = 4
) -> list[AgendaItem]:
    """The coordinator's conferences from today for the next weeks."""
    require_coordinator(
        actor, now=now, action="agenda", subject_type="member", subject=actor.member_id
    )
    district = await session.get_one(District, actor.district_id)
    start = datetime.combine(today_in(district, now), datetime.min.time(), tzinfo=zone_of(district))
    rows = await session.execute(
        select(Conference, Case.code)
        .join(Case, Conference.case_id == Case.id)
        .where(
            Conference.coordinator_id == actor.member_id,
            Conference.status.in_([ConferenceStatus.SCHEDULED, ConferenceStatus.HELD]),
            Conference.starts_at >= start.astimezone(UTC),
            Conference.starts_at < (start + timedelta(weeks=weeks)).astimezone(UTC),
        )
        .order_by(Conference.starts_at)
    )
    return [
        AgendaItem(code, c.starts_at, c.place)  # type: ignore[arg-type]
        for c, code in rows
    ]


async def digest(
    session: AsyncSession, cipher: Cipher, member_id: int, *, now: datetime
) -> Digest | None:
    """The Monday digest of one coordinator: what waits in their district this week."""
    member = await session.get(Member, member_id)
    if member is None or not member.active or member.role is not Role.COORDINATOR:
        return None
    institution = await session.get_one(Institution, member.institution_id)
    district = await session.get_one(District, institution.district_id)
    zone = zone_of(district)
    today = today_in(district, now)
    monday = today - timedelta(days=today.weekday())
    week = datetime.combine(monday, datetime.min.time(), tzinfo=zone)
    bounds = [(week + timedelta(weeks=n)).astimezone(UTC) for n in range(3)]
    referrals = [
        DigestItem(r.id, r.code or "", r.submitted_at)
        for r in await session.scalars(
            select(Referral)
            .where(
                Referral.district_id == district.id,
                Referral.status.in_([ReferralStatus.SUBMITTED, ReferralStatus.NEEDS_INFO]),
            )
            .order_by(Referral.submitted_at)
        )
    ]
    conferences = list(
        await session.execute(
            select(Conference, Case.code)
            .join(Case, Conference.case_id == Case.id)
            .where(
                Conference.district_id == district.id,
                Conference.status.in_([*ACTIVE, ConferenceStatus.HELD]),
            )
            .order_by(Conference.starts_at, Conference.deadline)
        )
    )
    polls = [
        DigestItem(c.id, code, c.deadline)
        for c, code in conferences
        if c.status is ConferenceStatus.POLLING
    ]
    to_record = [
        DigestItem(c.id, code, c.starts_at)
        for c, code in conferences
        if c.recorded_at is None
        and c.starts_at is not None
        and c.starts_at < now
        and c.status in (ConferenceStatus.SCHEDULED, ConferenceStatus.HELD)
    ]
    tasks = await task_items(
        session,
        cipher,
        Task.status == TaskStatus.OPEN,
        Task.issued_at.is_not(None),
        Case.district_id == district.id,
        now=now,
    )
    sunday = monday + timedelta(days=6)
    return Digest(
        referrals,
        polls,
        _scheduled(conferences, bounds[0], bounds[1]),
        _scheduled(conferences, bounds[1], bounds[2]),
        [DigestItem(t.id, t.case_code, None, t.title) for t in tasks if t.overdue],
        [
            DigestItem(t.id, t.case_code, None, t.title)
            for t in tasks
            if not t.overdue and t.due_on <= sunday
        ],
        to_record,
    )


def _scheduled(
    conferences: Iterable[tuple[Conference, str]], start: datetime, end: datetime
) -> list[DigestItem]:
    """The conferences set for a time from `start` to before `end` (a week of the digest)."""
    return [
        DigestItem(c.id, code, c.starts_at)
        for c, code in conferences
        if c.status is ConferenceStatus.SCHEDULED and c.starts_at and start <= c.starts_at < end
    ]


async def plan_digests(session: AsyncSession, *, now: datetime) -> None:
    """Each active coordinator's next Monday digest, planned ahead (once per week by its key)."""
    rows = await session.execute(
        select(Member, District)
        .join(Institution, Member.institution_id == Institution.id)
        .join(District, Institution.district_id == District.id)
        .where(Member.role == Role.COORDINATOR, Member.active.is_(True))
    )
    items = []
    for member, district in rows:
        moment = policy.weekly_digest(now, zone_of(district))
        items.append(
            outbox.about_member(
                member.id,
                f"digest:m{member.id}:{moment.name}",
                DIGEST,
                due_at=moment.due,
                expires_at=moment.expires,
                payload={"week": moment.name},
            )
        )
    await outbox.plan(session, items, now=now)
