"""What goes by e-mail about a conference, planned as mail rows of the outbox (issue 22).

Beside the chat's rows (`bot.services.invitations`), in the same transaction and with keys of
their own: the iMIP invitation (each new time and hand-over too) to every invitee with an
address (members with a confirmed address get it as well as the chat message, which stays the
place to answer; guests not on Telegram get only mail; the coordinator too), the CANCEL to
every address that was mailed the invitation, a guest's reminders (2 days and 2 hours before),
and a guest's poll mail and its nudge. Addresses a mail server refused for good
(`MailAddress`) get nothing. Rows hold ids only; the mail is made when it is sent
(`bot.transport.mail.notices`), and a row for an earlier SEQUENCE or round is moot then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Unpack
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.models import (
    Case,
    Channel,
    Conference,
    ConferenceSlot,
    ConferenceStatus,
    District,
    Institution,
    Invitation,
    InvitationKind,
    Member,
    OutboxRow,
    OutboxStatus,
)
from bot.services import mailing
from bot.services.board import answerers, conference_subject, invitations_of
from scheduling import policy

MAIL_INVITE = "mail.invite"  # the iMIP REQUEST: the invitation, a new time, a hand-over
MAIL_CANCEL = "mail.cancel"  # the iMIP CANCEL, to every address mailed the invitation
MAIL_REMINDER = "mail.reminder"  # a guest's reminder, 2 days and 2 hours before
MAIL_POLL = "mail.poll"  # a guest's poll mail: the times offered; the coordinator will ask
MAIL_POLL_NUDGE = "mail.poll_nudge"  # the same, when the guest's answer is still missing
KINDS = (MAIL_INVITE, MAIL_CANCEL, MAIL_REMINDER, MAIL_POLL, MAIL_POLL_NUDGE)
_CANCEL_WORTH = timedelta(days=30)  # a CANCEL still makes sense while a calendar shows it


def key_prefix(conference: Conference) -> str:
    """Keys of a conference's rows about its current time (chat and mail) start with this."""
    return f"conference:{conference.id}:s{conference.sequence}:"


def round_prefix(conference: Conference) -> str:
    """Keys of a conference's rows about its current poll (chat and mail) start with this."""
    return f"conference:{conference.id}:r{conference.round}:"


def conference_row(
    conference: Conference,
    key: str,
    kind: str,
    member_id: int | None,
    *,
    prefix: str | None = None,
    **row: Unpack[outbox.Rest],
) -> outbox.Planned:
    """A row about a conference: its key after the prefix of the current time (`key_prefix`,
    or `prefix`), filed under the conference, so that cancelling the conference cancels it;
    `row` is the rest of `outbox.Planned` (due_at, payload, ...)."""
    key = f"{key_prefix(conference) if prefix is None else prefix}{key}"
    return outbox.Planned(key, kind, conference_subject(conference.id), member_id, **row)


def _payload(
    conference: Conference, invitation_id: int | None, **extra: object
) -> dict[str, object]:
    return {
        "conference": conference.id,
        "invitation": invitation_id,
        "sequence": conference.sequence,
        **extra,
    }


async def usable(session: AsyncSession, address: str | None) -> str | None:
    """The address, if there is one and no server refused it for good."""
    if not address:
        return None
    return None if await mailing.failing(session, address) else address


async def _mail_invitees(
    session: AsyncSession, invitation: Invitation, conference: Conference
) -> list[Member]:
    """Members who get an invitation's mail: as in the chat, the colleague it was handed to,
    else everyone who may answer for it (blocking the bot does not stop a mail)."""
    if invitation.delegate_id is not None:
        delegate = await session.get_one(Member, invitation.delegate_id)
        if delegate.active:
            return [delegate]
    return await answerers(session, invitation, conference)


async def plan_invitation_mails(
    session: AsyncSession,
    conference: Conference,
    invitation: Invitation,
    *,
    now: datetime,
    previous: datetime | None = None,
    again: str = "",
) -> None:
    """The invitation's mails for the current time: to each member who may answer for it and
    has an address, or to the guest (with the guest's reminders). `again`: a fresh key for a
    second invitation to the same time (a hand-over)."""
    assert conference.starts_at is not None
    suffix = f":{again}" if again else ""
    moment = policy.Moment("invite", now, conference.starts_at)
    extra = {"previous": previous.isoformat() if previous else None}
    guest = invitation.kind is InvitationKind.GUEST
    # (the member it goes to, None for the guest; their address)
    readers: list[tuple[int | None, str | None]] = (
        [(None, invitation.email)]
        if guest
        else [(m.id, m.email) for m in await _mail_invitees(session, invitation, conference)]
    )
    items = []
    for member_id, email in readers:
        address = await usable(session, email)
        if address is None:
            continue
        reader = "" if member_id is None else f":m{member_id}"
        items.append(
            _mail(
                conference,
                f"mail:invite:i{invitation.id}{reader}{suffix}",
                kind=MAIL_INVITE,
                member_id=member_id,
                address=address,
                moment=moment,
                payload=_payload(conference, invitation.id, **extra),
            )
        )
    await outbox.plan(session, items, now=now)
    if guest and items:
        await plan_guest_reminders(session, conference, invitation, now=now)


