"""The coordinator's decision: the live board, fixing the time, and a new one when needed.

The board shows the answers and the best time (`scheduling.finder`). The coordinator confirms
it or another candidate, lets an invitee who blocks every time take part as optional, polls
the next window, or chooses a new time directly; a review conference is set at a date the table
agreed on. A time is checked against the coordinator's and the room's other conferences; once
set, `bot.services.invitations` invites everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.models import (
    Case,
    Conference,
    ConferenceSlot,
    ConferenceStatus,
    District,
    Institution,
    Invitation,
    InvitationKind,
    PollMessage,
)
from bot.services import audit, guests, invitation_mail, replies
from bot.services.board import (
    Board,
    NotInPoll,
    PollClosed,
    board_of,
    conference_subject,
    district_calendar,
    invitations_of,
    known_invitation,
    no_active_conference,
    own_case,
    own_conference,
    poll_targets,
    today_in,
)
from bot.services.invitations import StaleInvitation, invite_everyone
from bot.services.members import Actor
from bot.services.planning import (
    Defaults,
    NoCandidates,
    Started,
    candidate_times,
    guardian_links,
    poll_window,
    set_deadline,
)
from scheduling import policy


@dataclass(frozen=True)
class Scheduled:
    conference_id: int
    case_code: str
    starts_at: datetime
    minutes: int
    place: str
    board: Board


@dataclass(frozen=True)
class Collision:
    """The chosen time now clashes with another conference of the coordinator or the room."""

    other_code: str
    other_starts_at: datetime


@dataclass(frozen=True)
class Passed:
    """The chosen time is already past (an old offer tapped late)."""

    starts_at: datetime


@dataclass(frozen=True)
class TooFar:
    """A typed review date beyond policy.latest_review (a typo in the year, "31.12.9999")."""

    latest: date
    months: int = policy.REVIEW_AHEAD_MONTHS


# The board.


async def board(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime, polling: bool = False
) -> Board:
    """The board as the actor may see it; `polling`: only while the poll is open (choosing a
    time), else PollClosed."""
    conference = await own_conference(session, actor, conference_id, now=now)
    if polling:
        _require_polling(conference)
    return await board_of(session, conference)


def _require_polling(conference: Conference) -> None:
    if conference.status is not ConferenceStatus.POLLING:
        raise PollClosed("already decided")


async def board_to_decide(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> Board:
    """The board, for closing the poll early ("Decide now"): the offer that follows goes to the
    conference's coordinator, so only they may; a colleague's press is an audited refusal."""
    conference = await own_conference(session, actor, conference_id, now=now)
    if conference.coordinator_id != actor.member_id:
        raise audit.refused(actor, "conference.decide", "conference", conference_id, at=now)
    _require_polling(conference)
    return await board_of(session, conference)


async def fresh_board(session: AsyncSession, conference_id: int) -> Board:
    """The board as it is now (for redrawing; the caller already passed the permission check)."""
    return await board_of(session, await session.get_one(Conference, conference_id))


async def set_board(
    session: AsyncSession, conference_id: int, chat_id: int, message_id: int
) -> None:
    await session.execute(
        update(Conference)
        .where(Conference.id == conference_id)
        .values(board_chat_id=chat_id, board_message_id=message_id)
    )


# A time from the poll.


async def confirm(
    session: AsyncSession, actor: Actor, conference_id: int, slot_id: int, *, now: datetime
) -> Scheduled | Collision | Passed:
    """Fix the conference at one of its candidate times (the best, or one chosen anyway)."""
    conference = await own_conference(session, actor, conference_id, now=now)
    if conference.status is not ConferenceStatus.POLLING:
        raise PollClosed("already decided")
    slot = await session.get(ConferenceSlot, slot_id)
    if slot is None or slot.conference_id != conference.id or slot.round != conference.round:
        raise NotInPoll("the time is not in this poll any more")
    late = await _too_late(session, conference, slot.starts_at, now=now)
    if late is not None:
        return late
    done = await session.execute(
        update(Conference)
        .where(Conference.id == conference.id, Conference.status == ConferenceStatus.POLLING)
        .values(status=ConferenceStatus.SCHEDULED, starts_at=slot.starts_at, decided_at=now)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise PollClosed("already decided")
    await session.refresh(conference)
    return await _invite_at_time(
        session, actor, conference, "conference.scheduled", now=now, said_yes=slot.id
    )


async def _invite_at_time(
    session: AsyncSession,
    actor: Actor,
    conference: Conference,
    action: str,
    *,
    now: datetime,
    said_yes: int | None = None,
    **details: object,
) -> Scheduled:
    """A conference that has its time: everyone invited, the time audited, the coordinator told.
    Invitations go out through the outbox, planned in this transaction: nothing is lost. A time
    from the poll (`said_yes`: its slot) counts a "yes" to it as accepting the invitation; a new
    time chosen directly asks everyone (nobody answered for it)."""
    assert conference.starts_at is not None
    await invite_everyone(session, conference, now=now)
    if said_yes is not None:
        await replies.accept_poll_yes(session, conference, said_yes, now=now)
    case = await session.get_one(Case, conference.case_id)
    starts_at = conference.starts_at.isoformat()
    await audit.acted(
        session, actor, action, conference, at=now, case=case.code, starts_at=starts_at, **details
    )
    return await scheduled(session, conference)


async def scheduled(session: AsyncSession, conference: Conference) -> Scheduled:
    """A conference that has its time, as the coordinator is told of it."""
    case = await session.get_one(Case, conference.case_id)
    assert conference.starts_at is not None
    return Scheduled(
        conference.id,
        case.code,
        conference.starts_at,
        conference.duration_minutes,
        conference.place,
        await board_of(session, conference),
    )


async def _too_late(
    session: AsyncSession, conference: Conference, starts_at: datetime, *, now: datetime
) -> Passed | Collision | None:
    """Why the conference cannot be at `starts_at` any more, if it cannot."""
    if starts_at <= now:
        return Passed(starts_at)
    return await _clash(session, conference, starts_at)


async def _clash(
    session: AsyncSession, conference: Conference, starts_at: datetime
) -> Collision | None:
    start = int(starts_at.timestamp())
    end = start + conference.duration_minutes * 60
    rows = await session.execute(
        select(Conference, Case.code)
        .join(Case, Conference.case_id == Case.id)
        .where(
            Conference.district_id == conference.district_id,
            Conference.id != conference.id,
            Conference.status == ConferenceStatus.SCHEDULED,
            or_(
                Conference.coordinator_id == conference.coordinator_id,
                Conference.place == conference.place,
            ),
        )
    )
    for other, code in rows:
        assert other.starts_at is not None
        other_start = int(other.starts_at.timestamp())
        other_end = other_start + other.duration_minutes * 60
        if other_start < end and start < other_end:
            return Collision(code, other.starts_at)
    return None


async def make_optional(
    session: AsyncSession, actor: Actor, invitation_id: int, *, now: datetime
) -> Board:
    """A required invitee who blocks every time may take part as optional instead."""
    invitation = await known_invitation(
        session, actor, invitation_id, action="conference.make_optional", now=now
    )
    conference = await own_conference(session, actor, invitation.conference_id, now=now)
    # Locked as a poll answer locks it: the board returned is drawn after the other's change.
    await session.refresh(conference, with_for_update=True)
    if conference.status is not ConferenceStatus.POLLING:
        raise PollClosed("already decided")
    invitation.required = False
    await audit.acted(
        session, actor, "conference.made_optional", conference, at=now, invitation=invitation.id
    )
    await session.flush()
    return await board_of(session, conference)


async def next_window(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime, defaults: Defaults
) -> Started | NoCandidates:
    """A new poll over the working days after the old window; answers start afresh. For a
    scheduled conference (a new date is needed), the window starts from today; participants
    keep the old time in their calendars until the new one is set."""
    conference = await own_conference(session, actor, conference_id, now=now)
    await session.refresh(conference, with_for_update=True)
    if conference.status not in (ConferenceStatus.POLLING, ConferenceStatus.SCHEDULED):
        raise PollClosed("already decided")
    repoll = conference.status is ConferenceStatus.SCHEDULED
    district = await session.get_one(District, conference.district_id)
    calendar = district_calendar(district)
    length = len(calendar.working_days(conference.window_first, conference.window_last))
    today = calendar.local(now).date()
    if not repoll:
        today = max(conference.window_last, today)
    first, last = poll_window(calendar, today, 1, max(length, 1), now=now, defaults=defaults)
    invitations, institutions = await _invited(session, conference)
    before = (conference.window_first, conference.window_last, conference.deadline)
    conference.window_first, conference.window_last = first, last
    conference.deadline = calendar.add_working_days(now, defaults.deadline)
    starts = await candidate_times(
        session, district, conference, institutions, invitations, now=now, defaults=defaults
    )
    if not starts:
        conference.window_first, conference.window_last, conference.deadline = before
        return NoCandidates(first, last)
    await session.execute(
        delete(PollMessage).where(PollMessage.invitation_id.in_([i.id for i in invitations]))
    )
    for invitation in invitations:
        invitation.answered_by_id = None
        invitation.answered_at = None
    conference.round += 1
    if repoll:
        conference.status = ConferenceStatus.POLLING
        conference.starts_at = None
        conference.decided_at = conference.offered_at = conference.nudged_at = None
        # The reminders and nudges of the old time are moot.
        await outbox.cancel(session, subject=conference_subject(conference.id), now=now)
    session.add_all(
        ConferenceSlot(conference_id=conference.id, starts_at=s, round=conference.round)
        for s in starts
    )
    set_deadline(conference, district, now, defaults)
    await session.flush()
    await invitation_mail.plan_poll_mails(session, conference, now=now)
    # Guardians who have not joined yet get new links (the old ones end with the old round).
    links = await guardian_links(
        session,
        actor,
        district,
        conference,
        [i for i in invitations if i.kind is InvitationKind.GUARDIAN and i.member_id is None],
        now=now,
    )
    case = await session.get_one(Case, conference.case_id)
    await audit.acted(
        session,
        actor,
        "conference.next_window",
        conference,
        at=now,
        case=case.code,
        round=conference.round,
    )
    targets = await poll_targets(session, conference.id)
    return Started(conference.id, case.code, targets, links)


async def _invited(
    session: AsyncSession, conference: Conference
) -> tuple[list[Invitation], list[Institution]]:
    """A conference's invitations and the institutions among them."""
    invitations = await invitations_of(session, conference.id)
    institutions = list(
        await session.scalars(
            select(Institution).where(
                Institution.id.in_([i.institution_id for i in invitations if i.institution_id])
            )
        )
    )
    return invitations, institutions


