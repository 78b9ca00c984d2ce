"""Case conferences: planning one, the availability poll, and settling on a date.

A coordinator plans a conference for an open case: the institutions to invite (required or
optional), guardians, length, place and window. Starting the poll picks up to eight candidate
times (`scheduling.slots`), avoiding the coordinator's and the room's other conferences and the
invitees' busy times. Any member of an invited institution answers for it; the best time is
chosen by `scheduling.finder`. Permission checks are here; the handlers only talk Telegram.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.config import Settings
from bot.core.crypto import Cipher
from bot.core.db import preload
from bot.core.models import (
    BusyTime,
    Case,
    CaseStatus,
    Conference,
    ConferenceSlot,
    ConferenceStatus,
    District,
    Institution,
    InstitutionKind,
    Invitation,
    InvitationKind,
    InviteCode,
    Member,
    PollMessage,
    Referral,
    Role,
    Rsvp,
    SlotAnswer,
)
from bot.services import audit
from bot.services.errors import PermissionDenied, ServiceError
from bot.services.members import Actor, ensure_institution, hash_code
from scheduling import policy
from scheduling.calendar import WorkingCalendar, WorkingHours
from scheduling.finder import Best, NoCommonSlot, Vote, Voter, best_slot
from scheduling.slots import InviteeBusy, SlotRequest, candidates

# Which institutions a referral's concerns call for (pre-ticked in the plan).
CALLED_FOR: dict[str, tuple[InstitutionKind, ...]] = {
    "truancy": (InstitutionKind.SCHOOL, InstitutionKind.OSPOD, InstitutionKind.PPP),
    "bullying": (InstitutionKind.SCHOOL, InstitutionKind.PPP, InstitutionKind.OSPOD),
    "aggression": (
        InstitutionKind.SCHOOL,
        InstitutionKind.PPP,
        InstitutionKind.OSPOD,
        InstitutionKind.POLICE,
    ),
    "drugs": (InstitutionKind.SCHOOL, InstitutionKind.OSPOD, InstitutionKind.NGO),
    "alcohol": (InstitutionKind.SCHOOL, InstitutionKind.OSPOD, InstitutionKind.NGO),
    "tobacco": (InstitutionKind.SCHOOL, InstitutionKind.PPP),
    "self_harm": (InstitutionKind.SCHOOL, InstitutionKind.OSPOD, InstitutionKind.DOCTOR),
    "eating": (InstitutionKind.SCHOOL, InstitutionKind.DOCTOR, InstitutionKind.PPP),
    "abuse": (InstitutionKind.OSPOD, InstitutionKind.POLICE, InstitutionKind.DOCTOR),
    "domestic_violence": (InstitutionKind.OSPOD, InstitutionKind.POLICE, InstitutionKind.SCHOOL),
    "sexual": (InstitutionKind.OSPOD, InstitutionKind.POLICE, InstitutionKind.DOCTOR),
    "theft": (
        InstitutionKind.POLICE,
        InstitutionKind.PMS,
        InstitutionKind.OSPOD,
        InstitutionKind.PROSECUTOR,
    ),
    "crime": (
        InstitutionKind.POLICE,
        InstitutionKind.PMS,
        InstitutionKind.OSPOD,
        InstitutionKind.PROSECUTOR,
    ),
    "running_away": (InstitutionKind.OSPOD, InstitutionKind.POLICE, InstitutionKind.SCHOOL),
    "gambling": (InstitutionKind.SCHOOL, InstitutionKind.PPP, InstitutionKind.NGO),
    "netolism": (InstitutionKind.SCHOOL, InstitutionKind.PPP),
    "extremism": (InstitutionKind.POLICE, InstitutionKind.SCHOOL, InstitutionKind.OSPOD),
    "other": (InstitutionKind.SCHOOL, InstitutionKind.OSPOD),
}
# Pre-ticked institutions of these kinds are required; the others (NGO, doctor, ...) optional.
REQUIRED_KINDS = frozenset(
    {
        InstitutionKind.OSPOD,
        InstitutionKind.SCHOOL,
        InstitutionKind.POLICE,
        InstitutionKind.PPP,
        InstitutionKind.PMS,
        InstitutionKind.PROSECUTOR,
    }
)
DURATIONS = (60, 90, 120, 180)
MAX_GUARDIANS = 4
MAX_PLACE = 200
GUARDIANS_INSTITUTION = "Guardians"
ACTIVE = (ConferenceStatus.POLLING, ConferenceStatus.SCHEDULED)
CYCLE = {Vote.NO: Vote.YES, Vote.YES: Vote.IF_NEED_BE, Vote.IF_NEED_BE: Vote.NO}


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
class Defaults:
    """The deployment's defaults for a plan (bot.core.config.Settings)."""

    minutes: int = 90
    starts_after: int = 2
    window: int = 15
    deadline: int = 3
    buffer: int = 15
    slots: int = 8

    @classmethod
    def of(cls, settings: Settings) -> Defaults:
        return cls(
            minutes=settings.conference_minutes,
            starts_after=settings.poll_starts_after_days,
            window=settings.poll_window_days,
            deadline=settings.poll_deadline_days,
            buffer=settings.conference_buffer_minutes,
            slots=settings.poll_slots,
        )