async def plan_chair_mail(
    session: AsyncSession,
    conference: Conference,
    coordinator: Member,
    *,
    now: datetime,
    previous: datetime | None = None,
) -> None:
    """The coordinator's own copy by mail, if they have an address."""
    assert conference.starts_at is not None
    address = await usable(session, coordinator.email)
    if address is None:
        return
    extra = {"previous": previous.isoformat() if previous else None}
    moment = policy.Moment("invite", now, conference.starts_at)
    await outbox.plan(
        session,
        [
            _mail(
                conference,
                "mail:invite:chair",
                kind=MAIL_INVITE,
                member_id=coordinator.id,
                address=address,
                moment=moment,
                payload=_payload(conference, None, **extra),
            )
        ],
        now=now,
    )


def _mail(
    conference: Conference,
    key: str,
    *,
    kind: str,
    member_id: int | None,
    address: str,
    moment: policy.Moment,
    payload: dict[str, object],
    prefix: str | None = None,
) -> outbox.Planned:
    return conference_row(
        conference,
        key,
        kind,
        member_id,
        due_at=moment.due,
        expires_at=moment.expires,
        payload=payload,
        prefix=prefix,
        channel=Channel.MAIL,
        address=address,
    )


def guest_prefix(conference: Conference, invitation_id: int) -> str:
    """Keys of a guest's reminders start with the invitation's prefix (so that
    `invitations.cancel_follow_ups` cancels them with the chat's)."""
    return f"{key_prefix(conference)}i{invitation_id}:mail:"


async def plan_guest_reminders(
    session: AsyncSession, conference: Conference, invitation: Invitation, *, now: datetime
) -> None:
    """A guest's reminders for the current time (2 days and 2 hours before), planned with the
    invitation and again when a guest who declined accepts (cancelled ones come back)."""
    if invitation.kind is not InvitationKind.GUEST or conference.starts_at is None:
        return
    address = await usable(session, invitation.email)
    if address is None:
        return
    prefix = guest_prefix(conference, invitation.id)
    await outbox.plan(
        session,
        [
            _mail(
                conference,
                f"remind-{moment.name}",
                kind=MAIL_REMINDER,
                member_id=None,
                address=address,
                moment=moment,
                payload=_payload(conference, invitation.id),
                prefix=prefix,
            )
            for moment in policy.conference_reminders(conference.starts_at, now)
        ],
        now=now,
    )
    revived = await session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.kind == MAIL_REMINDER,
            OutboxRow.status == OutboxStatus.CANCELLED,
            OutboxRow.key.startswith(prefix, autoescape=True),
            OutboxRow.due_at > now,
        )
        .values(status=OutboxStatus.PENDING, done_at=None, outcome=None)
    )
    if revived.rowcount:  # type: ignore[attr-defined]
        session.info[outbox.PLANNED] = True


async def plan_cancel_mails(
    session: AsyncSession, conference: Conference, *, now: datetime
) -> None:
    """The CANCEL (the conference's SEQUENCE already raised) to every address that was mailed
    an invitation to it (being sent or sent), once per address."""
    rows = await session.execute(
        select(OutboxRow.address, OutboxRow.member_id, OutboxRow.payload)
        .where(
            OutboxRow.subject == conference_subject(conference.id),
            OutboxRow.channel == Channel.MAIL,
            OutboxRow.kind == MAIL_INVITE,
            OutboxRow.status.in_([OutboxStatus.SENT, OutboxStatus.SENDING]),
        )
        .order_by(OutboxRow.id)
    )
    items: dict[str, outbox.Planned] = {}
    for address, member_id, payload in rows:
        if not address or (mailbox := mailing.normal(address)) in items:
            continue
        digest = hashlib.sha256(mailbox.encode()).hexdigest()[:16]
        items[mailbox] = _mail(
            conference,
            f"mail:cancel:{digest}",
            kind=MAIL_CANCEL,
            member_id=member_id,
            address=address,
            moment=policy.Moment("cancel", now, now + _CANCEL_WORTH),
            payload=_payload(conference, payload.get("invitation")),
        )
    await outbox.plan(session, items.values(), now=now)


