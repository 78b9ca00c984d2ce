"""The case: its code (and the referrals'), opening it for an accepted referral, finding it by
its code, the open cases and the next step in each, and closing one (with its open tasks and
its active conference)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.db import insert_if_absent
from bot.core.i18n import Translator
from bot.core.models import (
    Case,
    CaseStatus,
    Channel,
    CodeSequence,
    Conference,
    ConferenceStatus,
    District,
    Invitation,
    InvitationKind,
    Member,
    OutboxRow,
    OutboxStatus,
    Referral,
    Task,
    TaskStatus,
)
from bot.services import audit, mailing
from bot.services.board import ACTIVE, conference_subject
from bot.services.errors import NotFound
from bot.services.invitations import INVITE, cancel_conference
from bot.services.members import Actor, require_coordinator
from bot.services.tasks import TaskError, cancel, overdue


class Outcome(enum.StrEnum):
    FULFILLED = "fulfilled"
    HANDED_OVER = "handed_over"
    OTHER = "other"


# Told when a case is closed: each participant of its conferences, and the referrer.
CLOSED = "case.closed"
CLOSED_REFERRER = "case.closed_referrer"
CLOSED_MAIL = "mail.case_closed"  # to a guest invited by e-mail


@dataclass(frozen=True)
class ClosedCase:
    """What the closing notices say: codes and the outcome, nothing about the child."""

    code: str
    outcome: Outcome
    referral_id: int | None
    referral_code: str | None


def outcome_label(outcome: Outcome, tr: Translator) -> str:
    """The outcome as the closing notices and the coordinator's buttons name it."""
    return {
        Outcome.FULFILLED: tr.gettext("Plan fulfilled"),
        Outcome.HANDED_OVER: tr.gettext("Handed to another authority"),
        Outcome.OTHER: tr.pgettext("case outcome", "Other"),
    }[outcome]


@dataclass(frozen=True)
class OpenCase:
    id: int
    code: str
    opened_at: datetime
    manager: str


@dataclass(frozen=True)
class CaseStep:
    """What comes next in a case, for /cases."""

    conference: Conference | None  # the active one, or the last held one
    to_record: bool  # held, the record not finished
    open_tasks: int
    overdue_tasks: int
    review_by: date | None
    recorded_id: int | None = None  # the last held conference whose record is finished


async def next_code(
    session: AsyncSession, prefix: str, now: datetime, *, district_id: int | None = None
) -> str:
    """The next code like R-2026-0017: numbered per prefix and year (the district's local year),
    without gaps or races (the row update serialises concurrent callers)."""
    zone = "Europe/Prague"
    if district_id is not None:
        zone = (await session.get_one(District, district_id)).timezone
    key = f"{prefix}-{now.astimezone(ZoneInfo(zone)).year}"
    await insert_if_absent(session, CodeSequence, {"prefix": key, "last": 0}, ["prefix"])
    number = await session.scalar(
        update(CodeSequence)
        .where(CodeSequence.prefix == key)
        .values(last=CodeSequence.last + 1)
        .returning(CodeSequence.last)
    )
    return f"{key}-{number:04d}"


async def open_case(
    session: AsyncSession, actor: Actor, referral: Referral, *, now: datetime
) -> Case:
    """The case of an accepted referral; the coordinator who accepted it manages it."""
    case = Case(
        code=await next_code(session, "PK", now, district_id=referral.district_id),
        district_id=referral.district_id,
        referral_id=referral.id,
        manager_id=actor.member_id,
        status=CaseStatus.OPEN,
        opened_at=now,
    )
    session.add(case)
    await session.flush()
    await audit.acted(
        session, actor, "case.opened", case, at=now, code=case.code, referral=referral.code
    )
    return case


async def find_case(session: AsyncSession, code: str) -> Case:
    """A case by its code (in any letter case); an unknown code is NotFound."""
    case = await session.scalar(select(Case).where(Case.code == code.strip().upper()))
    if case is None:
        raise NotFound(f"no case with the code {code.strip()}")
    return case


