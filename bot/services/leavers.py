"""A leaver: deactivating a member (by an admin, or the operator) and the hand-over: nothing
more goes to them, and the coordinators learn what they held (open tasks, invitations they
answered or were handed) so that someone else takes it over."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.models import (
    Case,
    Conference,
    ConferenceStatus,
    Institution,
    Invitation,
    InvitationKind,
    InviteCode,
    Member,
    Referral,
    ReferralStatus,
    Role,
    Task,
    TaskStatus,
)
from bot.services import audit, circulation, invitations, members
from bot.services.board import answerers
from bot.services.errors import NotFound
from bot.services.members import Actor, MemberView

HANDOVER = "member.handover"  # to a coordinator: what a leaver held, with a button per task


@dataclass(frozen=True)
class HeldTask:
    task_id: int
    case_code: str
    title: str
    due_on: date


@dataclass(frozen=True)
class HeldInvitation:
    invitation_id: int
    case_code: str
    starts_at: datetime
    institution: str
    colleagues: int  # the institution's other active members, who can answer it now


@dataclass(frozen=True)
class Handover:
    leaver: str
    tasks: list[HeldTask]
    invitations: list[HeldInvitation]


async def deactivate_member(
    session: AsyncSession, actor: Actor | None, member_id: int, *, now: datetime
) -> MemberView:
    """An admin (or the CLI, actor=None) takes a leaver out: the bot then treats them as unknown."""
    if actor is not None:
        member, institution = await _deactivatable(session, actor, member_id, now=now)
    else:
        row = (await session.execute(_member_query(member_id))).first()
        if row is None:
            raise NotFound(f"no member with id {member_id}")
        member, institution = row
    if member.active:
        member.active = False
        member.deactivated_at = now
        await _forget_leaver(session, member, now=now)
        via = "bot" if actor else "cli"
        await audit.acted(session, actor, "member.deactivated", member, at=now, via=via)
    return members.member_view(member, institution)


async def to_deactivate(
    session: AsyncSession, actor: Actor, member_id: int, *, now: datetime
) -> MemberView:
    """The member an admin is about to deactivate (to confirm it): one of their district's
    staff, not themselves; any other (a guardian too) is refused, audited."""
    return members.member_view(*await _deactivatable(session, actor, member_id, now=now))


def _member_query(member_id: int) -> Select[Member, Institution]:
    return (
        select(Member, Institution)
        .join(Institution, Member.institution_id == Institution.id)
        .where(Member.id == member_id)
    )


async def _deactivatable(
    session: AsyncSession, actor: Actor, member_id: int, *, now: datetime
) -> tuple[Member, Institution]:
    members.require_admin(actor, now=now, action="member.deactivate", subject=member_id)
    query = _member_query(member_id).where(
        Institution.district_id == actor.district_id, members.STAFF
    )
    row = (await session.execute(query)).first()
    if row is None or row[0].id == actor.member_id:
        # Another district's member, a guardian, themselves, or no such member: a forged button.
        raise audit.refused(actor, "member.deactivate", "member", member_id, at=now)
    return row[0], row[1]


async def _forget_leaver(session: AsyncSession, member: Member, *, now: datetime) -> None:
    """A leaver's unused invite links stop working, their unfinished drafts are deleted, and
    what they held is handed over."""
    await hand_over(session, member, now=now)
    await session.execute(
        update(InviteCode)
        .where(
            InviteCode.created_by_id == member.id,
            InviteCode.used_at.is_(None),
            InviteCode.expires_at > now,
        )
        .values(expires_at=now)
    )
    await session.execute(
        delete(Referral).where(
            Referral.referrer_id == member.id, Referral.status == ReferralStatus.DRAFT
        )
    )
    await members.forget_dialog_state(session, member)


async def hand_over(session: AsyncSession, leaver: Member, *, now: datetime) -> None:
    """In the deactivation's transaction: every pending row for the leaver is cancelled; an
    invitation they answered or were handed goes back to their institution (answer reset, the
    colleagues invited to answer); each coordinator concerned is told what the leaver held."""
    await outbox.cancel(session, subject=None, member_id=leaver.id, now=now)
    await circulation.hand_over(session, leaver, now=now)  # a draft record awaiting comments
    told: dict[int, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    open_tasks = await session.scalars(
        select(Task)
        .where(Task.owner_id == leaver.id, Task.status == TaskStatus.OPEN)
        .order_by(Task.due_on, Task.id)
    )
    for task in open_tasks:
        conference = await session.get_one(Conference, task.conference_id)
        for coordinator_id in await _coordinators(session, conference, leaver):
            told[coordinator_id][0].append(task.id)
    for invitation, conference in await _live_invitations(session, leaver, now=now):
        await invitations.reinvite(session, conference, invitation, now=now, again=f"l{leaver.id}")
        for coordinator_id in await _coordinators(session, conference, leaver):
            told[coordinator_id][1].append(invitation.id)
    # A notice per task, each with its button: reassigning edits the message pressed, so one
    # list with many buttons would lose the others after the first. The invitations, which
    # need no button, come together.
    stamp = int(now.timestamp())
    items = []
    for coordinator_id, (task_ids, invitation_ids) in told.items():
        parts: list[tuple[str, list[int], list[int]]] = [
            (f"t{task_id}", [task_id], []) for task_id in task_ids
        ]
        if invitation_ids:
            parts.append(("invitations", [], invitation_ids))
        for part, held_tasks, held_invitations in parts:
            items.append(
                outbox.about(
                    outbox.member_subject(leaver.id),
                    f"left-{stamp}:m{coordinator_id}:{part}",
                    HANDOVER,
                    coordinator_id,
                    due_at=now,
                    expires_at=now + timedelta(days=30),
                    payload={
                        "leaver": leaver.id,
                        "tasks": held_tasks,
                        "invitations": held_invitations,
                    },
                )
            )
    await outbox.plan(session, items, now=now)


async def _live_invitations(
    session: AsyncSession, leaver: Member, *, now: datetime
) -> list[tuple[Invitation, Conference]]:
    """Institutions' invitations to a conference still ahead that the leaver answered or was
    handed: the institution is still invited, the leaver will not come."""
    rows = await session.execute(
        select(Invitation, Conference)
        .join(Conference, Invitation.conference_id == Conference.id)
        .where(
            Invitation.kind == InvitationKind.INSTITUTION,
            or_(Invitation.rsvp_by_id == leaver.id, Invitation.delegate_id == leaver.id),
            Conference.status == ConferenceStatus.SCHEDULED,
            Conference.starts_at > now,
        )
        .order_by(Conference.starts_at, Invitation.id)
    )
    return [(invitation, conference) for invitation, conference in rows]


async def _coordinators(session: AsyncSession, conference: Conference, leaver: Member) -> list[int]:
    """Who hears of the leaver's part in a conference: its coordinator, or, when they have left
    too, the district's active coordinators."""
    coordinator = await session.get_one(Member, conference.coordinator_id)
    if coordinator.active and coordinator.id != leaver.id:
        return [coordinator.id]
    query = (
        select(Member.id)
        .join(Institution, Member.institution_id == Institution.id)
        .where(
            Institution.district_id == conference.district_id,
            Member.role == Role.COORDINATOR,
            Member.active.is_(True),
            Member.id != leaver.id,
        )
        .order_by(Member.id)
    )
    return list(await session.scalars(query))