@dataclass
class Plan:
    """The coordinator's plan before the poll starts (kept with the dialog's state)."""

    case_id: int
    invited: dict[int, bool]  # institution id -> required
    guardians: list[str] = field(default_factory=list)  # "link" or "offline" each
    minutes: int = 90
    place: str = ""
    starts_after: int = 2
    window: int = 15

    def to_data(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "invited": {str(key): value for key, value in self.invited.items()},
            "guardians": list(self.guardians),
            "minutes": self.minutes,
            "place": self.place,
            "starts_after": self.starts_after,
            "window": self.window,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Plan:
        return cls(
            case_id=int(data["case_id"]),
            invited={int(key): bool(value) for key, value in data["invited"].items()},
            guardians=[str(kind) for kind in data.get("guardians", [])],
            minutes=int(data["minutes"]),
            place=str(data["place"]),
            starts_after=int(data["starts_after"]),
            window=int(data["window"]),
        )


@dataclass(frozen=True)
class Choice:
    institution_id: int
    name: str
    kind: InstitutionKind


@dataclass(frozen=True)
class PlanView:
    case_code: str
    choices: list[Choice]
    first_day: date
    last_day: date


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
class GuardianLink:
    number: int
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class Started:
    conference_id: int
    case_code: str
    targets: list[Target]
    links: list[GuardianLink]


@dataclass(frozen=True)
class NoCandidates:
    """Nothing in the window is free: the coordinator's calendar, the room or the invitees."""

    first_day: date
    last_day: date


@dataclass(frozen=True)
class Slot:
    id: int
    starts_at: datetime


@dataclass(frozen=True)
class Invitee:
    id: int
    kind: InvitationKind
    name: str  # the institution's name; guardians are numbered instead
    number: int
    required: bool
    answered_by: str | None
    answered_at: datetime | None
    reachable: bool
    rsvp: Rsvp = Rsvp.PENDING  # the answer to the calendar invitation
    rsvp_by: str | None = None


@dataclass(frozen=True)
class PollView:
    """One invitation's poll, as one member sees it."""

    conference_id: int
    invitation: Invitee
    case_code: str
    minutes: int
    place: str
    deadline: datetime
    slots: list[Slot]
    votes: dict[int, Vote]  # slot id -> the answer being put together (pending or sent)
    sent: dict[int, Vote]  # slot id -> the answer sent for the invitation
    open: bool
    round: int
    chat_id: int
    message_id: int | None
    locale: str  # of the member whose message it is


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


@dataclass(frozen=True)
class Answered:
    view: PollView
    others: list[PollView]  # the same invitation's poll in other members' chats
    board: Board
    offer: Board | None  # every required invitee has answered: offer the best time


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


# The working calendar of a district.


@lru_cache(maxsize=64)
def _calendar(zone: str, starts: time, ends: time) -> WorkingCalendar:
    return WorkingCalendar(zone=ZoneInfo(zone), day_starts=starts, day_ends=ends)


def district_calendar(district: District) -> WorkingCalendar:
    return _calendar(district.timezone, district.day_starts, district.day_ends)


def _hours(district: District, institutions: Iterable[Institution]) -> WorkingHours | None:
    """The district's hours narrowed by each invited institution's own."""
    hours: WorkingHours | None = WorkingHours(district.day_starts, district.day_ends)
    for institution in institutions:
        if hours is None:
            return None
        hours = hours.intersect(
            WorkingHours(
                institution.day_starts or district.day_starts,
                institution.day_ends or district.day_ends,
            )
        )
    return hours


# Planning.


async def new_plan(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    case_id: int,
    *,
    now: datetime,
    defaults: Defaults,
) -> Plan:
    """A plan with everything defaulted: institutions pre-ticked by the referral's concerns."""
    case = await _own_case(session, actor, case_id, now=now)
    await _no_active_conference(session, case)
    choices = await _choices(session, actor)
    kinds: set[InstitutionKind] = {InstitutionKind.OSPOD}
    referral = await session.get(Referral, case.referral_id) if case.referral_id else None
    categories: list[str] = []
    if referral is not None:
        categories = list(cipher.decrypt_json(referral.sealed).get("categories", []))
    for category in categories:
        kinds.update(CALLED_FOR.get(category, ()))
    invited: dict[int, bool] = {}
    for choice in choices:
        if choice.kind is InstitutionKind.SCHOOL:
            # Of the district's schools, the referring one.
            if referral is not None and choice.institution_id == referral.institution_id:
                invited[choice.institution_id] = True
        elif choice.kind in kinds:
            invited[choice.institution_id] = choice.kind in REQUIRED_KINDS
    district = await session.get_one(District, actor.district_id)
    plan = Plan(
        case_id=case.id,
        invited=invited,
        minutes=defaults.minutes,
        place=district.place or actor.institution_name,
        starts_after=defaults.starts_after,
        window=defaults.window,
    )
    held = await _last_held(session, case.id)
    if held is not None:
        await _as_review(session, plan, held, district, now=now)
    return plan


async def _last_held(session: AsyncSession, case_id: int) -> Conference | None:
    return await session.scalar(
        select(Conference)
        .where(Conference.case_id == case_id, Conference.status == ConferenceStatus.HELD)
        .order_by(Conference.starts_at.desc(), Conference.id.desc())
        .limit(1)
    )


async def _as_review(
    session: AsyncSession, plan: Plan, held: Conference, district: District, *, now: datetime
) -> None:
    """A review conference starts from the last one: the same table, length and place, and a
    window that ends by the review date (three months after) rather than in three weeks."""
    invitations = list(
        await session.scalars(
            select(Invitation).where(Invitation.conference_id == held.id).order_by(Invitation.id)
        )
    )
    plan.invited = {
        i.institution_id: i.required
        for i in invitations
        if i.kind is InvitationKind.INSTITUTION and i.institution_id is not None
    }
    plan.guardians = [
        "offline" if i.kind is InvitationKind.OFFLINE else "link"
        for i in invitations
        if i.kind is not InvitationKind.INSTITUTION
    ]
    plan.minutes = held.duration_minutes
    plan.place = held.place
    if held.review_by is not None:
        calendar = district_calendar(district)
        today = calendar.local(now).date()
        left = len(calendar.working_days(today, held.review_by)) - 1
        plan.starts_after = max(plan.starts_after, left - plan.window)


async def fix_review(
    session: AsyncSession, actor: Actor, held_id: int, starts_at: datetime, *, now: datetime
) -> Scheduled | Collision | Passed | TooFar:
    """The review conference at a date the table agreed on (typed in the district's zone): the
    same invitees, no poll."""
    held = await _own_conference(session, actor, held_id, now=now)
    case = await _own_case(session, actor, held.case_id, now=now)
    await session.refresh(case, with_for_update=True)
    await _no_active_conference(session, case)
    if held.status is not ConferenceStatus.HELD:
        raise PollClosed("not held")
    district = await session.get_one(District, held.district_id)
    # Days compared as typed, before any conversion: 31.12.9999 23:00 does not fit in UTC's
    # calendar everywhere, and the end time and reminders add to it.
    latest = policy.latest_review(now.astimezone(ZoneInfo(district.timezone)).date())
    if starts_at.date() > latest:
        return TooFar(latest)
    if starts_at <= now:
        return Passed(starts_at)
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
    clash = await _clash(session, conference, starts_at)
    if clash is not None:
        return clash
    session.add(conference)
    await session.flush()
    for old in await session.scalars(
        select(Invitation).where(Invitation.conference_id == held.id).order_by(Invitation.id)
    ):
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
    await session.flush()
    from bot.services import invitations  # noqa: PLC0415 - it builds on this module

    await invitations.invite_everyone(session, conference, now=now)
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="conference.scheduled",
        subject_type="conference",
        subject_id=conference.id,
        case=case.code,
        starts_at=starts_at.isoformat(),
        review_of=held.id,
    )
    return await scheduled(session, conference)