# A time chosen directly: a new date for a scheduled conference, a review conference.


async def new_times(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime, defaults: Defaults
) -> list[datetime]:
    """Free times for a new date chosen directly (no poll): the window of a new plan, at the
    earliest a working day from now, clear of everyone's known busy times and bookings."""
    conference = await own_conference(session, actor, conference_id, now=now)
    if conference.status is not ConferenceStatus.SCHEDULED:
        raise PollClosed("not scheduled")
    district = await session.get_one(District, conference.district_id)
    calendar = district_calendar(district)
    invitations, institutions = await _invited(session, conference)
    kept = (conference.window_first, conference.window_last, conference.deadline)
    first, last = calendar.planning_window(
        calendar.local(now).date(), defaults.starts_after, defaults.window
    )
    # Candidates start a working day after the "deadline": here, a working day from now.
    conference.window_first, conference.window_last, conference.deadline = first, last, now
    try:
        starts = await candidate_times(
            session, district, conference, institutions, invitations, now=now, defaults=defaults
        )
    finally:
        conference.window_first, conference.window_last, conference.deadline = kept
    return [start for start in starts if start != conference.starts_at]


async def reschedule(
    session: AsyncSession, actor: Actor, conference_id: int, starts_at: datetime, *, now: datetime
) -> Scheduled | Collision | Passed:
    """A new time chosen directly: an updated invitation (same UID, SEQUENCE + 1) to all."""
    conference = await own_conference(session, actor, conference_id, now=now)
    await session.refresh(conference, with_for_update=True)
    if conference.status is not ConferenceStatus.SCHEDULED:
        raise StaleInvitation("not scheduled")
    late = await _too_late(session, conference, starts_at, now=now)
    if late is not None:
        return late
    before = conference.starts_at
    conference.starts_at = starts_at
    conference.decided_at = now
    previous = before.isoformat() if before else None
    return await _invite_at_time(
        session, actor, conference, "conference.rescheduled", now=now, previous=previous
    )


