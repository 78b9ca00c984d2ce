"""The shared read model of a case conference, and who may act on it.

What every stage of a conference (planning, the poll, the decision, the calendar invitations)
reads the same way: the coordinator's board with its invitees and candidate times, who answers
for an invitation and how to reach them, the district's working calendar, and the permission
checks, whose refusals are audited. The errors that several stages raise are here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.db import preload
from bot.core.mail_tables import MailAddress
from bot.core.method_record import default_kind
from bot.core.method_tables import ConferenceKind, ConferenceMethod
from bot.core.models import (
    Case,
    CaseStatus,
    Conference,
    ConferenceSlot,
    ConferenceStatus,
    District,
    Institution,
    Invitation,
    InvitationKind,
    Member,
    Rsvp,
    SlotAnswer,
)
from bot.services import audit
from bot.services.errors import ServiceError
from bot.services.members import Actor
from scheduling.calendar import WorkingCalendar
from scheduling.finder import Best, NoCommonSlot, Vote, Voter, best_slot

ACTIVE = (ConferenceStatus.POLLING, ConferenceStatus.SCHEDULED)  # one at a time per case


class ConferenceError(ServiceError):
    """A conference request that cannot be carried out as asked."""


class PollClosed(ConferenceError):
    """The poll is over (decided, replaced or past its deadline): answers are no longer taken."""


class NotInPoll(ConferenceError):
    """A time from an earlier round of the poll (a stale button)."""


class AlreadyPlanned(ConferenceError):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Recipient:
    member_id: int
    chat_id: int
    locale: str
    name: str = ""


@dataclass(frozen=True)
class Target:
    """A poll message to send: who gets it, for which invitation."""

    invitation_id: int
    recipient: Recipient


@dataclass(frozen=True)
class Slot:
    id: int
    starts_at: datetime


@dataclass(frozen=True)
class Invitee:
    id: int
    kind: InvitationKind
    name: str  # the institution's or the guest's name; guardians are numbered instead
    number: int
    required: bool
    answered_by: str | None
    answered_at: datetime | None
    reachable: bool
    rsvp: Rsvp = Rsvp.PENDING  # the answer to the calendar invitation
    rsvp_by: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The finder's verdict, in slots and invitees."""

    best: Slot | None
    yes: int = 0
    if_need_be: tuple[Invitee, ...] = ()
    blockers: dict[int, tuple[Invitee, ...]] = field(default_factory=dict)  # slot id -> who


@dataclass(frozen=True)
class Board:
    """The coordinator's live view of a poll."""

    conference_id: int
    case_code: str
    status: ConferenceStatus
    deadline: datetime
    starts_at: datetime | None
    invitees: list[Invitee]
    slots: list[Slot]
    outcome: Outcome
    chat_id: int | None
    message_id: int | None
    locale: str
    round: int
    coordinator_id: int
    kind: ConferenceKind = ConferenceKind.INITIAL
    # Every invitee's answer to each time of the round: (invitation id, slot id) -> vote.
    answers: dict[tuple[int, int], Vote] = field(default_factory=dict)


def conference_subject(conference_id: int) -> str:
    """What the outbox files a conference's notifications under (to cancel them together):
    invitations, reminders, nudges of the poll."""
    return f"conference:{conference_id}"


# The working calendar of a district.


@lru_cache(maxsize=64)
def _calendar(zone: str, starts: time, ends: time) -> WorkingCalendar:
    return WorkingCalendar(zone=ZoneInfo(zone), day_starts=starts, day_ends=ends)


def district_calendar(district: District) -> WorkingCalendar:
    """The district's working days and hours, in its zone (one object per zone and hours)."""
    return _calendar(district.timezone, district.day_starts, district.day_ends)


def zone_of(district: District) -> ZoneInfo:
    return ZoneInfo(district.timezone)


def today_in(district: District, now: datetime) -> date:
    """The district's date at `now`."""
    return now.astimezone(zone_of(district)).date()


# Who may act: permission checks, with an audited refusal.


async def own_case(session: AsyncSession, actor: Actor, case_id: int, *, now: datetime) -> Case:
    """An open case of the actor's district, for its coordinators to plan a conference for."""
    case = await session.get(Case, case_id)
    if (
        case is None
        or not actor.coordinates(case.district_id)
        or case.status is not CaseStatus.OPEN
    ):
        raise audit.refused(actor, "conference.plan", "case", case_id, at=now)
    return case


