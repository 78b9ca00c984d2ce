"""Replies to a calendar invitation: accept, tentative or decline, a reason, a colleague.

Anyone who may answer for an invitation replies for it, in the chat or from their calendar
(`bot.services.calendar_replies`, also a guest's); their reminders follow the reply
(`bot.services.invitations`). A decline is flagged to the coordinator at once, with its reason
if one is given (stored encrypted, shown to the coordinator only). An institution's invitation
can be handed to a colleague, who answers for it from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.crypto import Cipher
from bot.core.models import (
    Case,
    Conference,
    ConferenceStatus,
    Invitation,
    InvitationKind,
    InviteMessage,
    Member,
    Rsvp,
    SlotAnswer,
)
from bot.services import audit, invitation_mail
from bot.services.board import (
    Board,
    ConferenceError,
    Invitee,
    answerers,
    board_of,
    invitations_of,
    invitee_views,
    known_invitation,
)
from bot.services.invitation_views import InviteView, reason_of, view_of
from bot.services.invitations import (
    StaleInvitation,
    cancel_follow_ups,
    plan_flag,
    plan_invite,
    plan_reminders,
    revive_reminders,
)
from bot.services.members import Actor
from scheduling.finder import Vote

REASON_MAX = 300


class NotYours(ConferenceError):
    """Someone else answers for this invitation now (it was handed to a colleague)."""


@dataclass(frozen=True)
class Answered:
    view: InviteView
    messages: list[tuple[int, int, str]]  # chat, message, locale of every copy to redraw
    board: Board
    flagged: bool


@dataclass(frozen=True)
class Colleague:
    member_id: int
    name: str


async def answer(
    session: AsyncSession,
    actor: Actor,
    invitation_id: int,
    sequence: int,
    rsvp: Rsvp,
    *,
    now: datetime,
) -> Answered:
    """Accept, tentative or decline, for the actor's institution (or themselves)."""
    invitation, conference = await _answerable(session, actor, invitation_id, sequence, now=now)
    member = await session.get_one(Member, actor.member_id)
    flagged = await record_answer(session, conference, invitation, rsvp, member, now=now)
    await audit.acted(session, actor, "invitation.answered", invitation, at=now, answer=rsvp.value)
    return Answered(
        view=await view_of(session, conference, invitation, actor.member_id, now=now),
        messages=await copies(session, invitation.id, conference.sequence),
        board=await board_of(session, conference),
        flagged=flagged,
    )


async def record_answer(
    session: AsyncSession,
    conference: Conference,
    invitation: Invitation,
    rsvp: Rsvp,
    member: Member | None,
    *,
    now: datetime,
    reason: str | None = None,
    cipher: Cipher | None = None,
) -> bool:
    """An answer, whoever gave it and by which channel (the chat's button, or a calendar's reply
    read from the mailbox, `bot.services.calendar_replies`), once the caller has checked that it
    counts: the answer noted, the invitation's nudges cancelled, the reminders of those who come
    planned (revived after a decline), a new decline flagged to the coordinator. `member` is who
    answered, or None for a guest (not on Telegram: reminded by mail). A `reason` given with a
    decline is kept as `give_reason` keeps it. True when the decline was flagged."""
    before = invitation.rsvp
    invitation.rsvp = rsvp
    invitation.rsvp_by_id = member.id if member is not None else None
    invitation.rsvp_at = now
    invitation.delegate_id = member.id if member is not None else None
    if rsvp is not Rsvp.DECLINED:
        invitation.decline_reason = None
    # Nobody needs nudging about this invitation any more; the reminders follow the answer.
    await cancel_follow_ups(session, conference, invitation.id, now=now)
    if rsvp in (Rsvp.ACCEPTED, Rsvp.TENTATIVE):
        if member is not None:
            await plan_reminders(session, conference, invitation.id, member, now=now)
            await revive_reminders(session, conference, invitation.id, member.id)
        else:
            await invitation_mail.plan_guest_reminders(session, conference, invitation, now=now)
    flagged = rsvp is Rsvp.DECLINED and before is not Rsvp.DECLINED
    if flagged:
        await plan_flag(session, conference, invitation, "declined", now=now)
    if rsvp is Rsvp.DECLINED and reason:
        assert cipher is not None, "a reason is stored encrypted"
        await _keep_reason(session, conference, invitation, reason, cipher=cipher, now=now)
    return flagged


async def accept_poll_yes(
    session: AsyncSession, conference: Conference, slot_id: int, *, now: datetime
) -> int:
    """The time confirmed from the poll: an invitation whose poll answer for it was yes starts
    as accepted (as if whoever answered the poll had accepted: their reminders planned, the
    nudge to answer cancelled), a guest's too (entered by the coordinator: reminded by mail).
    The invitation still goes and the answer can be changed; the others are asked as before.
    Called once everyone is invited; returns how many were accepted."""
    yes = set(
        await session.scalars(
            select(SlotAnswer.invitation_id).where(
                SlotAnswer.slot_id == slot_id, SlotAnswer.vote == Vote.YES.value
            )
        )
    )
    accepted = 0
    for invitation in await invitations_of(session, conference.id):
        if invitation.id not in yes or invitation.answered_at is None:
            continue
        member = None  # a guest's or an offline guardian's answer, entered by the coordinator
        if invitation.kind in (InvitationKind.INSTITUTION, InvitationKind.GUARDIAN):
            if invitation.answered_by_id is None:
                continue
            member = await session.get_one(Member, invitation.answered_by_id)
            if not member.active:  # left since: the institution is asked as before
                continue
        await record_answer(session, conference, invitation, Rsvp.ACCEPTED, member, now=now)
        accepted += 1
    return accepted