async def open_cases(session: AsyncSession, actor: Actor, *, now: datetime) -> list[OpenCase]:
    """The district's open cases, oldest first, with their managers: for coordinators only."""
    require_coordinator(actor, now=now, action="case.list", subject_type="case")
    rows = await session.execute(
        select(Case, Member.display_name)
        .join(Member, Case.manager_id == Member.id)
        .where(Case.district_id == actor.district_id, Case.status == CaseStatus.OPEN)
        .order_by(Case.opened_at, Case.id)
    )
    return [OpenCase(case.id, case.code, case.opened_at, name) for case, name in rows]


async def case_steps(
    session: AsyncSession, case_ids: Sequence[int], *, now: datetime
) -> dict[int, CaseStep]:
    if not case_ids:
        return {}
    conferences = list(
        await session.scalars(
            select(Conference)
            .where(
                Conference.case_id.in_(case_ids), Conference.status != ConferenceStatus.CANCELLED
            )
            .order_by(Conference.created_at, Conference.id)
        )
    )
    tasks = list(
        await session.execute(
            select(Task.case_id, Task.due_on, District.timezone)
            .join(Case, Task.case_id == Case.id)
            .join(District, Case.district_id == District.id)
            .where(Task.case_id.in_(case_ids), Task.status == TaskStatus.OPEN)
        )
    )
    steps: dict[int, CaseStep] = {}
    for case_id in case_ids:
        mine = [c for c in conferences if c.case_id == case_id]
        active = [c for c in mine if c.status in ACTIVE]
        held = [c for c in mine if c.status is ConferenceStatus.HELD]
        due_scheduled = [
            c
            for c in active
            if c.status is ConferenceStatus.SCHEDULED and c.starts_at and c.starts_at <= now
        ]
        latest = due_scheduled or active or held
        current = latest[-1] if latest else None
        to_record = bool(due_scheduled) or any(c.recorded_at is None for c in held)
        open_due = [(due, zone) for cid, due, zone in tasks if cid == case_id]
        late = sum(1 for due, zone in open_due if overdue(due, zone, now))
        steps[case_id] = CaseStep(
            current,
            to_record,
            len(open_due),
            late,
            held[-1].review_by if held and not active else None,
            next((c.id for c in reversed(held) if c.recorded_at is not None), None),
        )
    return steps


async def closable_case(session: AsyncSession, actor: Actor, case_id: int, *, now: datetime) -> str:
    """The code of an open case of the actor's district (before asking for the outcome);
    anyone else is refused, audited."""
    return (await _closable(session, actor, case_id, now=now)).code


async def _closable(session: AsyncSession, actor: Actor, case_id: int, *, now: datetime) -> Case:
    case = await session.get(Case, case_id)
    if case is None or not actor.coordinates(case.district_id):
        raise audit.refused(actor, "case.close", "case", case_id, at=now)
    await session.refresh(case, with_for_update=True)
    if case.status is not CaseStatus.OPEN:
        raise TaskError("closed")
    return case


async def close_case(
    session: AsyncSession, actor: Actor, case_id: int, outcome: Outcome, *, now: datetime
) -> str:
    """Closed with an outcome: open tasks cancelled, every pending notification of the case
    cancelled, an active conference cancelled (participants get the calendar CANCEL); the
    participants of its conferences and the referrer are told (`tell_closed`)."""
    case = await _closable(session, actor, case_id, now=now)
    for conference_id in list(
        await session.scalars(
            select(Conference.id).where(
                Conference.case_id == case.id, Conference.status.in_(ACTIVE)
            )
        )
    ):
        await cancel_conference(session, actor, conference_id, now=now)
    # After the cancellations: a calendar's CANCEL comes before the word that the case closed.
    await tell_closed(session, actor, case, now=now)
    for task in list(
        await session.scalars(
            select(Task).where(Task.case_id == case.id, Task.status == TaskStatus.OPEN)
        )
    ):
        await cancel(session, task, now=now)
    case.status = CaseStatus.CLOSED
    case.closed_at = now
    case.outcome = outcome.value
    await audit.acted(
        session, actor, "case.closed", case, at=now, case=case.code, outcome=outcome.value
    )
    return case.code


# Telling who took part that the case is closed.


