"""Calendar invitations: what the outbox sends about a conference that has its time.

When a conference gets its time (`bot.services.decisions`), every participant is invited
through the outbox (`bot.core.outbox`, planned in the same transaction, so a crash between
deciding and sending loses nothing): a message with an `.ics` REQUEST and Accept / Tentative /
Decline / Send a colleague. One UID per conference; SEQUENCE goes up with every new time and
with a cancellation. A reply (`bot.services.replies`) re-plans the member's reminders (2 days
and 2 hours before, for those who come); an unanswered invitation is nudged once after a
working day (`scheduling.policy`). What a message shows is made when it is sent
(`bot.services.invitation_views`). Mail to invitees with an address is planned alongside
(`bot.services.invitation_mail`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.models import (
    Case,
    Conference,
    ConferenceStatus,
    District,
    Invitation,
    InviteMessage,
    Member,
    OutboxRow,
    OutboxStatus,
    Rsvp,
)
from bot.services import audit, invitation_mail
from bot.services.board import (
    ACTIVE,
    Board,
    ConferenceError,
    answerers,
    board_of,
    conference_subject,
    district_calendar,
    invitations_of,
    own_conference,
)
from bot.services.members import Actor
from scheduling import policy

INVITE = "conference.invite"
CANCEL = "conference.cancel"
REMINDER = "conference.reminder"
RSVP_NUDGE = "conference.rsvp_nudge"
ENDED = "conference.ended"  # to the coordinator: it is over, record the outcome
FLAG = "conference.flag"  # to the coordinator: a decline, with its reason if one is given


class StaleInvitation(ConferenceError):
    """The invitation was for an earlier time, or the conference is no longer scheduled."""


# Planning, in the transaction that sets, moves or cancels the time, or takes a reply.


async def invite_everyone(session: AsyncSession, conference: Conference, *, now: datetime) -> None:
    """The conference has a (new) time: new SEQUENCE if people were invited before, answers
    reset, pending reminders of the old time cancelled, invitations and nudges planned."""
    previous = conference.invited_starts_at
    if conference.uid is None:
        conference.uid = f"{uuid.uuid4()}@roundtable"
    elif previous is not None:
        conference.sequence += 1
    assert conference.starts_at is not None
    conference.invited_starts_at = conference.starts_at
    await outbox.cancel(session, subject=conference_subject(conference.id), now=now)
    for invitation in await invitations_of(session, conference.id):
        _reset_answer(invitation)
        for member in await _invitees(session, invitation, conference):
            await plan_invite(
                session, conference, invitation.id, member, now=now, previous=previous
            )
        await invitation_mail.plan_invitation_mails(
            session, conference, invitation, now=now, previous=previous
        )
    coordinator = await session.get_one(Member, conference.coordinator_id)
    await plan_invite(session, conference, None, coordinator, now=now, previous=previous)
    await invitation_mail.plan_chair_mail(
        session, conference, coordinator, now=now, previous=previous
    )
    ends = conference.starts_at + timedelta(minutes=conference.duration_minutes)
    ended = policy.Moment("ended", ends, ends + timedelta(days=30))
    await outbox.plan(
        session,
        [_planned(conference, None, coordinator, kind=ENDED, key="ended", moment=ended)],
        now=now,
    )


def _reset_answer(invitation: Invitation) -> None:
    """Nobody has answered the invitation yet, and it is handed to nobody."""
    invitation.rsvp = Rsvp.PENDING
    invitation.rsvp_by_id = invitation.rsvp_at = invitation.delegate_id = None
    invitation.decline_reason = None


def _planned(
    conference: Conference,
    invitation_id: int | None,
    member: Member,
    *,
    kind: str,
    key: str,
    moment: policy.Moment,
    **extra: object,
) -> outbox.Planned:
    """One row about this conference's current time for one member (`key` after the prefix)."""
    return invitation_mail.conference_row(
        conference,
        f"{key}:m{member.id}",
        kind,
        member.id,
        due_at=moment.due,
        expires_at=moment.expires,
        payload={
            "conference": conference.id,
            "invitation": invitation_id,
            "sequence": conference.sequence,
            **extra,
        },
    )


async def plan_invite(
    session: AsyncSession,
    conference: Conference,
    invitation_id: int | None,
    member: Member,
    *,
    now: datetime,
    previous: datetime | None = None,
    again: str = "",
) -> None:
    """The invitation message (and its nudge) for one member; `again` makes a fresh key for a
    second invitation of the same member for the same time (a hand-over)."""
    assert conference.starts_at is not None
    who = f"i{invitation_id}" if invitation_id is not None else "chair"
    if again:
        who = f"{who}:{again}"
    items = [
        _planned(
            conference,
            invitation_id,
            member,
            kind=INVITE,
            key=f"invite:{who}",
            moment=policy.Moment("invite", now, conference.starts_at),
            previous=previous.isoformat() if previous else None,
        )
    ]
    if invitation_id is not None:
        district = await session.get_one(District, conference.district_id)
        nudge = policy.rsvp_nudge(now, conference.starts_at, district_calendar(district))
        if nudge is not None:
            items.append(
                _planned(
                    conference,
                    invitation_id,
                    member,
                    kind=RSVP_NUDGE,
                    key=f"{who}:rsvp",
                    moment=nudge,
                )
            )
    await outbox.plan(session, items, now=now)


