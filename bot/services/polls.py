"""The availability poll: answering it, the sweep's nudges and deadlines, and busy times.

Any member of an invited institution answers for it, a guardian who joined by link for
themselves, the coordinator for a guardian who is offline: taps put an answer together, Send
makes it the invitation's answer. Someone who joins while a poll is open gets it too. Busy
times from a member's calendar file count for their institution and turn to "no" in their open
polls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.db import insert_if_absent
from bot.core.models import (
    BusyTime,
    Case,
    Conference,
    ConferenceStatus,
    Invitation,
    InvitationKind,
    Member,
    PollMessage,
    SlotAnswer,
)
from bot.services import audit, invitation_mail
from bot.services.board import (
    NO_METHOD,
    Board,
    Invitee,
    Inviter,
    Method,
    NotInPoll,
    PollClosed,
    Recipient,
    Slot,
    Target,
    answerers,
    as_recipient,
    board_of,
    current_slots,
    invitee_views,
    inviter_of,
    method_of,
    poll_targets,
)
from bot.services.members import Actor
from scheduling.finder import Vote

# A time's mark in the answer being put together: not marked yet (None) → yes → if need be →
# no → not marked. A time left unmarked counts as no when the answer is sent.
CYCLE: dict[Vote | None, Vote | None] = {
    None: Vote.YES,
    Vote.YES: Vote.IF_NEED_BE,
    Vote.IF_NEED_BE: Vote.NO,
    Vote.NO: None,
}


@dataclass(frozen=True)
class PollView:
    """One invitation's poll, as one member sees it."""

    conference_id: int
    invitation: Invitee
    case_code: str
    minutes: int
    place: str
    inviter: Inviter
    deadline: datetime
    slots: list[Slot]
    votes: dict[int, Vote | None]  # slot id -> the answer being put together; None: unmarked
    sent: dict[int, Vote]  # slot id -> the answer sent for the invitation
    open: bool
    round: int
    chat_id: int
    message_id: int | None
    locale: str  # of the member whose message it is
    method: Method = NO_METHOD


@dataclass(frozen=True)
class Answered:
    view: PollView
    others: list[PollView]  # the same invitation's poll in other members' chats
    board: Board
    offer: Board | None  # every required invitee has answered: offer the best time


# Answering.


async def poll(
    session: AsyncSession, actor: Actor, invitation_id: int, *, now: datetime
) -> PollView:
    """An invitation's poll as the actor sees it (refused, and audited, to anyone else)."""
    invitation, conference = await _answerable(session, actor, invitation_id, now=now)
    message = await _message(session, invitation, actor)
    return await _poll_view(session, invitation, conference, message, now=now)


async def poll_of(session: AsyncSession, target: Target, *, now: datetime) -> PollView:
    """The poll as it is to be sent to a target (found by `poll_targets` or `open_polls`)."""
    invitation = await session.get_one(Invitation, target.invitation_id)
    conference = await session.get_one(Conference, invitation.conference_id)
    message = await _poll_message(
        session, invitation.id, target.recipient.member_id, target.recipient.chat_id
    )
    return await _poll_view(session, invitation, conference, message, now=now)


async def toggle(
    session: AsyncSession, actor: Actor, invitation_id: int, slot_id: int, *, now: datetime
) -> PollView:
    """One tap on a time: unmarked → yes → if need be → no → unmarked, in the answer being put
    together."""
    invitation, conference = await _answerable(session, actor, invitation_id, now=now)
    _require_open(conference, now)
    slots = await current_slots(session, conference)
    ids = [slot.id for slot in slots]
    if slot_id not in ids:
        raise NotInPoll("the time is not in this poll any more")
    message = await _message(session, invitation, actor)
    sent = await sent_votes(session, invitation.id)
    votes = _working(sent, message, ids)
    votes[slot_id] = CYCLE[votes[slot_id]]
    message.pending = _pending(votes)
    return await _poll_view(
        session, invitation, conference, message, now=now, slots=slots, sent=sent
    )


