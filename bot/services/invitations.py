"""Calendar invitations: what the outbox sends about a conference that has its time.

When a conference gets its time (`bot.services.decisions`), every participant is invited
through the outbox (`bot.core.outbox`, planned in the same transaction, so a crash between
deciding and sending loses nothing): a message with an `.ics` REQUEST and Accept / Tentative /
Decline / Send a colleague. One UID per conference; SEQUENCE goes up with every new time and
with a cancellation. A reply (`bot.services.replies`) re-plans the member's reminders (2 days
and 2 hours before, for those who come); an unanswered invitation is nudged once after a
working day (`scheduling.policy`). What a message shows is made when it is sent. Mail to
invitees with an address is planned alongside (`bot.services.invitation_mail`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.db import preload
from bot.core.models import (
    Case,
    Conference,
    ConferenceStatus,
    District,
    Institution,
    Invitation,
    InvitationKind,
    InviteMessage,
    Member,
    OutboxRow,
    OutboxStatus,
    Rsvp,
)
from bot.services import audit, invitation_mail
from bot.services.board import (
    ACTIVE,
    NO_METHOD,
    Board,
    ConferenceError,
    Inviter,
    Method,
    answerers,
    board_of,
    conference_subject,
    district_calendar,
    invitations_of,
    inviter_of,
    method_of,
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

PLACEHOLDER_DOMAIN = "roundtable.invalid"  # RFC 2606: never delivers anywhere


class StaleInvitation(ConferenceError):
    """The invitation was for an earlier time, or the conference is no longer scheduled."""


@dataclass(frozen=True)
class Attendee:
    invitation_id: int | None  # None: the coordinator (the chair)
    kind: InvitationKind | None
    name: str  # institution name, or "" for guardians (numbered) and the chair
    person: str | None  # who answered or attends, if known
    number: int
    address: str
    required: bool
    rsvp: Rsvp


@dataclass(frozen=True)
class InviteView:
    """One participant's invitation, as their message and calendar file show it."""

    conference_id: int
    invitation_id: int | None  # None: the coordinator's own copy
    case_code: str
    uid: str
    sequence: int
    starts_at: datetime
    minutes: int
    place: str
    zone: ZoneInfo
    organizer_name: str
    organizer_address: str
    inviter: Inviter  # the coordinator and their institution
    chair: Attendee
    attendees: tuple[Attendee, ...]
    rsvp: Rsvp
    rsvp_by: str | None
    rsvp_by_id: int | None
    required: bool
    may_hand_over: bool  # an institution's invitation with other active members
    previous_starts_at: datetime | None  # what changed: the old time
    cancelled: bool
    stamp: datetime
    locale: str  # of the reader
    reader_id: int | None  # None: a guest (not on Telegram), the invitation's own reader
    reader_email: str | None
    method: Method = NO_METHOD  # its kind; a goal?


# Planning, in the transaction that sets, moves or cancels the time, or takes a reply.