async def plan_reminders(
    session: AsyncSession,
    conference: Conference,
    invitation_id: int,
    member: Member,
    *,
    now: datetime,
) -> None:
    """The reminders of a member who comes (`scheduling.policy`), for the current time."""
    assert conference.starts_at is not None
    await outbox.plan(
        session,
        [
            _planned(
                conference,
                invitation_id,
                member,
                kind=REMINDER,
                key=f"i{invitation_id}:remind-{moment.name}",
                moment=moment,
            )
            for moment in policy.conference_reminders(conference.starts_at, now)
        ],
        now=now,
    )


async def _invitees(
    session: AsyncSession, invitation: Invitation, conference: Conference
) -> list[Member]:
    """Who gets an invitation's message: the colleague it was handed to, or everyone who may
    answer for it (the first answer decides who attends)."""
    if invitation.delegate_id is not None:
        delegate = await session.get_one(Member, invitation.delegate_id)
        if delegate.active and delegate.reachable:
            return [delegate]
    return [m for m in await answerers(session, invitation, conference) if m.reachable]


def _invitation_prefix(conference: Conference, invitation_id: int) -> str:
    """Keys of an invitation's reminders and nudges for the current time start with this."""
    return f"{invitation_mail.key_prefix(conference)}i{invitation_id}:"


async def cancel_follow_ups(
    session: AsyncSession, conference: Conference, invitation_id: int, *, now: datetime
) -> None:
    """The invitation's pending reminders and RSVP nudges, whoever they were for (a guest's
    reminders by mail too)."""
    await outbox.cancel(
        session,
        prefix=_invitation_prefix(conference, invitation_id),
        kinds=(REMINDER, RSVP_NUDGE, invitation_mail.MAIL_REMINDER),
        now=now,
    )


async def revive_reminders(
    session: AsyncSession, conference: Conference, invitation_id: int, member_id: int
) -> None:
    """Accept, decline, accept again: the reminders cancelled by the decline come back."""
    await outbox.revive(
        session,
        kind=REMINDER,
        member_id=member_id,
        prefix=_invitation_prefix(conference, invitation_id),
    )


async def plan_flag(
    session: AsyncSession,
    conference: Conference,
    invitation: Invitation,
    what: str,
    *,
    now: datetime,
) -> None:
    """A flag to the coordinator about an invitation (`what`: "declined" or "reason")."""
    coordinator = await session.get_one(Member, conference.coordinator_id)
    await outbox.plan(
        session,
        [
            invitation_mail.conference_row(
                conference,
                # Every decline is flagged, also a second one: a fresh key each time.
                f"flag:i{invitation.id}:{what}:{uuid.uuid4().hex}",
                FLAG,
                coordinator.id,
                due_at=now,
                payload={
                    "conference": conference.id,
                    "invitation": invitation.id,
                    "what": what,
                    "sequence": conference.sequence,
                },
            )
        ],
        now=now,
    )


async def reinvite(
    session: AsyncSession,
    conference: Conference,
    invitation: Invitation,
    *,
    now: datetime,
    again: str,
) -> None:
    """An invitation back with its institution (a leaver's hand-over): its answer is reset, its
    pending follow-ups go, and whoever may answer for it now is invited again, with a fresh key
    (`again`) as they may have been invited to this time before."""
    _reset_answer(invitation)
    await cancel_follow_ups(session, conference, invitation.id, now=now)
    for member in await _invitees(session, invitation, conference):
        await plan_invite(session, conference, invitation.id, member, now=now, again=again)
    await invitation_mail.plan_invitation_mails(
        session, conference, invitation, now=now, again=again
    )


async def record_message(
    session: AsyncSession,
    invitation_id: int,
    member_id: int,
    *,
    sequence: int,
    chat_id: int,
    message_id: int,
) -> None:
    session.add(
        InviteMessage(
            invitation_id=invitation_id,
            member_id=member_id,
            sequence=sequence,
            chat_id=chat_id,
            message_id=message_id,
        )
    )


# The coordinator cancels.


async def cancellable(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> int:
    """An active conference the actor may cancel (before asking to confirm); audited refusal."""
    conference = await own_conference(session, actor, conference_id, now=now)
    _require_active(conference)
    return conference.id


def _require_active(conference: Conference) -> None:
    if conference.status not in ACTIVE:
        raise StaleInvitation("not active")


async def cancel_conference(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> Board:
    """Cancelled: everyone invited gets a CANCEL (SEQUENCE + 1); nothing pending is sent."""
    conference = await own_conference(session, actor, conference_id, now=now)
    await session.refresh(conference, with_for_update=True)
    _require_active(conference)
    invited = conference.invited_starts_at is not None
    conference.status = ConferenceStatus.CANCELLED
    conference.cancelled_at = now
    await outbox.cancel(session, subject=conference_subject(conference.id), now=now)
    if invited:
        conference.sequence += 1
        if conference.starts_at is None:
            conference.starts_at = conference.invited_starts_at
        people = await session.scalars(
            select(OutboxRow.member_id)
            .where(
                OutboxRow.subject == conference_subject(conference.id),
                OutboxRow.kind == INVITE,
                OutboxRow.status.in_([OutboxStatus.SENT, OutboxStatus.SENDING]),
            )
            .distinct()
        )
        await outbox.plan(
            session,
            [
                invitation_mail.conference_row(
                    conference,
                    f"cancel:m{member_id}",
                    CANCEL,
                    member_id,
                    due_at=now,
                    payload={"conference": conference.id},
                )
                for member_id in people
            ],
            now=now,
        )
        await invitation_mail.plan_cancel_mails(session, conference, now=now)
    case = await session.get_one(Case, conference.case_id)
    await audit.acted(session, actor, "conference.cancelled", conference, at=now, case=case.code)
    return await board_of(session, conference)