async def participants(session: AsyncSession, case: Case) -> set[int]:
    """The members who took part in the case's conferences: each one a calendar invitation was
    sent to (as a cancellation finds them), and each one recorded as attending."""
    conference_ids = list(
        await session.scalars(select(Conference.id).where(Conference.case_id == case.id))
    )
    if not conference_ids:
        return set()
    invited = await session.scalars(
        select(OutboxRow.member_id).where(
            OutboxRow.subject.in_([conference_subject(c) for c in conference_ids]),
            OutboxRow.kind == INVITE,
            OutboxRow.channel == Channel.TELEGRAM,
            OutboxRow.status.in_([OutboxStatus.SENT, OutboxStatus.SENDING]),
            OutboxRow.member_id.is_not(None),
        )
    )
    attended = await session.scalars(
        select(Invitation.attendee_id).where(
            Invitation.conference_id.in_(conference_ids),
            Invitation.attended.is_(True),
            Invitation.attendee_id.is_not(None),
        )
    )
    return {m for m in [*invited, *attended] if m is not None}


def _subject(case_id: int) -> str:
    """What the outbox files a case's notifications under."""
    return f"case:{case_id}"


async def tell_closed(session: AsyncSession, actor: Actor, case: Case, *, now: datetime) -> None:
    """Plan, in the closing transaction, the notice to each participant (not the coordinator
    closing it, not a leaver) and to the referrer (who, if she took part, gets hers only):
    each once, whatever is pressed twice."""
    referrer_id = None
    if case.referral_id is not None:
        referrer_id = await session.scalar(
            select(Referral.referrer_id).where(Referral.id == case.referral_id)
        )
    await _tell_guests(session, case, now=now)
    wanted = await participants(session, case) | ({referrer_id} if referrer_id else set())
    wanted.discard(actor.member_id)
    if not wanted:
        return
    left = await session.scalars(
        select(Member.id).where(Member.id.in_(wanted), Member.active.is_(False))
    )
    active = wanted - set(left)
    await outbox.plan(
        session,
        [
            outbox.about(
                _subject(case.id),
                f"closed:m{member_id}",
                CLOSED_REFERRER if member_id == referrer_id else CLOSED,
                member_id,
                due_at=now,
                payload={"case": case.id},
            )
            for member_id in sorted(active)
        ],
        now=now,
    )


async def _tell_guests(session: AsyncSession, case: Case, *, now: datetime) -> None:
    """The guests invited by e-mail to the case's conferences (each address once; not one the
    mail server refused for good) get the closing by mail."""
    guests = await session.scalars(
        select(Invitation)
        .join(Conference, Conference.id == Invitation.conference_id)
        .where(
            Conference.case_id == case.id,
            Invitation.kind == InvitationKind.GUEST,
            Invitation.email.is_not(None),
        )
        .order_by(Invitation.id)
    )
    addresses: dict[str, Invitation] = {}
    for guest in guests:
        assert guest.email is not None
        addresses.setdefault(mailing.normal(guest.email), guest)
    await outbox.plan(
        session,
        [
            outbox.about(
                _subject(case.id),
                f"closed:mail:{guest.id}",
                CLOSED_MAIL,
                None,
                due_at=now,
                payload={"case": case.id, "invitation": guest.id},
                channel=Channel.MAIL,
                address=address,
            )
            for address, guest in addresses.items()
            if not await mailing.failing(session, address)
        ],
        now=now,
    )


async def closed_case(session: AsyncSession, case_id: int) -> ClosedCase | None:
    """The closed case as its notices show it; None if it is not closed (or already
    anonymised), when nothing is said."""
    case = await session.get(Case, case_id)
    if case is None or case.status is not CaseStatus.CLOSED or case.purged_at is not None:
        return None
    referral_code = None
    if case.referral_id is not None:
        referral_code = await session.scalar(
            select(Referral.code).where(Referral.id == case.referral_id)
        )
    return ClosedCase(
        code=case.code,
        outcome=Outcome(case.outcome or Outcome.OTHER.value),
        referral_id=case.referral_id,
        referral_code=referral_code,
    )