async def send_answer(
    session: AsyncSession, actor: Actor, invitation_id: int, round_: int, *, now: datetime
) -> Answered:
    """The answer put together is the invitation's answer now (it replaces an earlier one); a
    time left unmarked is a no. One at a time per poll (`lock_round`)."""
    invitation, conference = await _answerable(session, actor, invitation_id, now=now)
    await lock_round(session, conference, invitation, round_, now=now)
    slots = await _slot_ids(session, conference)
    message = await _message(session, invitation, actor)
    votes = await _working_votes(session, invitation, message, slots)
    message.pending = {}
    others, board, offer = await store_answer(
        session, conference, invitation, votes, answered_by=actor.member_id, now=now
    )
    await audit.acted(
        session, actor, "conference.answered", conference, at=now, invitation=invitation.id
    )
    view = await _poll_view(session, invitation, conference, message, now=now)
    return Answered(view, others, board, offer)


async def send_votes(
    session: AsyncSession,
    actor: Actor,
    invitation_id: int,
    round_: int,
    votes: Mapping[int, Vote | None],
    *,
    now: datetime,
) -> Answered:
    """A whole answer at once (the web page's grid): the times not in `votes`, and those left
    unmarked, are a no; then as `send_answer`."""
    invitation, conference = await _answerable(session, actor, invitation_id, now=now)
    _require_open(conference, now)
    message = await _message(session, invitation, actor)
    message.pending = _pending(
        {slot: votes.get(slot) for slot in await _slot_ids(session, conference)}
    )
    return await send_answer(session, actor, invitation_id, round_, now=now)


async def lock_round(
    session: AsyncSession,
    conference: Conference,
    invitation: Invitation,
    round_: int,
    *,
    now: datetime,
) -> None:
    """Before an answer is stored: the conference's row locked, so that answers to one poll are
    taken one at a time (two members sending at once, or the last two required invitees, never
    miss each other); refused unless the poll is open and `round_` is its round."""
    await session.refresh(conference, with_for_update=True)
    await session.refresh(invitation)
    _require_open(conference, now)
    if round_ != conference.round:
        raise NotInPoll("a button of an earlier round")


async def store_answer(
    session: AsyncSession,
    conference: Conference,
    invitation: Invitation,
    votes: Mapping[int, Vote | None],
    *,
    answered_by: int | None,
    now: datetime,
) -> tuple[list[PollView], Board, Board | None]:
    """The answer (a time unmarked is a no) is the invitation's now, replacing an earlier one;
    `answered_by` None: the guest's own, on the web page. Returns the poll messages of the
    invitation in other chats than the answerer's (to redraw), the board, and the board to
    offer when every required invitee has answered (once). After `lock_round`."""
    await session.execute(
        delete(SlotAnswer).where(
            SlotAnswer.invitation_id == invitation.id, SlotAnswer.slot_id.in_(list(votes))
        )
    )
    session.add_all(
        SlotAnswer(invitation_id=invitation.id, slot_id=slot, vote=(vote or Vote.NO).value)
        for slot, vote in votes.items()
    )
    invitation.answered_by_id = answered_by
    invitation.answered_at = now
    await session.flush()
    others = []
    query = select(PollMessage).where(PollMessage.invitation_id == invitation.id)
    if answered_by is not None:
        query = query.where(PollMessage.member_id != answered_by)
    for row in await session.scalars(query):
        others.append(await _poll_view(session, invitation, conference, row, now=now))
    board = await board_of(session, conference)
    offer = None
    if conference.offered_at is None and await _all_required_answered(session, conference.id):
        conference.offered_at = now
        offer = board
    return others, board, offer


async def _answerable(
    session: AsyncSession, actor: Actor, invitation_id: int, *, now: datetime
) -> tuple[Invitation, Conference]:
    invitation = await session.get(Invitation, invitation_id)
    conference = (
        None if invitation is None else await session.get(Conference, invitation.conference_id)
    )
    if invitation is None or conference is None or not _may_answer(actor, invitation, conference):
        raise audit.refused(actor, "conference.answer", "invitation", invitation_id, at=now)
    return invitation, conference


