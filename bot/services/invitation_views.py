"""An invitation as its reader sees it when the outbox sends it (the chat's message and `.ics`,
the mail's calendar, a reply's redraw): made from what is true then, with the time in the
district's zone, the attendees (the reader's own address the only real one) and the answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

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
    Member,
    Rsvp,
)
from bot.services.board import (
    NO_METHOD,
    Inviter,
    Method,
    answerers,
    invitations_of,
    inviter_of,
    method_of,
)

PLACEHOLDER_DOMAIN = "roundtable.invalid"  # RFC 2606: never delivers anywhere


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
