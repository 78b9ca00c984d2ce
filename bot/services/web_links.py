"""A guest's personal link to the web page (bot.transport.web), and what they do through it:
the date poll of one round, then the invitation to the time decided.

A link is a random token mailed to the guest's address; only its SHA-256 is kept for finding it
(and the token encrypted, for the mails that carry it again). It is bound to one invitation and
one poll round (or one SEQUENCE of the invitation) and expires with the poll (or when the
conference ends). Whoever holds it answers for that guest, under the same rules as the chat: the
answer counts for the invitation, can be changed until the deadline, and a round or a time that
has changed since makes the link used up. The page shows the case by its code only.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.crypto import Cipher
from bot.core.method_tables import ConferenceKind
from bot.core.models import (
    Case,
    Conference,
    ConferenceStatus,
    District,
    Invitation,
    InvitationKind,
    Member,
    Rsvp,
)
from bot.core.web_tables import LinkPurpose, WebLink
from bot.services import audit, invitation_mail, polls, replies
from bot.services.board import (
    Board,
    Inviter,
    Slot,
    board_of,
    current_slots,
    inviter_of,
    method_of,
    zone_of,
)
from bot.services.errors import ServiceError
from bot.services.polls import PollView
from scheduling.finder import Vote

TOKEN_BYTES = 24  # 192 random bits: 32 characters in a URL
_TOKEN_MAX = 64  # anything longer is not one of ours (and is not hashed)
REASON_MAX = replies.REASON_MAX


class BadLink(ServiceError):
    """A link that does not open: `reason` is "unknown", "expired", "cancelled" (the
    conference) or "used" (a newer round or time, the poll decided)."""

    def __init__(self, reason: str, *, until: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.until = until  # an expired link's end


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _expiry(conference: Conference, purpose: LinkPurpose) -> datetime | None:
    if purpose is LinkPurpose.POLL:
        return conference.deadline
    if conference.starts_at is None:
        return None
    return conference.starts_at + timedelta(minutes=conference.duration_minutes)


def _current_round(conference: Conference, purpose: LinkPurpose) -> int | None:
    """The round (or SEQUENCE) a link of `purpose` is for now; None: no such link makes sense."""
    if conference.cancelled_at is not None:
        return None
    if purpose is LinkPurpose.POLL:
        return conference.round if conference.status is ConferenceStatus.POLLING else None
    if conference.status is ConferenceStatus.SCHEDULED and conference.starts_at is not None:
        return conference.sequence
    return None


async def guest_link(
    session: AsyncSession,
    cipher: Cipher,
    invitation_id: int,
    purpose: LinkPurpose,
    *,
    now: datetime,
) -> str | None:
    """The token of a guest's link for the poll's current round (or the invitation's current
    SEQUENCE), made on first need; None when none makes sense now (not a guest, the poll over,
    no time decided). The same link goes in every mail of that round: the poll, its nudge."""
    invitation = await session.get(Invitation, invitation_id)
    if invitation is None or invitation.kind is not InvitationKind.GUEST:
        return None
    conference = await session.get_one(Conference, invitation.conference_id)
    round_ = _current_round(conference, purpose)
    expires = _expiry(conference, purpose)
    if round_ is None or expires is None or expires <= now:
        return None
    found = await _link(session, invitation.id, purpose, round_)
    if found is not None:
        return cipher.decrypt(found.token).decode()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = WebLink(
        token_hash=token_hash(token),
        token=cipher.encrypt(token.encode()),
        form_key=secrets.token_urlsafe(TOKEN_BYTES),
        invitation_id=invitation.id,
        purpose=purpose,
        round=round_,
        created_at=now,
        expires_at=expires,
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:  # made at the same moment by another sender: that one counts
        found = await _link(session, invitation.id, purpose, round_)
        assert found is not None
        return cipher.decrypt(found.token).decode()
    return token


async def _link(
    session: AsyncSession, invitation_id: int, purpose: LinkPurpose, round_: int
) -> WebLink | None:
    found: WebLink | None = await session.scalar(
        select(WebLink).where(
            WebLink.invitation_id == invitation_id,
            WebLink.purpose == purpose,
            WebLink.round == round_,
        )
    )
    return found


@dataclass(frozen=True)
class Opened:
    """A link that opens: its row, the guest's invitation and the conference."""

    link: WebLink
    invitation: Invitation
    conference: Conference


async def open_link(session: AsyncSession, token: str, *, now: datetime) -> Opened:
    """The link of `token`, refused with the reason when it does not open."""
    if not token or len(token) > _TOKEN_MAX:
        raise BadLink("unknown")
    link = await session.scalar(select(WebLink).where(WebLink.token_hash == token_hash(token)))
    if link is None:
        raise BadLink("unknown")
    if now >= link.expires_at:
        raise BadLink("expired", until=link.expires_at)
    invitation = await session.get(Invitation, link.invitation_id)
    if invitation is None or invitation.kind is not InvitationKind.GUEST:
        raise BadLink("unknown")
    conference = await session.get_one(Conference, invitation.conference_id)
    if conference.cancelled_at is not None:  # no newer link will come
        raise BadLink("cancelled")
    if _current_round(conference, link.purpose) != link.round:
        raise BadLink("used")
    return Opened(link, invitation, conference)


async def zone_of_conference(session: AsyncSession, conference: Conference) -> ZoneInfo:
    """The district's zone, in which a guest's page and the coordinator's board show times."""
    return zone_of(await session.get_one(District, conference.district_id))