def _may_answer(actor: Actor, invitation: Invitation, conference: Conference) -> bool:
    if invitation.kind is InvitationKind.INSTITUTION:
        return (
            invitation.institution_id == actor.institution_id
            and actor.member_id != conference.coordinator_id
        )
    if invitation.kind is InvitationKind.GUARDIAN:
        return invitation.member_id == actor.member_id
    # An offline guardian's answers are entered by the conference's coordinator.
    return actor.member_id == conference.coordinator_id


def _require_open(conference: Conference, now: datetime) -> None:
    if conference.status is not ConferenceStatus.POLLING or now >= conference.deadline:
        raise PollClosed("the poll is over")


async def _slot_ids(session: AsyncSession, conference: Conference) -> list[int]:
    return [slot.id for slot in await current_slots(session, conference)]


async def _message(session: AsyncSession, invitation: Invitation, actor: Actor) -> PollMessage:
    return await _poll_message(session, invitation.id, actor.member_id, actor.chat_id)


async def _poll_message(
    session: AsyncSession, invitation_id: int, member_id: int, chat_id: int
) -> PollMessage:
    """The member's poll message row for an invitation, created on first need (by whichever
    of two transactions comes first: the poll sent to the chat, the page opened)."""
    query = select(PollMessage).where(
        PollMessage.invitation_id == invitation_id, PollMessage.member_id == member_id
    )
    row = await session.scalar(query)
    if row is None:
        # Also when the other transaction is making it at this moment: then theirs it is.
        values = {"invitation_id": invitation_id, "member_id": member_id, "chat_id": chat_id}
        await insert_if_absent(
            session, PollMessage, {**values, "pending": {}}, ["invitation_id", "member_id"]
        )
        row = (await session.scalars(query)).one()
    return row


async def record_message(
    session: AsyncSession, invitation_id: int, recipient: Recipient, message_id: int
) -> None:
    """Where a member's poll message is, so that it can be edited when others answer."""
    row = await _poll_message(session, invitation_id, recipient.member_id, recipient.chat_id)
    row.chat_id = recipient.chat_id
    row.message_id = message_id


async def sent_votes(session: AsyncSession, invitation_id: int) -> dict[int, Vote]:
    rows = await session.execute(
        select(SlotAnswer.slot_id, SlotAnswer.vote).where(SlotAnswer.invitation_id == invitation_id)
    )
    return {slot: Vote(vote) for slot, vote in rows}


async def _working_votes(
    session: AsyncSession, invitation: Invitation, message: PollMessage, slots: Sequence[int]
) -> dict[int, Vote | None]:
    return _working(await sent_votes(session, invitation.id), message, slots)


def _working(
    sent: dict[int, Vote], message: PollMessage, slots: Sequence[int]
) -> dict[int, Vote | None]:
    """The answer being put together: what this member tapped (also back to unmarked), else
    what was sent, else unmarked (None)."""
    pending = {
        int(key): Vote(value) if value else None for key, value in (message.pending or {}).items()
    }
    return {slot: pending[slot] if slot in pending else sent.get(slot) for slot in slots}


def _pending(votes: dict[int, Vote | None]) -> dict[str, str | None]:
    """The answer being put together, as the poll message's row keeps it."""
    return {str(key): value.value if value else None for key, value in votes.items()}


