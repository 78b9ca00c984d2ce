"""Referral work the periodic sweep finds due: drafts to remind the referrer of or to expire,
referrals that have waited too long for a decision (a nudge to the coordinators), and sent
referrals whose messages were not confirmed deleted from the referrer's chat (the follow-ups).
A sent referral's alert needs no sweep: it is planned in the outbox with the referral."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.models import Member, Referral, ReferralStatus, Urgency
from bot.services import audit
from bot.services.drafting import DELETABLE_FOR_SECONDS
from bot.services.referrals import Recipient, alert_coordinators, as_recipient, coordinators
from scheduling import policy
from scheduling.calendar import WorkingCalendar


@dataclass(frozen=True)
class DraftReminder:
    referrer: Recipient
    started_at: datetime
    # An expired draft's noted messages ([id, unix time, from bot]): the expiry notice deletes
    # what Telegram still allows and says how many the referrer should delete herself.
    messages: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True)
class Waiting:
    id: int
    code: str
    urgency: Urgency
    submitted_at: datetime


@dataclass(frozen=True)
class FollowUp:
    """A sent referral whose messages were not confirmed deleted from the referrer's chat."""

    referral_id: int
    referrer: Recipient
    message_refs: list[list[int]]


@dataclass(frozen=True)
class DueWork:
    reminders: list[DraftReminder]
    expired: list[DraftReminder]
    nudges: list[tuple[list[Recipient], list[Waiting]]]  # per district: whom, about what
    follow_ups: list[FollowUp]

    def __bool__(self) -> bool:
        return bool(self.reminders or self.expired or self.nudges or self.follow_ups)


DRAFT_REMINDER = "referral.draft_reminder"
DRAFT_EXPIRED = "referral.draft_expired"
TRIAGE_NUDGE = "referral.triage_nudge"


def _planned(due: DueWork, now: datetime, calendar: WorkingCalendar) -> list[outbox.Planned]:
    planned = []
    for kind, found, expires in (
        (DRAFT_REMINDER, due.reminders, now + policy.DRAFT_REMINDER_AFTER),
        (DRAFT_EXPIRED, due.expired, None),
    ):
        for item in found:
            member = item.referrer.member_id
            planned.append(
                outbox.about_member(
                    member,
                    f"{kind}:m{member}:{item.started_at.isoformat()}",
                    kind,
                    due_at=now,
                    expires_at=expires,
                    payload={"started_at": item.started_at.isoformat()}
                    | ({"messages": item.messages} if item.messages else {}),
                )
            )
    day = calendar.local(now).date().isoformat()
    for recipients, items in due.nudges:
        for recipient in recipients:
            planned.append(
                outbox.about_member(
                    recipient.member_id,
                    f"{TRIAGE_NUDGE}:{day}:m{recipient.member_id}:r{items[0].id}",
                    TRIAGE_NUDGE,
                    due_at=now,
                    expires_at=policy.triage_nudge_expires(now, calendar),
                    payload={"referrals": [item.id for item in items]},
                )
            )
    return planned


async def due_work(session: AsyncSession, *, now: datetime, calendar: WorkingCalendar) -> DueWork:
    """What has come due by now; each is marked done and its message planned in the outbox in
    the same transaction: nothing is sent twice and nothing is lost."""
    due = DueWork(
        reminders=await _drafts_to_remind(session, now=now, calendar=calendar),
        expired=await _expire_drafts(session, now=now),
        nudges=await _waiting_to_nudge(session, now=now, calendar=calendar),
        follow_ups=await _follow_ups(session, now=now),
    )
    await outbox.plan(session, _planned(due, now, calendar), now=now)
    await _alert_unalerted(session, now=now)
    return due


async def _alert_unalerted(session: AsyncSession, *, now: datetime) -> None:
    """A referral sent by a version that alerted the coordinators directly, whose process died
    before it could: its alert is planned now, once. (A referral sent since has its alert
    planned in the same transaction, so none is ever found here again.)"""
    rows = await session.scalars(
        select(Referral).where(
            Referral.status == ReferralStatus.SUBMITTED,
            Referral.alerted_at.is_(None),
            Referral.submitted_at <= now - policy.FOLLOW_UP_AFTER,
        )
    )
    for row in rows:
        await alert_coordinators(session, row, now=now)