# The poll: a guest's mail when a poll (or a new round) starts, and its nudge.


async def plan_poll_mails(session: AsyncSession, conference: Conference, *, now: datetime) -> None:
    """A mail to every guest of the conference's poll, for its current round."""
    await _plan_poll(session, conference, MAIL_POLL, "poll", now=now)


async def plan_poll_nudge_mails(
    session: AsyncSession, conference: Conference, *, now: datetime
) -> int:
    """At the poll's nudge moment: a mail to every guest whose availability the coordinator
    has not entered yet; returns how many were planned."""
    return await _plan_poll(session, conference, MAIL_POLL_NUDGE, "poll-nudge", now=now)


async def _plan_poll(
    session: AsyncSession, conference: Conference, kind: str, name: str, *, now: datetime
) -> int:
    items = []
    for invitation in await invitations_of(session, conference.id):
        if invitation.kind is not InvitationKind.GUEST or invitation.answered_at is not None:
            continue
        address = await usable(session, invitation.email)
        if address is None:
            continue
        payload = {"conference": conference.id, "invitation": invitation.id}
        items.append(
            _mail(
                conference,
                f"mail:{name}:i{invitation.id}",
                kind=kind,
                member_id=None,
                address=address,
                moment=policy.Moment(name, now, conference.deadline),
                payload={**payload, "round": conference.round},
                prefix=round_prefix(conference),
            )
        )
    await outbox.plan(session, items, now=now)
    return len(items)


@dataclass(frozen=True)
class PollMail:
    """A guest's poll mail as it is sent: the times offered in the district's zone."""

    case_code: str
    guest_name: str
    coordinator: str
    institution: str  # the coordinator's
    district: str
    minutes: int
    place: str
    zone: ZoneInfo
    times: tuple[datetime, ...]
    deadline: datetime


async def poll_mail(
    session: AsyncSession, conference_id: int, invitation_id: int, round_: int, *, now: datetime
) -> PollMail | None:
    """What a guest's poll mail (or nudge) says now; None once it is moot: another round, the
    poll over, the guest's availability entered, the invitation gone."""
    invitation = await session.get(Invitation, invitation_id)
    conference = await session.get(Conference, conference_id)
    if invitation is None or conference is None or invitation.conference_id != conference.id:
        return None
    if (
        conference.status is not ConferenceStatus.POLLING
        or conference.round != round_
        or conference.deadline <= now
        or invitation.answered_at is not None
    ):
        return None
    district = await session.get_one(District, conference.district_id)
    case = await session.get_one(Case, conference.case_id)
    coordinator = await session.get_one(Member, conference.coordinator_id)
    times = await session.scalars(
        select(ConferenceSlot.starts_at)
        .where(ConferenceSlot.conference_id == conference.id, ConferenceSlot.round == round_)
        .order_by(ConferenceSlot.starts_at)
    )
    return PollMail(
        case_code=case.code,
        guest_name=await guest_name(session, invitation),
        coordinator=coordinator.display_name,
        institution=(await session.get_one(Institution, coordinator.institution_id)).name,
        district=district.name,
        minutes=conference.duration_minutes,
        place=conference.place,
        zone=ZoneInfo(district.timezone),
        times=tuple(times),
        deadline=conference.deadline,
    )


async def guest_name(session: AsyncSession, invitation: Invitation) -> str:
    """A guest as a mail's To: names them: the person's name, else their institution's."""
    if invitation.guest_name:
        return invitation.guest_name
    if invitation.institution_id is not None:
        return (await session.get_one(Institution, invitation.institution_id)).name
    return ""


@dataclass(frozen=True)
class MailReader:
    """Who a mail row is for, as it is now: the name on the To: line and their language (None:
    a guest, who reads the deployment's default)."""

    name: str
    locale: str | None


async def reader_of(
    session: AsyncSession,
    member_id: int | None,
    invitation_id: int | None,
    address: str,
    *,
    current: bool = True,
) -> MailReader | None:
    """The reader of a mail to `address`; with `current`, None once the address is no longer
    theirs (a member's new address, a guest's address corrected): that mail is moot."""
    if member_id is not None:
        member = await session.get(Member, member_id)
        if member is None or (current and not mailing.same(member.email, address)):
            return None
        return MailReader(member.display_name, member.locale)
    invitation = await session.get(Invitation, invitation_id) if invitation_id else None
    if invitation is None or invitation.kind is not InvitationKind.GUEST:
        return None
    if current and not mailing.same(invitation.email, address):
        return None
    return MailReader(await guest_name(session, invitation), None)