async def give_reason(
    session: AsyncSession,
    actor: Actor,
    invitation_id: int,
    sequence: int,
    reason: str,
    *,
    cipher: Cipher,
    now: datetime,
) -> bool:
    """The optional reason for a decline: stored encrypted, shown to the coordinator only."""
    invitation, conference = await _answerable(session, actor, invitation_id, sequence, now=now)
    if invitation.rsvp is not Rsvp.DECLINED:
        raise StaleInvitation("not declined")
    await _keep_reason(session, conference, invitation, reason, cipher=cipher, now=now)
    return True


async def _keep_reason(
    session: AsyncSession,
    conference: Conference,
    invitation: Invitation,
    reason: str,
    *,
    cipher: Cipher,
    now: datetime,
) -> None:
    invitation.decline_reason = cipher.encrypt_json(reason[:REASON_MAX])
    await plan_flag(session, conference, invitation, "reason", now=now)


async def colleagues(
    session: AsyncSession, actor: Actor, invitation_id: int, sequence: int, *, now: datetime
) -> list[Colleague]:
    """The members of the actor's institution the invitation can be handed to."""
    invitation, conference = await _answerable(session, actor, invitation_id, sequence, now=now)
    return await _colleagues(session, actor, invitation, conference)


async def _colleagues(
    session: AsyncSession, actor: Actor, invitation: Invitation, conference: Conference
) -> list[Colleague]:
    if invitation.kind is not InvitationKind.INSTITUTION:
        return []
    people = await answerers(session, invitation, conference)
    return [Colleague(m.id, m.display_name) for m in people if m.id != actor.member_id]


async def hand_over(
    session: AsyncSession,
    actor: Actor,
    invitation_id: int,
    sequence: int,
    colleague_id: int,
    *,
    now: datetime,
) -> tuple[InviteView, str]:
    """The invitation goes to a colleague, who answers for it from now on."""
    invitation, conference = await _answerable(session, actor, invitation_id, sequence, now=now)
    allowed = {c.member_id for c in await _colleagues(session, actor, invitation, conference)}
    if colleague_id not in allowed:
        raise audit.refused(actor, "invitation.hand_over", "invitation", invitation_id, at=now)
    colleague = await session.get_one(Member, colleague_id)
    invitation.delegate_id = colleague.id
    invitation.rsvp = Rsvp.PENDING
    invitation.rsvp_by_id = None
    invitation.rsvp_at = None
    await cancel_follow_ups(session, conference, invitation.id, now=now)
    await plan_invite(
        session, conference, invitation.id, colleague, now=now, again=f"h{int(now.timestamp())}"
    )
    await audit.acted(session, actor, "invitation.handed_over", invitation, at=now, to=colleague.id)
    view = await view_of(session, conference, invitation, actor.member_id, now=now)
    return view, colleague.display_name


async def _answerable(
    session: AsyncSession, actor: Actor, invitation_id: int, sequence: int, *, now: datetime
) -> tuple[Invitation, Conference]:
    invitation = await known_invitation(
        session, actor, invitation_id, action="invitation.answer", now=now
    )
    conference = await session.get_one(Conference, invitation.conference_id, with_for_update=True)
    people = {m.id for m in await answerers(session, invitation, conference)}
    if actor.member_id not in people:
        raise audit.refused(actor, "invitation.answer", "invitation", invitation_id, at=now)
    if conference.status is not ConferenceStatus.SCHEDULED or conference.sequence != sequence:
        raise StaleInvitation("an earlier time")
    if conference.starts_at is not None and conference.starts_at <= now:
        raise StaleInvitation("over")
    if invitation.delegate_id is not None and invitation.delegate_id != actor.member_id:
        delegate = await session.get_one(Member, invitation.delegate_id)
        if delegate.active:
            raise NotYours(delegate.display_name)
    return invitation, conference


async def copies(
    session: AsyncSession, invitation_id: int, sequence: int
) -> list[tuple[int, int, str]]:
    """Where the invitation's messages of this time are: chat, message and the reader's locale
    (to redraw them all after an answer)."""
    rows = await session.execute(
        select(InviteMessage.chat_id, InviteMessage.message_id, Member.locale)
        .join(Member, InviteMessage.member_id == Member.id)
        .where(InviteMessage.invitation_id == invitation_id, InviteMessage.sequence == sequence)
    )
    return [(chat, message, locale) for chat, message, locale in rows]


# What the coordinator is told of a decline.


@dataclass(frozen=True)
class Flag:
    case_code: str
    conference_id: int
    starts_at: datetime | None
    invitee: Invitee  # rsvp_by: who declined
    what: str  # "declined" or "reason"
    reason: str | None
    current: bool  # still the answer (not changed since)


async def flag_view(
    session: AsyncSession, cipher: Cipher, conference_id: int, invitation_id: int, what: str
) -> Flag | None:
    conference = await session.get(Conference, conference_id)
    invitation = await session.get(Invitation, invitation_id)
    if conference is None or invitation is None:
        return None
    case = await session.get_one(Case, conference.case_id)
    return Flag(
        case_code=case.code,
        conference_id=conference.id,
        starts_at=conference.starts_at,
        invitee=(await invitee_views(session, [invitation]))[0],
        what=what,
        reason=reason_of(invitation, cipher),
        current=conference.status is ConferenceStatus.SCHEDULED
        and invitation.rsvp is Rsvp.DECLINED,
    )