def _prefix(conference: Conference) -> str:
    return invitation_mail.key_prefix(conference)


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
    return outbox.Planned(
        key=f"{_prefix(conference)}{key}:m{member.id}",
        kind=kind,
        subject=conference_subject(conference.id),
        member_id=member.id,
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
    return f"{_prefix(conference)}i{invitation_id}:"


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
            outbox.Planned(
                # Every decline is flagged, also a second one: a fresh key each time.
                key=f"{_prefix(conference)}flag:i{invitation.id}:{what}:{uuid.uuid4().hex}",
                kind=FLAG,
                subject=conference_subject(conference.id),
                member_id=coordinator.id,
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


# What the outbox sends: views made at send time from what is true then.


async def invite_view(
    session: AsyncSession,
    conference_id: int,
    invitation_id: int | None,
    member_id: int | None,
    *,
    now: datetime,
    previous: datetime | None = None,
    attendees: bool = True,
    mailbox: str | None = None,
    locale: str = "cs",
) -> InviteView | None:
    """`attendees=False` for a reminder or a nudge: no calendar file, so no attendee list
    (which costs a query per invitation). `member_id` None: a guest's invitation as the guest
    reads it (in `locale`); `mailbox`: the bot's, the ORGANIZER (else the district's)."""
    conference = await session.get(Conference, conference_id)
    if conference is None:
        return None
    invitation = None
    if invitation_id is not None:
        invitation = await session.get(Invitation, invitation_id)
        if invitation is None:
            return None
    return await view_of(
        session,
        conference,
        invitation,
        member_id,
        now=now,
        previous=previous,
        everyone=attendees,
        mailbox=mailbox,
        locale=locale,
    )


async def view_of(
    session: AsyncSession,
    conference: Conference,
    invitation: Invitation | None,
    member_id: int | None,
    *,
    now: datetime,
    previous: datetime | None = None,
    everyone: bool = True,
    mailbox: str | None = None,
    locale: str = "cs",
) -> InviteView:
    """An invitation (None: the coordinator's own copy) as `member_id` reads it (None: the
    guest of a guest's invitation); without `everyone`, the other attendees are left out."""
    district = await session.get_one(District, conference.district_id)
    case = await session.get_one(Case, conference.case_id)
    coordinator = await session.get_one(Member, conference.coordinator_id)
    reader = await session.get_one(Member, member_id) if member_id is not None else None
    if reader is None and (invitation is None or invitation.kind is not InvitationKind.GUEST):
        raise ValueError("only a guest's invitation is read by no member")
    starts_at = conference.starts_at or conference.invited_starts_at
    assert starts_at is not None and conference.uid is not None
    if everyone:
        rows = await invitations_of(session, conference.id)
    else:
        rows = [invitation] if invitation is not None else []
    await preload(session, Institution, [row.institution_id for row in rows])
    await preload(session, Member, [_person_id(row) for row in rows])
    attendees = tuple([await _attendee(session, row) for row in rows])
    chair = Attendee(
        None,
        None,
        "",
        coordinator.display_name,
        0,
        f"coordinator-{coordinator.id}@{PLACEHOLDER_DOMAIN}",
        True,
        Rsvp.ACCEPTED,
    )
    may_hand_over = False
    rsvp_by = None
    if invitation is not None:
        if invitation.kind is InvitationKind.INSTITUTION:
            people = await answerers(session, invitation, conference)
            may_hand_over = len(people) > 1
        if invitation.rsvp_by_id is not None:
            rsvp_by = (await session.get_one(Member, invitation.rsvp_by_id)).display_name
    return InviteView(
        conference_id=conference.id,
        invitation_id=invitation.id if invitation else None,
        case_code=case.code,
        uid=conference.uid,
        sequence=conference.sequence,
        starts_at=starts_at,
        minutes=conference.duration_minutes,
        place=conference.place,
        zone=ZoneInfo(district.timezone),
        organizer_name=district.name,
        organizer_address=mailbox or district.mailbox or f"conference@{PLACEHOLDER_DOMAIN}",
        inviter=await inviter_of(session, conference),
        chair=chair,
        attendees=attendees,
        rsvp=invitation.rsvp if invitation else Rsvp.ACCEPTED,
        rsvp_by=rsvp_by,
        rsvp_by_id=invitation.rsvp_by_id if invitation else None,
        required=invitation.required if invitation else True,
        may_hand_over=may_hand_over,
        previous_starts_at=previous,
        cancelled=conference.status is ConferenceStatus.CANCELLED,
        stamp=now,
        locale=reader.locale if reader else locale,
        reader_id=reader.id if reader else None,
        reader_email=reader.email if reader else invitation.email if invitation else None,
        method=await method_of(session, conference.id),
    )


def _person_id(invitation: Invitation) -> int | None:
    """The member a calendar file names for an invitation: who answered its RSVP, else the one
    it was handed to, else the one invited."""
    return invitation.rsvp_by_id or invitation.delegate_id or invitation.member_id


async def _attendee(session: AsyncSession, invitation: Invitation) -> Attendee:
    """An invitee as the calendar file lists it (the reader's own address is put in by
    bot.services.calendar_files)."""
    name = ""
    if invitation.institution_id is not None:
        name = (await session.get_one(Institution, invitation.institution_id)).name
    person_id = _person_id(invitation)
    person = None
    if invitation.kind is InvitationKind.GUEST:
        name = invitation.guest_name or name
    if person_id is not None:
        member = await session.get_one(Member, person_id)
        person = member.display_name if invitation.kind is InvitationKind.INSTITUTION else None
    # Only a placeholder: the reader's own address is put in by bot.services.calendar_files.
    address = f"invitation-{invitation.id}@{PLACEHOLDER_DOMAIN}"
    return Attendee(
        invitation.id,
        invitation.kind,
        name,
        person,
        invitation.number,
        address,
        invitation.required,
        invitation.rsvp,
    )


def reason_of(invitation: Invitation, cipher: Cipher) -> str | None:
    if invitation.decline_reason is None:
        return None
    return str(cipher.decrypt_json(invitation.decline_reason))


@dataclass(frozen=True)
class Undelivered:
    coordinator_chat_id: int
    coordinator_locale: str
    case_code: str
    name: str


async def undelivered(session: AsyncSession, conference_id: int, member_id: int) -> Undelivered:
    """Who could not be reached about which conference, for its coordinator."""
    conference = await session.get_one(Conference, conference_id)
    case = await session.get_one(Case, conference.case_id)
    coordinator = await session.get_one(Member, conference.coordinator_id)
    member = await session.get_one(Member, member_id)
    return Undelivered(coordinator.chat_id, coordinator.locale, case.code, member.display_name)


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
                outbox.Planned(
                    key=f"{_prefix(conference)}cancel:m{member_id}",
                    kind=CANCEL,
                    subject=conference_subject(conference.id),
                    member_id=member_id,
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