async def _poll_view(
    session: AsyncSession,
    invitation: Invitation,
    conference: Conference,
    message: PollMessage,
    *,
    now: datetime,
    slots: list[Slot] | None = None,
    sent: dict[int, Vote] | None = None,
) -> PollView:
    """`slots` and `sent`, where the caller has just read them, save reading them again."""
    case = await session.get_one(Case, conference.case_id)
    if slots is None:
        slots = await current_slots(session, conference)
    if sent is None:
        sent = await sent_votes(session, invitation.id)
    return PollView(
        conference_id=conference.id,
        invitation=(await invitee_views(session, [invitation]))[0],
        case_code=case.code,
        minutes=conference.duration_minutes,
        place=conference.place,
        inviter=await inviter_of(session, conference),
        deadline=conference.deadline,
        slots=slots,
        votes=_working(sent, message, [slot.id for slot in slots]),
        sent=sent,
        open=conference.status is ConferenceStatus.POLLING and now < conference.deadline,
        round=conference.round,
        chat_id=message.chat_id,
        message_id=message.message_id,
        locale=(await session.get_one(Member, message.member_id)).locale,
        method=await method_of(session, conference.id),
    )


async def _all_required_answered(session: AsyncSession, conference_id: int) -> bool:
    waiting = await session.scalar(
        select(Invitation.id)
        .where(
            Invitation.conference_id == conference_id,
            Invitation.required.is_(True),
            Invitation.answered_at.is_(None),
        )
        .limit(1)
    )
    return waiting is None


# Open polls of a person who just joined (a guardian by link, or a new member of an invited
# institution), and the sweep's work: nudges and deadlines.


async def open_polls(session: AsyncSession, actor: Actor, *, now: datetime) -> list[Target]:
    """Polls the actor may answer that have not reached their chat yet."""
    conditions = [Invitation.institution_id == actor.institution_id]
    conditions.append(Invitation.member_id == actor.member_id)
    rows = await session.execute(
        select(Invitation)
        .join(Conference, Invitation.conference_id == Conference.id)
        .where(
            Conference.status == ConferenceStatus.POLLING,
            Conference.deadline > now,
            Conference.coordinator_id != actor.member_id,
            or_(*conditions),
        )
    )
    targets = []
    for (invitation,) in rows:
        sent = await session.scalar(
            select(PollMessage.id).where(
                PollMessage.invitation_id == invitation.id,
                PollMessage.member_id == actor.member_id,
                PollMessage.message_id.is_not(None),
            )
        )
        if sent is None:
            targets.append(
                Target(
                    invitation.id,
                    Recipient(actor.member_id, actor.chat_id, actor.locale, actor.display_name),
                )
            )
    return targets


POLL_NUDGE = "poll.nudge"


@dataclass(frozen=True)
class PollWork:
    nudged: int  # poll messages planned in the outbox
    offers: list[Board]

    def __bool__(self) -> bool:
        return bool(self.nudged or self.offers)


async def due_polls(session: AsyncSession, *, now: datetime) -> PollWork:
    """Once per poll: a nudge to who has not answered a working day before the deadline
    (planned in the outbox, so it survives a crash), and the offer of the best time to the
    coordinator when the deadline has passed."""
    nudged = 0
    rows = await session.scalars(
        select(Conference).where(
            Conference.status == ConferenceStatus.POLLING,
            Conference.nudged_at.is_(None),
            Conference.nudge_at <= now,
            Conference.deadline > now,
        )
    )
    for conference in rows:
        conference.nudged_at = now
        targets = await poll_targets(session, conference.id)
        unanswered = set(
            await session.scalars(
                select(Invitation.id).where(
                    Invitation.conference_id == conference.id, Invitation.answered_at.is_(None)
                )
            )
        )
        waiting = [target for target in targets if target.invitation_id in unanswered]
        await outbox.plan(
            session,
            [
                invitation_mail.conference_row(
                    conference,
                    f"poll-nudge:i{target.invitation_id}:m{target.recipient.member_id}",
                    POLL_NUDGE,
                    target.recipient.member_id,
                    prefix=invitation_mail.round_prefix(conference),
                    due_at=now,
                    expires_at=conference.deadline,
                    payload={
                        "conference": conference.id,
                        "invitation": target.invitation_id,
                        "round": conference.round,
                    },
                )
                for target in waiting
            ],
            now=now,
        )
        nudged += len(waiting)
        nudged += await invitation_mail.plan_poll_nudge_mails(session, conference, now=now)
    offers = []
    rows = await session.scalars(
        select(Conference).where(
            Conference.status == ConferenceStatus.POLLING,
            Conference.offered_at.is_(None),
            Conference.deadline <= now,
        )
    )
    for conference in rows:
        conference.offered_at = now
        offers.append(await board_of(session, conference))
    return PollWork(nudged, offers)