async def required_by_default(session: AsyncSession, institution_id: int) -> bool:
    """Whether an institution ticked in the plan starts out required (police, OSPOD, ...)."""
    kind = await session.scalar(select(Institution.kind).where(Institution.id == institution_id))
    return kind in REQUIRED_KINDS


async def plan_view(
    session: AsyncSession, actor: Actor, plan: Plan, *, now: datetime, defaults: Defaults
) -> PlanView:
    case = await _own_case(session, actor, plan.case_id, now=now)
    district = await session.get_one(District, actor.district_id)
    first, last = _window(district, plan, now, defaults)
    return PlanView(case.code, await _choices(session, actor), first, last)


def _window(district: District, plan: Plan, now: datetime, defaults: Defaults) -> tuple[date, date]:
    """The plan's window, but from the first working day after the poll closes at the
    earliest: the issue's defaults (window from day 2, answers until day 3) would otherwise
    offer times before the answers are in."""
    calendar = district_calendar(district)
    first, last = calendar.planning_window(
        calendar.local(now).date(), plan.starts_after, plan.window
    )
    earliest = calendar.local(_earliest(calendar, now, defaults)).date()
    if first < earliest:
        first, last = calendar.planning_window(earliest, 0, plan.window)
    return first, last


def _earliest(calendar: WorkingCalendar, now: datetime, defaults: Defaults) -> datetime:
    """A conference comes at the earliest a working day after its poll closes, so that nobody
    learns of a date that is already today."""
    return calendar.add_working_days(calendar.add_working_days(now, defaults.deadline), 1)


async def _choices(session: AsyncSession, actor: Actor) -> list[Choice]:
    """The district's institutions a coordinator can invite: all but their own (they chair the
    conference) and the guardians' register."""
    rows = await session.scalars(
        select(Institution)
        .where(
            Institution.district_id == actor.district_id,
            Institution.id != actor.institution_id,
            Institution.kind != InstitutionKind.GUARDIANS,
        )
        .order_by(Institution.kind, Institution.name)
    )
    return [Choice(row.id, row.name, row.kind) for row in rows]