# The poll.


@dataclass(frozen=True)
class GuestPoll:
    """One round of the poll as a guest's page shows it."""

    case_code: str
    kind: ConferenceKind  # initial, review, before a court petition, other
    guest: str
    minutes: int
    place: str
    inviter: Inviter
    deadline: datetime
    slots: list[Slot]
    sent: dict[int, Vote]  # slot id -> the answer given for the invitation
    answered_at: datetime | None
    answered_by: str | None  # the coordinator who entered it in the chat; None: the guest
    round: int
    form_key: str
    zone: ZoneInfo  # the district's


async def guest_poll(session: AsyncSession, opened: Opened) -> GuestPoll:
    if opened.link.purpose is not LinkPurpose.POLL:
        raise BadLink("unknown")
    conference, invitation = opened.conference, opened.invitation
    sent = await polls.sent_votes(session, invitation.id)
    return GuestPoll(
        case_code=(await session.get_one(Case, conference.case_id)).code,
        kind=(await method_of(session, conference.id)).kind,
        guest=await invitation_mail.guest_name(session, invitation),
        minutes=conference.duration_minutes,
        place=conference.place,
        inviter=await inviter_of(session, conference),
        deadline=conference.deadline,
        slots=await current_slots(session, conference),
        sent=sent,
        answered_at=invitation.answered_at,
        answered_by=(
            None
            if invitation.answered_by_id is None
            else (await session.get_one(Member, invitation.answered_by_id)).display_name
        ),
        round=conference.round,
        form_key=opened.link.form_key,
        zone=await zone_of_conference(session, conference),
    )


@dataclass(frozen=True)
class GuestAnswered:
    """What a guest's answer changed, for the chat to show: the poll messages of the invitation
    (the coordinator's, who can enter the guest's answers too), the board, and the offer of the
    best time when every required invitee has answered."""

    others: list[PollView]
    board: Board
    offer: Board | None


async def answer_poll(
    session: AsyncSession,
    opened: Opened,
    round_: int,
    votes: Mapping[int, Vote | None],
    *,
    now: datetime,
) -> GuestAnswered:
    """The guest's answer to the poll (a time left unmarked is a no), replacing an earlier one."""
    if opened.link.purpose is not LinkPurpose.POLL:
        raise BadLink("unknown")
    conference, invitation = opened.conference, opened.invitation
    await polls.lock_round(session, conference, invitation, round_, now=now)
    slots = [slot.id for slot in await current_slots(session, conference)]
    others, board, offer = await polls.store_answer(
        session,
        conference,
        invitation,
        {slot: votes.get(slot) for slot in slots},
        answered_by=None,
        now=now,
    )
    await audit.acted(
        session,
        None,
        "conference.answered",
        conference,
        at=now,
        invitation=invitation.id,
        channel="web",
    )
    return GuestAnswered(others, board, offer)


# The invitation.


@dataclass(frozen=True)
class GuestInvitation:
    """The invitation to the time decided, as a guest's page shows it."""

    case_code: str
    kind: ConferenceKind
    guest: str
    starts_at: datetime
    minutes: int
    place: str
    inviter: Inviter
    rsvp: Rsvp
    sequence: int
    form_key: str
    zone: ZoneInfo


async def guest_invitation(session: AsyncSession, opened: Opened) -> GuestInvitation:
    if opened.link.purpose is not LinkPurpose.INVITATION:
        raise BadLink("unknown")
    conference, invitation = opened.conference, opened.invitation
    assert conference.starts_at is not None  # a link of this purpose opens only then
    return GuestInvitation(
        case_code=(await session.get_one(Case, conference.case_id)).code,
        kind=(await method_of(session, conference.id)).kind,
        guest=await invitation_mail.guest_name(session, invitation),
        starts_at=conference.starts_at,
        minutes=conference.duration_minutes,
        place=conference.place,
        inviter=await inviter_of(session, conference),
        rsvp=invitation.rsvp,
        sequence=conference.sequence,
        form_key=opened.link.form_key,
        zone=await zone_of_conference(session, conference),
    )


async def answer_invitation(
    session: AsyncSession,
    opened: Opened,
    sequence: int,
    rsvp: Rsvp,
    reason: str | None,
    *,
    cipher: Cipher,
    now: datetime,
) -> Board:
    """Accept, tentative or decline (with an optional reason, kept encrypted for the
    coordinator), as a calendar's reply would (`replies.record_answer`); returns the board."""
    if opened.link.purpose is not LinkPurpose.INVITATION or rsvp is Rsvp.PENDING:
        raise BadLink("unknown")
    conference, invitation = opened.conference, opened.invitation
    await session.refresh(conference, with_for_update=True)
    if conference.cancelled_at is not None:  # in the meantime
        raise BadLink("cancelled")
    if _current_round(conference, opened.link.purpose) != sequence:
        raise BadLink("used")
    await replies.record_answer(  # keeps a reason with a decline only, cut to REASON_MAX
        session,
        conference,
        invitation,
        rsvp,
        None,
        now=now,
        reason=(reason or "").strip() or None,
        cipher=cipher,
    )
    await audit.acted(
        session,
        None,
        "invitation.answered",
        invitation,
        at=now,
        answer=rsvp.value,
        channel="web",
    )
    return await board_of(session, conference)