async def nudge_target(
    session: AsyncSession, invitation_id: int, member_id: int, round_: int, *, now: datetime
) -> Target | None:
    """The poll message a nudge brings again, if it still makes sense: same round, poll open,
    no answer yet, and the member still answers for the invitation."""
    invitation = await session.get(Invitation, invitation_id)
    if invitation is None or invitation.answered_at is not None:
        return None
    conference = await session.get_one(Conference, invitation.conference_id)
    if (
        conference.status is not ConferenceStatus.POLLING
        or conference.round != round_
        or conference.deadline <= now
    ):
        return None
    for member in await answerers(session, invitation, conference):
        if member.id == member_id and member.reachable:
            return Target(invitation.id, as_recipient(member))
    return None


# Busy times from a member's calendar file.


async def save_busy(
    session: AsyncSession,
    actor: Actor,
    intervals: list[tuple[int, int]],
    *,
    now: datetime,
    until: datetime,
) -> None:
    """Replace the member's busy times (only start and end times are kept)."""
    await session.execute(delete(BusyTime).where(BusyTime.member_id == actor.member_id))
    session.add(
        BusyTime(
            member_id=actor.member_id,
            intervals=[[start, end] for start, end in intervals],
            imported_at=now,
            until=until,
        )
    )
    await audit.on_self(
        session, actor.member_id, "busy_times.imported", at=now, count=len(intervals)
    )


async def forget_busy(session: AsyncSession, actor: Actor, *, now: datetime) -> bool:
    result = await session.execute(delete(BusyTime).where(BusyTime.member_id == actor.member_id))
    if result.rowcount:  # type: ignore[attr-defined]
        await audit.on_self(session, actor.member_id, "busy_times.forgotten", at=now)
        return True
    return False


async def mark_busy_in_polls(
    session: AsyncSession, actor: Actor, intervals: list[tuple[int, int]], *, now: datetime
) -> list[PollView]:
    """In the actor's open polls, times their calendar shows busy become "no" in the answer
    being put together; the views to redraw are returned."""
    views = []
    for target in await _my_open_invitations(session, actor, now=now):
        invitation, conference = await _answerable(session, actor, target, now=now)
        slots = await current_slots(session, conference)
        message = await _message(session, invitation, actor)
        votes = await _working_votes(session, invitation, message, [s.id for s in slots])
        changed = False
        for slot in slots:
            start = int(slot.starts_at.timestamp())
            end = start + conference.duration_minutes * 60
            if votes[slot.id] is not Vote.NO and any(
                b0 < end and start < b1 for b0, b1 in intervals
            ):
                votes[slot.id] = Vote.NO
                changed = True
        if changed:
            message.pending = _pending(votes)
            views.append(await _poll_view(session, invitation, conference, message, now=now))
    return views


async def _my_open_invitations(session: AsyncSession, actor: Actor, *, now: datetime) -> list[int]:
    rows = await session.scalars(
        select(PollMessage.invitation_id)
        .join(Invitation, PollMessage.invitation_id == Invitation.id)
        .join(Conference, Invitation.conference_id == Conference.id)
        .where(
            PollMessage.member_id == actor.member_id,
            # A guardian's or a guest's answers, not the actor's.
            Invitation.kind.not_in((InvitationKind.OFFLINE, InvitationKind.GUEST)),
            Conference.status == ConferenceStatus.POLLING,
            Conference.deadline > now,
        )
    )
    return list(rows)