async def handover_view(
    session: AsyncSession,
    cipher: Cipher,
    leaver_id: int,
    task_ids: list[int],
    invitation_ids: list[int],
    *,
    now: datetime,
) -> Handover | None:
    """What of the hand-over is still open when it is sent: tasks still the leaver's, for
    conferences still ahead; None when nothing is left (say, reassigned meanwhile)."""
    leaver = await session.get(Member, leaver_id)
    if leaver is None or leaver.active:
        return None  # joined again in between (as a new member) or never left: moot
    held_tasks = [
        HeldTask(task.id, code, cipher.decrypt(task.title).decode(), task.due_on)
        for task, code in await session.execute(
            select(Task, Case.code)
            .join(Case, Task.case_id == Case.id)
            .where(
                Task.id.in_(task_ids),
                Task.owner_id == leaver_id,
                Task.status == TaskStatus.OPEN,
            )
            .order_by(Task.due_on, Task.id)
        )
    ]
    held_invitations = []
    rows = await session.execute(
        select(Invitation, Conference, Case.code, Institution.name)
        .join(Conference, Invitation.conference_id == Conference.id)
        .join(Case, Conference.case_id == Case.id)
        .join(Institution, Invitation.institution_id == Institution.id)
        .where(
            Invitation.id.in_(invitation_ids),
            Conference.status == ConferenceStatus.SCHEDULED,
            Conference.starts_at > now,
        )
        .order_by(Conference.starts_at, Invitation.id)
    )
    for invitation, conference, code, institution in rows:
        assert conference.starts_at is not None
        colleagues = await answerers(session, invitation, conference)
        held_invitations.append(
            HeldInvitation(
                invitation.id,
                code,
                conference.starts_at,
                institution,
                len(colleagues),
            )
        )
    if not held_tasks and not held_invitations:
        return None
    return Handover(leaver.display_name, held_tasks, held_invitations)