async def start_poll(
    session: AsyncSession,
    actor: Actor,
    plan: Plan,
    *,
    now: datetime,
    defaults: Defaults,
) -> Started | NoCandidates:
    """Create the conference and its candidate times; who gets a poll message is returned."""
    case = await _own_case(session, actor, plan.case_id, now=now)
    # One poll per case even when two coordinators send at once: the case row is locked.
    await session.refresh(case, with_for_update=True)
    await _no_active_conference(session, case)
    allowed = {choice.institution_id for choice in await _choices(session, actor)}
    invited = {key: value for key, value in plan.invited.items() if key in allowed}
    if not invited and not plan.guardians:
        raise ConferenceError("nobody invited")
    district = await session.get_one(District, actor.district_id)
    institutions = list(
        await session.scalars(select(Institution).where(Institution.id.in_(invited)))
    )
    first, last = _window(district, plan, now, defaults)
    held = await _last_held(session, case.id)
    conference = Conference(
        review_of_id=held.id if held is not None else None,
        case_id=case.id,
        district_id=district.id,
        coordinator_id=actor.member_id,
        status=ConferenceStatus.POLLING,
        duration_minutes=plan.minutes,
        place=plan.place[:MAX_PLACE],
        window_first=first,
        window_last=last,
        created_at=now,
        round=1,
    )
    invitations = [
        Invitation(
            kind=InvitationKind.INSTITUTION,
            institution_id=institution.id,
            required=invited[institution.id],
            number=0,
        )
        for institution in institutions
    ]
    for number, kind in enumerate(plan.guardians[:MAX_GUARDIANS], start=1):
        invitations.append(
            Invitation(
                kind=InvitationKind.GUARDIAN if kind == "link" else InvitationKind.OFFLINE,
                required=False,
                number=number,
            )
        )
    _set_deadline(conference, district, now, defaults)
    starts = await _candidates(
        session, district, conference, institutions, invitations, now=now, defaults=defaults
    )
    if not starts:
        return NoCandidates(first, last)
    session.add(conference)
    await session.flush()
    for invitation in invitations:
        invitation.conference_id = conference.id
        session.add(invitation)
    session.add_all(
        ConferenceSlot(conference_id=conference.id, starts_at=s, round=1) for s in starts
    )
    await session.flush()
    links = await _guardian_links(session, actor, district, conference, invitations, now=now)
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="conference.poll_started",
        subject_type="conference",
        subject_id=conference.id,
        case=case.code,
        invited=sorted(invited),
        guardians=len(plan.guardians),
        slots=len(starts),
    )
    targets = await _targets(session, conference.id)
    return Started(conference.id, case.code, targets, links)


def _set_deadline(
    conference: Conference, district: District, now: datetime, defaults: Defaults
) -> None:
    calendar = district_calendar(district)
    conference.deadline = calendar.add_working_days(now, defaults.deadline)
    conference.nudge_at = calendar.add_working_days(now, max(defaults.deadline - 1, 0))
    conference.offered_at = None
    conference.nudged_at = None


async def _candidates(
    session: AsyncSession,
    district: District,
    conference: Conference,
    institutions: Sequence[Institution],
    invitations: Sequence[Invitation],
    *,
    now: datetime,
    defaults: Defaults,
) -> list[datetime]:
    hours = _hours(district, institutions)
    if hours is None:
        return []
    calendar = district_calendar(district)
    invitees = []
    for invitation in invitations:
        if invitation.institution_id is None:
            continue
        busy = await _busy_of_institution(session, invitation.institution_id)
        invitees.append(InviteeBusy(required=invitation.required, busy=busy))
    request = SlotRequest(
        first_day=conference.window_first,
        last_day=conference.window_last,
        duration_minutes=conference.duration_minutes,
        hours=hours,
        buffer_minutes=defaults.buffer,
        bookings=await _bookings(session, conference),
        invitees=invitees,
        not_before=int(calendar.add_working_days(conference.deadline, 1).timestamp()),
        limit=defaults.slots,
    )
    return [_moment(start) for start in candidates(calendar, request)]


def _moment(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=ZoneInfo("UTC"))


async def _busy_of_institution(session: AsyncSession, institution_id: int) -> list[tuple[int, int]]:
    """Busy times shared by the institution's members count for the institution (the member who
    sends a calendar is its usual representative; the bot says so when it is sent)."""
    rows = await session.scalars(
        select(BusyTime.intervals)
        .join(Member, BusyTime.member_id == Member.id)
        .where(Member.institution_id == institution_id, Member.active.is_(True))
    )
    return [(int(start), int(end)) for intervals in rows for start, end in intervals]


async def _bookings(session: AsyncSession, conference: Conference) -> list[tuple[int, int]]:
    """The times the coordinator or the room are taken: their scheduled conferences, and the
    candidate times of their polls still running (so two polls do not offer the same hour)."""
    other = or_(
        Conference.coordinator_id == conference.coordinator_id,
        Conference.place == conference.place,
    )
    scope = [Conference.district_id == conference.district_id, other]
    if conference.id is not None:
        scope.append(Conference.id != conference.id)
    bookings: list[tuple[int, int]] = []
    scheduled = await session.execute(
        select(Conference.starts_at, Conference.duration_minutes).where(
            *scope, Conference.status == ConferenceStatus.SCHEDULED
        )
    )
    for starts_at, minutes in scheduled:
        if starts_at is not None:
            start = int(starts_at.timestamp())
            bookings.append((start, start + minutes * 60))
    polled = await session.execute(
        select(ConferenceSlot.starts_at, Conference.duration_minutes)
        .join(Conference, ConferenceSlot.conference_id == Conference.id)
        .where(
            *scope,
            Conference.status == ConferenceStatus.POLLING,
            Conference.coordinator_id == conference.coordinator_id,
            ConferenceSlot.round == Conference.round,
        )
    )
    for starts_at, minutes in polled:
        start = int(starts_at.timestamp())
        bookings.append((start, start + minutes * 60))
    return bookings