async def fix_review(
    session: AsyncSession,
    actor: Actor,
    held_id: int,
    starts_at: datetime,
    *,
    now: datetime,
    mail_enabled: bool,
) -> Scheduled | Collision | Passed | TooFar:
    """The review conference at a date the table agreed on (typed in the district's zone): the
    same invitees, no poll; its guests as `guests.current_guests` (none when mail is off, an
    institution's at its contact address as it is now)."""
    held = await own_conference(session, actor, held_id, now=now)
    case = await own_case(session, actor, held.case_id, now=now)
    await session.refresh(case, with_for_update=True)
    await no_active_conference(session, case)
    if held.status is not ConferenceStatus.HELD:
        raise PollClosed("not held")
    district = await session.get_one(District, held.district_id)
    # Days compared as typed, before any conversion: 31.12.9999 23:00 does not fit in UTC's
    # calendar everywhere, and the end time and reminders add to it.
    latest = policy.latest_review(today_in(district, now))
    if starts_at.date() > latest:
        return TooFar(latest)
    local = starts_at.date()
    conference = Conference(
        case_id=case.id,
        district_id=held.district_id,
        coordinator_id=actor.member_id,
        status=ConferenceStatus.SCHEDULED,
        duration_minutes=held.duration_minutes,
        place=held.place,
        window_first=local,
        window_last=local,
        deadline=now,
        nudge_at=now,
        nudged_at=now,
        offered_at=now,
        starts_at=starts_at,
        decided_at=now,
        created_at=now,
        round=1,
        review_of_id=held.id,
    )
    late = await _too_late(session, conference, starts_at, now=now)
    if late is not None:
        return late
    session.add(conference)
    await session.flush()
    invitations = await invitations_of(session, held.id)
    for old in invitations:
        if old.kind is InvitationKind.GUEST:
            continue
        session.add(
            Invitation(
                conference_id=conference.id,
                kind=old.kind,
                institution_id=old.institution_id,
                member_id=old.member_id,
                number=old.number,
                required=old.required,
            )
        )
    carried = await guests.current_guests(
        session, guests.guests_of(invitations), mail_enabled=mail_enabled
    )
    for invitation in guests.guest_invitations(carried):
        invitation.conference_id = conference.id
        session.add(invitation)
    await session.flush()
    return await _invite_at_time(
        session, actor, conference, "conference.scheduled", now=now, review_of=held.id
    )