async def still_waiting(session: AsyncSession, referral_ids: list[int]) -> list[Waiting]:
    """Of the referrals a nudge was about, those still waiting for a decision (at send time)."""
    rows = await session.scalars(
        select(Referral)
        .where(Referral.id.in_(referral_ids), Referral.status == ReferralStatus.SUBMITTED)
        .order_by(Referral.submitted_at, Referral.id)
    )
    return [
        Waiting(
            row.id,
            row.code or "",
            row.urgency or Urgency.ROUTINE,
            row.submitted_at or row.created_at,
        )
        for row in rows
    ]


async def _drafts_to_remind(
    session: AsyncSession, *, now: datetime, calendar: WorkingCalendar
) -> list[DraftReminder]:
    rows = await session.execute(
        select(Referral, Member)
        .join(Member, Referral.referrer_id == Member.id)
        .where(
            Referral.status == ReferralStatus.DRAFT,
            Referral.reminded_at.is_(None),
            Referral.updated_at <= now - policy.DRAFT_REMINDER_AFTER,
            Member.active.is_(True),
        )
    )
    found = []
    for row, member in rows:
        if policy.draft_reminder_due(row.updated_at, row.reminded_at, now, calendar):
            row.reminded_at = now
            found.append(DraftReminder(as_recipient(member), row.created_at))
    return found


async def _expire_drafts(session: AsyncSession, *, now: datetime) -> list[DraftReminder]:
    """Delete drafts untouched for too long; returns whom to tell. The delete repeats the
    condition, so a draft the referrer touches at this very moment is kept."""
    cutoff = now - policy.DRAFT_KEPT_FOR
    rows = await session.execute(
        select(Referral.id, Referral.created_at, Referral.message_refs, Member)
        .join(Member, Referral.referrer_id == Member.id)
        .where(Referral.status == ReferralStatus.DRAFT, Referral.updated_at <= cutoff)
    )
    gone = []
    for referral_id, created_at, refs, member in rows.all():
        deleted = await session.execute(
            delete(Referral)
            .where(
                Referral.id == referral_id,
                Referral.status == ReferralStatus.DRAFT,
                Referral.updated_at <= cutoff,
            )
            .execution_options(synchronize_session=False)
        )
        if deleted.rowcount != 1:  # type: ignore[attr-defined]
            continue
        await audit.record(
            session,
            at=now,
            actor_id=None,
            action="referral.draft_expired",
            subject_type="referral",
            subject_id=referral_id,
        )
        if member.active:
            # The list of messages goes with the draft's row: the notice planned in this same
            # transaction carries it, so the deletion is not lost with the draft.
            gone.append(DraftReminder(as_recipient(member), created_at, list(refs or [])))
    return gone


async def _waiting_to_nudge(
    session: AsyncSession, *, now: datetime, calendar: WorkingCalendar
) -> list[tuple[list[Recipient], list[Waiting]]]:
    """Per district, once per working day: every referral there that has waited more than a
    working day, as soon as one of them is due (one message, not one per referral)."""
    rows = await session.scalars(
        select(Referral)
        .where(Referral.status == ReferralStatus.SUBMITTED)
        .order_by(Referral.submitted_at, Referral.id)
    )
    waiting: dict[int, list[tuple[Referral, Waiting]]] = {}
    for row in rows:
        submitted = row.submitted_at or row.created_at
        if policy.waited_a_working_day(submitted, now, calendar):
            item = Waiting(row.id, row.code or "", row.urgency or Urgency.ROUTINE, submitted)
            waiting.setdefault(row.district_id, []).append((row, item))
    nudges = []
    for district_id, found in waiting.items():
        due = (
            policy.triage_nudge_due(item.submitted_at, row.nudged_at, now, calendar)
            for row, item in found
        )
        if not any(due):
            continue
        for row, _item in found:
            row.nudged_at = now
        nudges.append((await coordinators(session, district_id), [item for _, item in found]))
    return nudges


async def _follow_ups(session: AsyncSession, *, now: datetime) -> list[FollowUp]:
    """Sent referrals with messages still to delete (within the 48 hours Telegram allows), a
    minute after sending; marked done (the sweep re-lists what fails)."""
    rows = await session.execute(
        select(Referral, Member)
        .join(Member, Referral.referrer_id == Member.id)
        .where(
            Referral.status != ReferralStatus.DRAFT,
            Referral.submitted_at <= now - policy.FOLLOW_UP_AFTER,
            Referral.submitted_at >= now - timedelta(seconds=DELETABLE_FOR_SECONDS),
        )
    )
    found = []
    for row, member in rows:
        if row.message_refs:
            found.append(FollowUp(row.id, as_recipient(member), list(row.message_refs)))
            row.message_refs = []
    return found