async def _guardian_links(
    session: AsyncSession,
    actor: Actor,
    district: District,
    conference: Conference,
    invitations: Sequence[Invitation],
    *,
    now: datetime,
) -> list[GuardianLink]:
    """A one-time join code per guardian invited by link, valid until the poll's deadline."""
    links = []
    register: Institution | None = None
    for invitation in invitations:
        if invitation.kind is not InvitationKind.GUARDIAN:
            continue
        if register is None:
            register = await ensure_institution(
                session, district, GUARDIANS_INSTITUTION, InstitutionKind.GUARDIANS, now=now
            )
        code = secrets.token_urlsafe(16)
        session.add(
            InviteCode(
                code_hash=hash_code(code),
                institution_id=register.id,
                role=Role.PARTICIPANT,
                created_by_id=actor.member_id,
                created_at=now,
                expires_at=conference.deadline,
                invitation_id=invitation.id,
            )
        )
        links.append(GuardianLink(invitation.number, code, conference.deadline))
    return links


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
        people = await _answerers(session, invitation, conference)
        if not any(person.reachable for person in people):
            institution = await session.get_one(Institution, invitation.institution_id)
            names[invitation.id] = institution.name
    return names


async def _targets(session: AsyncSession, conference_id: int) -> list[Target]:
    """Every reachable member who answers for an invitation."""
    conference = await session.get_one(Conference, conference_id)
    invitations = await session.scalars(
        select(Invitation).where(Invitation.conference_id == conference_id).order_by(Invitation.id)
    )
    targets: list[Target] = []
    for invitation in invitations:
        people = await _answerers(session, invitation, conference)
        targets += [
            Target(invitation.id, _recipient(person)) for person in people if person.reachable
        ]
    return targets


async def _answerers(
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
    return _recipient(await session.get_one(Member, member_id))


def _recipient(member: Member) -> Recipient:
    return Recipient(member.id, member.chat_id, member.locale, member.display_name)


async def _poll_message(
    session: AsyncSession, invitation_id: int, member_id: int, chat_id: int
) -> PollMessage:
    """The member's poll message row for an invitation, created on first need."""
    row = await session.scalar(
        select(PollMessage).where(
            PollMessage.invitation_id == invitation_id, PollMessage.member_id == member_id
        )
    )
    if row is None:
        row = PollMessage(
            invitation_id=invitation_id, member_id=member_id, chat_id=chat_id, pending={}
        )
        session.add(row)
        await session.flush()
    return row


async def record_message(
    session: AsyncSession, invitation_id: int, recipient: Recipient, message_id: int
) -> None:
    """Where a member's poll message is, so that it can be edited when others answer."""
    row = await _poll_message(session, invitation_id, recipient.member_id, recipient.chat_id)
    row.chat_id = recipient.chat_id
    row.message_id = message_id


async def set_board(
    session: AsyncSession, conference_id: int, chat_id: int, message_id: int
) -> None:
    await session.execute(
        update(Conference)
        .where(Conference.id == conference_id)
        .values(board_chat_id=chat_id, board_message_id=message_id)
    )


# Answering.


async def poll(
    session: AsyncSession, actor: Actor, invitation_id: int, *, now: datetime
) -> PollView:
    """An invitation's poll as the actor sees it (refused, and audited, to anyone else)."""
    invitation, conference = await _answerable(session, actor, invitation_id, now=now)
    message = await _message(session, invitation, actor)
    return await _poll_view(session, invitation, conference, message, now=now)


async def poll_of(session: AsyncSession, target: Target, *, now: datetime) -> PollView:
    """The poll as it is to be sent to a target (found by `_targets` or `open_polls`)."""
    invitation = await session.get_one(Invitation, target.invitation_id)
    conference = await session.get_one(Conference, invitation.conference_id)
    message = await _poll_message(
        session, invitation.id, target.recipient.member_id, target.recipient.chat_id
    )
    return await _poll_view(session, invitation, conference, message, now=now)


async def toggle(
    session: AsyncSession, actor: Actor, invitation_id: int, slot_id: int, *, now: datetime
) -> PollView:
    """One tap on a time: no → yes → if need be → no, in the answer being put together."""
    invitation, conference = await _answerable(session, actor, invitation_id, now=now)
    _require_open(conference, now)
    slots = await _slots(session, conference)
    ids = [slot.id for slot in slots]
    if slot_id not in ids:
        raise NotInPoll("the time is not in this poll any more")
    message = await _message(session, invitation, actor)
    sent = await _sent_votes(session, invitation.id)
    votes = _working(sent, message, ids)
    message.pending = {str(key): value.value for key, value in votes.items()} | {
        str(slot_id): CYCLE[votes[slot_id]].value
    }
    return await _poll_view(
        session, invitation, conference, message, now=now, slots=slots, sent=sent
    )


async def send_answer(
    session: AsyncSession, actor: Actor, invitation_id: int, round_: int, *, now: datetime
) -> Answered:
    """The answer put together is the invitation's answer now (it replaces an earlier one).

    The conference's row is locked first: answers to one poll are taken one at a time, so two
    members of an institution sending at once, or the last two required invitees, never miss
    each other (PostgreSQL reads committed rows anew after the lock)."""
    invitation, conference = await _answerable(session, actor, invitation_id, now=now)
    await session.refresh(conference, with_for_update=True)
    await session.refresh(invitation)
    _require_open(conference, now)
    if round_ != conference.round:
        raise NotInPoll("a button of an earlier round")
    slots = await _slot_ids(session, conference)
    message = await _message(session, invitation, actor)
    votes = await _working_votes(session, invitation, message, slots)
    await session.execute(
        delete(SlotAnswer).where(
            SlotAnswer.invitation_id == invitation.id, SlotAnswer.slot_id.in_(slots)
        )
    )
    session.add_all(
        SlotAnswer(invitation_id=invitation.id, slot_id=slot, vote=vote.value)
        for slot, vote in votes.items()
    )
    invitation.answered_by_id = actor.member_id
    invitation.answered_at = now
    message.pending = {}
    await session.flush()
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="conference.answered",
        subject_type="conference",
        subject_id=conference.id,
        invitation=invitation.id,
    )
    view = await _poll_view(session, invitation, conference, message, now=now)
    others = []
    rows = await session.scalars(
        select(PollMessage).where(
            PollMessage.invitation_id == invitation.id, PollMessage.member_id != actor.member_id
        )
    )
    for row in rows:
        others.append(await _poll_view(session, invitation, conference, row, now=now))
    board = await _board(session, conference)
    offer = None
    if conference.offered_at is None and await _all_required_answered(session, conference.id):
        conference.offered_at = now
        offer = board
    return Answered(view, others, board, offer)