async def own_conference(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> Conference:
    """A conference of the actor's district, for its coordinators."""
    conference = await session.get(Conference, conference_id)
    if conference is None or not actor.coordinates(conference.district_id):
        raise audit.refused(actor, "conference.manage", "conference", conference_id, at=now)
    return conference


async def known_invitation(
    session: AsyncSession, actor: Actor, invitation_id: int, *, action: str, now: datetime
) -> Invitation:
    """The invitation of that id; an unknown id is refused (and audited) as `action`."""
    invitation = await session.get(Invitation, invitation_id)
    if invitation is None:
        raise audit.refused(actor, action, "invitation", invitation_id, at=now)
    return invitation


async def no_active_conference(session: AsyncSession, case: Case) -> None:
    """A case has one conference at a time: none may be polling or scheduled already."""
    active = await session.scalar(
        select(Conference.id)
        .where(Conference.case_id == case.id, Conference.status.in_(ACTIVE))
        .limit(1)
    )
    if active is not None:
        raise AlreadyPlanned(case.code)


# The invitations, who answers for one, and how to reach them.


async def invitations_of(session: AsyncSession, conference_id: int) -> list[Invitation]:
    """A conference's invitations, in the order they were made."""
    return list(
        await session.scalars(
            select(Invitation)
            .where(Invitation.conference_id == conference_id)
            .order_by(Invitation.id)
        )
    )


async def answerers(
    session: AsyncSession, invitation: Invitation, conference: Conference
) -> list[Member]:
    """Who may answer for an invitation: the institution's active members (not the
    coordinator), the guardian who joined by the link; an offline guardian has none."""
    if invitation.kind is InvitationKind.INSTITUTION:
        query = (
            select(Member)
            .where(
                Member.institution_id == invitation.institution_id,
                Member.active.is_(True),
                Member.id != conference.coordinator_id,
            )
            .order_by(Member.id)
        )
        return list(await session.scalars(query))
    if invitation.kind is InvitationKind.GUARDIAN and invitation.member_id is not None:
        member = await session.get_one(Member, invitation.member_id)
        return [member] if member.active else []
    return []


async def recipient_of(session: AsyncSession, member_id: int) -> Recipient:
    return as_recipient(await session.get_one(Member, member_id))


def as_recipient(member: Member) -> Recipient:
    """Where and in which language a member gets a message."""
    return Recipient(member.id, member.chat_id, member.locale, member.display_name)


@dataclass(frozen=True)
class Inviter:
    """Who invites to a conference, as polls and invitations name them."""

    name: str  # the coordinator
    institution: str  # theirs


async def inviter_of(session: AsyncSession, conference: Conference) -> Inviter:
    coordinator = await session.get_one(Member, conference.coordinator_id)
    institution = await session.get_one(Institution, coordinator.institution_id)
    return Inviter(coordinator.display_name, institution.name)


async def coordinator_of(session: AsyncSession, conference_id: int) -> Recipient:
    conference = await session.get_one(Conference, conference_id)
    return as_recipient(await session.get_one(Member, conference.coordinator_id))


async def poll_targets(session: AsyncSession, conference_id: int) -> list[Target]:
    """Every reachable member who answers for an invitation."""
    conference = await session.get_one(Conference, conference_id)
    targets: list[Target] = []
    for invitation in await invitations_of(session, conference_id):
        people = await answerers(session, invitation, conference)
        targets += [
            Target(invitation.id, as_recipient(person)) for person in people if person.reachable
        ]
    return targets


# The coordinator's board: the invitees, the times of the current round, the best one.


async def board_of(session: AsyncSession, conference: Conference) -> Board:
    """The board as it is now (whoever calls has checked that the reader may see it)."""
    case = await session.get_one(Case, conference.case_id)
    coordinator = await session.get_one(Member, conference.coordinator_id)
    invitees = await invitee_views(session, await invitations_of(session, conference.id))
    slots = await current_slots(session, conference)
    answers = await _answers(session, invitees, slots)
    return Board(
        conference_id=conference.id,
        case_code=case.code,
        status=conference.status,
        deadline=conference.deadline,
        starts_at=conference.starts_at,
        invitees=invitees,
        slots=slots,
        outcome=_outcome(invitees, slots, answers),
        chat_id=conference.board_chat_id,
        message_id=conference.board_message_id,
        locale=coordinator.locale,
        round=conference.round,
        coordinator_id=coordinator.id,
        kind=(await method_of(session, conference.id)).kind,
        answers=answers,
    )


@dataclass(frozen=True)
class Method:
    """What every message about a conference says of its kind and goal (the goal itself is read
    on request: bot.services.method)."""

    kind: ConferenceKind
    has_goal: bool


# A conference planned before conferences had a kind and a goal.
NO_METHOD = Method(ConferenceKind.INITIAL, has_goal=False)


async def method_of(session: AsyncSession, conference_id: int) -> Method:
    row = await session.get(ConferenceMethod, conference_id)
    if row is None:  # planned before conferences had a kind and a goal
        return Method(default_kind(await session.get_one(Conference, conference_id)), False)
    return Method(row.kind, has_goal=row.goal is not None)


async def _answers(
    session: AsyncSession, invitees: list[Invitee], slots: list[Slot]
) -> dict[tuple[int, int], Vote]:
    """The invitees' answers to the round's times: (invitation id, slot id) -> vote."""
    wanted = {slot.id for slot in slots}
    if not invitees or not wanted:
        return {}
    rows = await session.execute(
        select(SlotAnswer.invitation_id, SlotAnswer.slot_id, SlotAnswer.vote).where(
            SlotAnswer.invitation_id.in_([invitee.id for invitee in invitees])
        )
    )
    return {(invitation, slot): Vote(vote) for invitation, slot, vote in rows if slot in wanted}


def _outcome(
    invitees: list[Invitee], slots: list[Slot], answers: dict[tuple[int, int], Vote]
) -> Outcome:
    by_id = {invitee.id: invitee for invitee in invitees}
    index = {slot.id: position for position, slot in enumerate(slots)}
    votes = {(invitation, index[slot]): vote for (invitation, slot), vote in answers.items()}
    voters = [Voter(invitee.id, invitee.required) for invitee in invitees]
    verdict = best_slot(len(slots), voters, votes)
    if isinstance(verdict, Best):
        return Outcome(
            best=slots[verdict.slot],
            yes=verdict.yes,
            if_need_be=tuple(by_id[key] for key in verdict.if_need_be),
        )
    assert isinstance(verdict, NoCommonSlot)
    return Outcome(
        best=None,
        blockers={
            slots[position].id: tuple(by_id[key] for key in keys)
            for position, keys in verdict.blockers.items()
        },
    )


async def current_slots(session: AsyncSession, conference: Conference) -> list[Slot]:
    """The times of the poll's current round, in time order."""
    rows = await session.scalars(
        select(ConferenceSlot)
        .where(
            ConferenceSlot.conference_id == conference.id,
            ConferenceSlot.round == conference.round,
        )
        .order_by(ConferenceSlot.starts_at)
    )
    return [Slot(row.id, row.starts_at) for row in rows]


async def invitee_views(session: AsyncSession, invitations: Sequence[Invitation]) -> list[Invitee]:
    """The invitations as the coordinator's board and the polls show them, in three queries
    for any number of them."""
    institution_ids = {row.institution_id for row in invitations if row.institution_id}
    await preload(session, Institution, institution_ids)
    await preload(
        session,
        Member,
        [row.member_id for row in invitations if row.kind is InvitationKind.GUARDIAN]
        + [row.answered_by_id for row in invitations]
        + [row.rsvp_by_id for row in invitations],
    )
    reachable = await _reachable_institutions(session, institution_ids)
    failing = await _failing_addresses(
        session, [row.email for row in invitations if row.kind is InvitationKind.GUEST]
    )
    return [await _invitee(session, row, reachable, failing) for row in invitations]


async def _failing_addresses(session: AsyncSession, addresses: list[str | None]) -> set[str]:
    """Those of the guests' addresses the mail server refused for good (lower case)."""
    wanted = {address.lower() for address in addresses if address}
    if not wanted:
        return set()
    rows = await session.scalars(select(MailAddress.address).where(MailAddress.address.in_(wanted)))
    return set(rows)


async def _reachable_institutions(session: AsyncSession, ids: Iterable[int]) -> set[int]:
    """Those of the institutions with an active member the bot can write to."""
    wanted = set(ids)
    if not wanted:
        return set()
    rows = await session.scalars(
        select(Member.institution_id)
        .where(
            Member.institution_id.in_(wanted),
            Member.active.is_(True),
            Member.reachable.is_(True),
        )
        .distinct()
    )
    return set(rows)


async def _invitee(
    session: AsyncSession, invitation: Invitation, reachable: set[int], failing: set[str]
) -> Invitee:
    # The rows were preloaded by invitee_views: these gets find them without a query.
    name = ""
    can_reach = True
    if invitation.institution_id is not None:
        name = (await session.get_one(Institution, invitation.institution_id)).name
        can_reach = invitation.institution_id in reachable
    if invitation.kind is InvitationKind.GUEST:
        # By e-mail: named by their institution or their own name, never by the address.
        name = invitation.guest_name or name
        can_reach = (invitation.email or "").lower() not in failing
    elif invitation.kind is InvitationKind.GUARDIAN and invitation.member_id is not None:
        member = await session.get_one(Member, invitation.member_id)
        can_reach = member.active and member.reachable
    answered_by = None
    if invitation.answered_by_id is not None:
        answered_by = (await session.get_one(Member, invitation.answered_by_id)).display_name
    rsvp_by = None
    if invitation.rsvp_by_id is not None:
        rsvp_by = (await session.get_one(Member, invitation.rsvp_by_id)).display_name
    return Invitee(
        id=invitation.id,
        kind=invitation.kind,
        name=name,
        number=invitation.number,
        required=invitation.required,
        answered_by=answered_by,
        answered_at=invitation.answered_at,
        reachable=can_reach,
        rsvp=invitation.rsvp,
        rsvp_by=rsvp_by,
    )


async def unreachable_institutions(session: AsyncSession, conference_id: int) -> dict[int, str]:
    """Invited institutions nobody in which can get a message now: invitation id -> name."""
    conference = await session.get_one(Conference, conference_id)
    invitations = await session.scalars(
        select(Invitation)
        .where(
            Invitation.conference_id == conference_id,
            Invitation.kind == InvitationKind.INSTITUTION,
        )
        .order_by(Invitation.id)
    )
    names: dict[int, str] = {}
    for invitation in invitations:
        people = await answerers(session, invitation, conference)
        if not any(person.reachable for person in people):
            institution = await session.get_one(Institution, invitation.institution_id)
            names[invitation.id] = institution.name
    return names