async def _answerable(
    session: AsyncSession, actor: Actor, invitation_id: int, *, now: datetime
) -> tuple[Invitation, Conference]:
    invitation = await session.get(Invitation, invitation_id)
    conference = (
        None if invitation is None else await session.get(Conference, invitation.conference_id)
    )
    if invitation is None or conference is None or not _may_answer(actor, invitation, conference):
        raise audit.refusal(
            "conference.answer",
            at=now,
            actor_id=actor.member_id,
            subject_type="invitation",
            subject_id=invitation_id,
        )
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
    return [slot.id for slot in await _slots(session, conference)]


async def _message(session: AsyncSession, invitation: Invitation, actor: Actor) -> PollMessage:
    return await _poll_message(session, invitation.id, actor.member_id, actor.chat_id)


async def _sent_votes(session: AsyncSession, invitation_id: int) -> dict[int, Vote]:
    rows = await session.execute(
        select(SlotAnswer.slot_id, SlotAnswer.vote).where(SlotAnswer.invitation_id == invitation_id)
    )
    return {slot: Vote(vote) for slot, vote in rows}


async def _working_votes(
    session: AsyncSession, invitation: Invitation, message: PollMessage, slots: Sequence[int]
) -> dict[int, Vote]:
    return _working(await _sent_votes(session, invitation.id), message, slots)


def _working(sent: dict[int, Vote], message: PollMessage, slots: Sequence[int]) -> dict[int, Vote]:
    """The answer being put together: what this member tapped, else what was sent, else no."""
    pending = {int(key): Vote(value) for key, value in (message.pending or {}).items()}
    return {slot: pending.get(slot, sent.get(slot, Vote.NO)) for slot in slots}


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
        slots = await _slots(session, conference)
    if sent is None:
        sent = await _sent_votes(session, invitation.id)
    return PollView(
        conference_id=conference.id,
        invitation=(await _invitee_views(session, [invitation]))[0],
        case_code=case.code,
        minutes=conference.duration_minutes,
        place=conference.place,
        deadline=conference.deadline,
        slots=slots,
        votes=_working(sent, message, [slot.id for slot in slots]),
        sent=sent,
        open=conference.status is ConferenceStatus.POLLING and now < conference.deadline,
        round=conference.round,
        chat_id=message.chat_id,
        message_id=message.message_id,
        locale=(await session.get_one(Member, message.member_id)).locale,
    )


async def _slots(session: AsyncSession, conference: Conference) -> list[Slot]:
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


async def _invitee_views(session: AsyncSession, invitations: Sequence[Invitation]) -> list[Invitee]:
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
    return [await _invitee(session, row, reachable) for row in invitations]


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


async def _invitee(session: AsyncSession, invitation: Invitation, reachable: set[int]) -> Invitee:
    # The rows were preloaded by _invitee_views: these gets find them without a query.
    name = ""
    can_reach = True
    if invitation.institution_id is not None:
        name = (await session.get_one(Institution, invitation.institution_id)).name
        can_reach = invitation.institution_id in reachable
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


# The coordinator's side.


async def board(session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime) -> Board:
    conference = await _own_conference(session, actor, conference_id, now=now)
    return await _board(session, conference)


async def board_to_decide(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> Board:
    """The board, for closing the poll early ("Decide now"): the offer that follows goes to the
    conference's coordinator, so only they may; a colleague's press is an audited refusal."""
    conference = await _own_conference(session, actor, conference_id, now=now)
    if conference.coordinator_id != actor.member_id:
        raise _refused(actor, "conference.decide", conference_id, now=now)
    return await _board(session, conference)


async def fresh_board(session: AsyncSession, conference_id: int) -> Board:
    """The board as it is now (for redrawing; the caller already passed the permission check)."""
    return await _board(session, await session.get_one(Conference, conference_id))


async def coordinator_of(session: AsyncSession, conference_id: int) -> Recipient:
    conference = await session.get_one(Conference, conference_id)
    return _recipient(await session.get_one(Member, conference.coordinator_id))


async def _board(session: AsyncSession, conference: Conference) -> Board:
    case = await session.get_one(Case, conference.case_id)
    coordinator = await session.get_one(Member, conference.coordinator_id)
    rows = list(
        await session.scalars(
            select(Invitation)
            .where(Invitation.conference_id == conference.id)
            .order_by(Invitation.id)
        )
    )
    invitees = await _invitee_views(session, rows)
    slots = await _slots(session, conference)
    return Board(
        conference_id=conference.id,
        case_code=case.code,
        status=conference.status,
        deadline=conference.deadline,
        starts_at=conference.starts_at,
        invitees=invitees,
        slots=slots,
        outcome=await _outcome(session, invitees, slots),
        chat_id=conference.board_chat_id,
        message_id=conference.board_message_id,
        locale=coordinator.locale,
        round=conference.round,
        coordinator_id=coordinator.id,
    )


async def _outcome(session: AsyncSession, invitees: list[Invitee], slots: list[Slot]) -> Outcome:
    by_id = {invitee.id: invitee for invitee in invitees}
    index = {slot.id: position for position, slot in enumerate(slots)}
    votes: dict[tuple[int, int], Vote] = {}
    if by_id:
        rows = await session.execute(
            select(SlotAnswer.invitation_id, SlotAnswer.slot_id, SlotAnswer.vote).where(
                SlotAnswer.invitation_id.in_(by_id)
            )
        )
        for invitation_id, slot_id, vote in rows:
            if slot_id in index:
                votes[(invitation_id, index[slot_id])] = Vote(vote)
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


async def confirm(
    session: AsyncSession, actor: Actor, conference_id: int, slot_id: int, *, now: datetime
) -> Scheduled | Collision | Passed:
    """Fix the conference at one of its candidate times (the best, or one chosen anyway)."""
    conference = await _own_conference(session, actor, conference_id, now=now)
    if conference.status is not ConferenceStatus.POLLING:
        raise PollClosed("already decided")
    slot = await session.get(ConferenceSlot, slot_id)
    if slot is None or slot.conference_id != conference.id or slot.round != conference.round:
        raise NotInPoll("the time is not in this poll any more")
    if slot.starts_at <= now:
        return Passed(slot.starts_at)
    clash = await _clash(session, conference, slot.starts_at)
    if clash is not None:
        return clash
    done = await session.execute(
        update(Conference)
        .where(Conference.id == conference.id, Conference.status == ConferenceStatus.POLLING)
        .values(status=ConferenceStatus.SCHEDULED, starts_at=slot.starts_at, decided_at=now)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise PollClosed("already decided")
    await session.refresh(conference)
    # Invitations go out through the outbox, planned in this transaction: nothing is lost.
    from bot.services import invitations  # noqa: PLC0415 - it builds on this module

    await invitations.invite_everyone(session, conference, now=now)
    case = await session.get_one(Case, conference.case_id)
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="conference.scheduled",
        subject_type="conference",
        subject_id=conference.id,
        case=case.code,
        starts_at=slot.starts_at.isoformat(),
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
        await _board(session, conference),
    )


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
    invitation = await session.get(Invitation, invitation_id)
    if invitation is None:
        raise _refused(actor, "conference.make_optional", invitation_id, now=now)
    conference = await _own_conference(session, actor, invitation.conference_id, now=now)
    if conference.status is not ConferenceStatus.POLLING:
        raise PollClosed("already decided")
    invitation.required = False
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="conference.made_optional",
        subject_type="conference",
        subject_id=conference.id,
        invitation=invitation.id,
    )
    await session.flush()
    return await _board(session, conference)


async def next_window(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime, defaults: Defaults
) -> Started | NoCandidates:
    """A new poll over the working days after the old window; answers start afresh. For a
    scheduled conference (a new date is needed), the window starts from today; participants
    keep the old time in their calendars until the new one is set."""
    conference = await _own_conference(session, actor, conference_id, now=now)
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
    first, last = calendar.planning_window(today, 1, max(length, 1))
    earliest = calendar.local(_earliest(calendar, now, defaults)).date()
    if first < earliest:
        first, last = calendar.planning_window(earliest, 0, max(length, 1))
    invitations, institutions = await _invited(session, conference)
    before = (conference.window_first, conference.window_last, conference.deadline)
    conference.window_first, conference.window_last = first, last
    conference.deadline = calendar.add_working_days(now, defaults.deadline)
    starts = await _candidates(
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
        await outbox.cancel(session, subject=f"conference:{conference.id}", now=now)
    session.add_all(
        ConferenceSlot(conference_id=conference.id, starts_at=s, round=conference.round)
        for s in starts
    )
    _set_deadline(conference, district, now, defaults)
    await session.flush()
    # Guardians who have not joined yet get new links (the old ones end with the old round).
    links = await _guardian_links(
        session,
        actor,
        district,
        conference,
        [i for i in invitations if i.kind is InvitationKind.GUARDIAN and i.member_id is None],
        now=now,
    )
    case = await session.get_one(Case, conference.case_id)
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="conference.next_window",
        subject_type="conference",
        subject_id=conference.id,
        case=case.code,
        round=conference.round,
    )
    targets = await _targets(session, conference.id)
    return Started(conference.id, case.code, targets, links)


async def _invited(
    session: AsyncSession, conference: Conference
) -> tuple[list[Invitation], list[Institution]]:
    """A conference's invitations and the institutions among them."""
    invitations = list(
        await session.scalars(select(Invitation).where(Invitation.conference_id == conference.id))
    )
    institutions = list(
        await session.scalars(
            select(Institution).where(
                Institution.id.in_([i.institution_id for i in invitations if i.institution_id])
            )
        )
    )
    return invitations, institutions


async def _own_case(session: AsyncSession, actor: Actor, case_id: int, *, now: datetime) -> Case:
    case = await session.get(Case, case_id)
    if (
        case is None
        or actor.role is not Role.COORDINATOR
        or case.district_id != actor.district_id
        or case.status is not CaseStatus.OPEN
    ):
        raise _refused(actor, "conference.plan", case_id, now=now, subject_type="case")
    return case


async def _own_conference(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> Conference:
    """A conference of the actor's district, for its coordinators."""
    conference = await session.get(Conference, conference_id)
    if (
        conference is None
        or actor.role is not Role.COORDINATOR
        or conference.district_id != actor.district_id
    ):
        raise _refused(actor, "conference.manage", conference_id, now=now)
    return conference


async def _no_active_conference(session: AsyncSession, case: Case) -> None:
    active = await session.scalar(
        select(Conference.id)
        .where(Conference.case_id == case.id, Conference.status.in_(ACTIVE))
        .limit(1)
    )
    if active is not None:
        raise AlreadyPlanned(case.code)


def _refused(
    actor: Actor,
    action: str,
    subject_id: int,
    *,
    now: datetime,
    subject_type: str = "conference",
) -> PermissionDenied:
    return audit.refusal(
        action, at=now, actor_id=actor.member_id, subject_type=subject_type, subject_id=subject_id
    )


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
        targets = await _targets(session, conference.id)
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
                outbox.Planned(
                    key=(
                        f"conference:{conference.id}:r{conference.round}:poll-nudge:"
                        f"i{target.invitation_id}:m{target.recipient.member_id}"
                    ),
                    kind=POLL_NUDGE,
                    subject=f"conference:{conference.id}",
                    member_id=target.recipient.member_id,
                    chat_id=target.recipient.chat_id,
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
        offers.append(await _board(session, conference))
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
    for member in await _answerers(session, invitation, conference):
        if member.id == member_id and member.reachable:
            return Target(invitation.id, _recipient(member))
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
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="busy_times.imported",
        subject_type="member",
        subject_id=actor.member_id,
        count=len(intervals),
    )


async def forget_busy(session: AsyncSession, actor: Actor, *, now: datetime) -> bool:
    result = await session.execute(delete(BusyTime).where(BusyTime.member_id == actor.member_id))
    if result.rowcount:  # type: ignore[attr-defined]
        await audit.record(
            session,
            at=now,
            actor_id=actor.member_id,
            action="busy_times.forgotten",
            subject_type="member",
            subject_id=actor.member_id,
        )
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
        slots = await _slots(session, conference)
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
            message.pending = {str(key): value.value for key, value in votes.items()}
            views.append(await _poll_view(session, invitation, conference, message, now=now))
    return views


async def _my_open_invitations(session: AsyncSession, actor: Actor, *, now: datetime) -> list[int]:
    rows = await session.scalars(
        select(PollMessage.invitation_id)
        .join(Invitation, PollMessage.invitation_id == Invitation.id)
        .join(Conference, Invitation.conference_id == Conference.id)
        .where(
            PollMessage.member_id == actor.member_id,
            Invitation.kind != InvitationKind.OFFLINE,  # a guardian's answers, not the actor's
            Conference.status == ConferenceStatus.POLLING,
            Conference.deadline > now,
        )
    )
    return list(rows)


# /cases: the next step of each case.


async def new_times(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime, defaults: Defaults
) -> list[datetime]:
    """Free times for a new date chosen directly (no poll): the window of a new plan, at the
    earliest a working day from now, clear of everyone's known busy times and bookings."""
    conference = await _own_conference(session, actor, conference_id, now=now)
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
        starts = await _candidates(
            session, district, conference, institutions, invitations, now=now, defaults=defaults
        )
    finally:
        conference.window_first, conference.window_last, conference.deadline = kept
    return [start for start in starts if start != conference.starts_at]
