"""Planning a case conference, and starting its availability poll.

A coordinator plans a conference for an open case: the institutions to invite (required or
optional, pre-ticked by the referral's concerns), guardians, length, place and window; a review
conference starts from the last one held. Starting the poll picks up to eight candidate times
(`scheduling.slots`), avoiding the coordinator's and the room's other conferences and the
invitees' busy times; a guardian invited by link gets a one-time join code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.config import Settings
from bot.core.crypto import Cipher
from bot.core.models import (
    BusyTime,
    Conference,
    ConferenceSlot,
    ConferenceStatus,
    District,
    Institution,
    InstitutionKind,
    Invitation,
    InvitationKind,
    Member,
    Referral,
    Role,
)
from bot.services import audit, invitation_mail
from bot.services.board import (
    ConferenceError,
    Target,
    district_calendar,
    invitations_of,
    no_active_conference,
    own_case,
    poll_targets,
)
from bot.services.guests import Guest, current_guests, guest_invitations, guests_of
from bot.services.members import Actor, ensure_institution, new_code
from scheduling.calendar import WorkingCalendar, WorkingHours
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
    guests: list[Guest] = field(default_factory=list)  # bot.services.guests
    kind: str = "initial"  # bot.core.method_tables.ConferenceKind (review: for a review)
    goal: str = ""  # the conference's goal (bot.services.method), stored encrypted at start

    def to_data(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "invited": {str(key): value for key, value in self.invited.items()},
            "guardians": list(self.guardians),
            "minutes": self.minutes,
            "place": self.place,
            "starts_after": self.starts_after,
            "window": self.window,
            "guests": [guest.to_data() for guest in self.guests],
            "kind": self.kind,
            "goal": self.goal,
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
            guests=[Guest.from_data(item) for item in data.get("guests", [])],
            kind=str(data.get("kind", "initial")),
            goal=str(data.get("goal", "")),
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


# The plan.


async def new_plan(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    case_id: int,
    *,
    now: datetime,
    defaults: Defaults,
    mail_enabled: bool,
) -> Plan:
    """A plan with everything defaulted: institutions pre-ticked by the referral's concerns
    (a review conference's: the last one's table, its guests as `current_guests`)."""
    case = await own_case(session, actor, case_id, now=now)
    await no_active_conference(session, case)
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
        plan.kind = "review"
        plan.guests = await current_guests(session, plan.guests, mail_enabled=mail_enabled)
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
    invitations = await invitations_of(session, held.id)
    plan.invited = {
        i.institution_id: i.required
        for i in invitations
        if i.kind is InvitationKind.INSTITUTION and i.institution_id is not None
    }
    plan.guardians = [
        "offline" if i.kind is InvitationKind.OFFLINE else "link"
        for i in invitations
        if i.kind in (InvitationKind.GUARDIAN, InvitationKind.OFFLINE)
    ]
    plan.guests = guests_of(invitations)
    plan.minutes = held.duration_minutes
    plan.place = held.place
    if held.review_by is not None:
        calendar = district_calendar(district)
        today = calendar.local(now).date()
        left = len(calendar.working_days(today, held.review_by)) - 1
        plan.starts_after = max(plan.starts_after, left - plan.window)


async def required_by_default(session: AsyncSession, institution_id: int) -> bool:
    """Whether an institution ticked in the plan starts out required (police, OSPOD, ...)."""
    kind = await session.scalar(select(Institution.kind).where(Institution.id == institution_id))
    return kind in REQUIRED_KINDS


async def plan_view(
    session: AsyncSession, actor: Actor, plan: Plan, *, now: datetime, defaults: Defaults
) -> PlanView:
    case = await own_case(session, actor, plan.case_id, now=now)
    district = await session.get_one(District, actor.district_id)
    first, last = _window(district, plan, now, defaults)
    return PlanView(case.code, await _choices(session, actor), first, last)


def _window(district: District, plan: Plan, now: datetime, defaults: Defaults) -> tuple[date, date]:
    calendar = district_calendar(district)
    today = calendar.local(now).date()
    return poll_window(calendar, today, plan.starts_after, plan.window, now=now, defaults=defaults)


def poll_window(
    calendar: WorkingCalendar,
    day: date,
    after: int,
    length: int,
    *,
    now: datetime,
    defaults: Defaults,
) -> tuple[date, date]:
    """`length` working days from `after` working days after `day`, but from the first working
    day after the poll closes at the earliest: the issue's defaults (window from day 2, answers
    until day 3) would otherwise offer times before the answers are in. A conference comes at
    the earliest a working day after its poll closes, so that nobody learns of a date that is
    already today."""
    first, last = calendar.planning_window(day, after, length)
    closes = calendar.add_working_days(now, defaults.deadline)
    earliest = calendar.local(calendar.add_working_days(closes, 1)).date()
    if first < earliest:
        first, last = calendar.planning_window(earliest, 0, length)
    return first, last


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


# Starting the poll.


async def start_poll(
    session: AsyncSession,
    actor: Actor,
    plan: Plan,
    *,
    now: datetime,
    defaults: Defaults,
    mail_enabled: bool,
) -> Started | NoCandidates:
    """Create the conference and its candidate times; who gets a poll message is returned.
    The plan's guests are invited as `current_guests` (none when mail is off)."""
    case = await own_case(session, actor, plan.case_id, now=now)
    # One poll per case even when two coordinators send at once: the case row is locked.
    await session.refresh(case, with_for_update=True)
    await no_active_conference(session, case)
    allowed = {choice.institution_id for choice in await _choices(session, actor)}
    # An institution invited by e-mail (a guest) is not invited on Telegram as well.
    by_mail_now = await current_guests(session, plan.guests, mail_enabled=mail_enabled)
    by_mail = {guest.institution_id for guest in by_mail_now}
    invited = {
        key: value for key, value in plan.invited.items() if key in allowed and key not in by_mail
    }
    if not invited and not plan.guardians and not by_mail_now:
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
    invitations += guest_invitations(by_mail_now)
    set_deadline(conference, district, now, defaults)
    starts = await candidate_times(
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
    links = await guardian_links(session, actor, district, conference, invitations, now=now)
    await invitation_mail.plan_poll_mails(session, conference, now=now)
    await audit.acted(
        session,
        actor,
        "conference.poll_started",
        conference,
        at=now,
        case=case.code,
        invited=sorted(invited),
        guardians=len(plan.guardians),
        guests=len(by_mail_now),
        slots=len(starts),
    )
    targets = await poll_targets(session, conference.id)
    return Started(conference.id, case.code, targets, links)


def set_deadline(
    conference: Conference, district: District, now: datetime, defaults: Defaults
) -> None:
    """A new round's deadline, with its nudge a working day before; nothing offered yet."""
    calendar = district_calendar(district)
    conference.deadline = calendar.add_working_days(now, defaults.deadline)
    conference.nudge_at = calendar.add_working_days(now, max(defaults.deadline - 1, 0))
    conference.offered_at = None
    conference.nudged_at = None


async def candidate_times(
    session: AsyncSession,
    district: District,
    conference: Conference,
    institutions: Sequence[Institution],
    invitations: Sequence[Invitation],
    *,
    now: datetime,
    defaults: Defaults,
) -> list[datetime]:
    """Free times in the conference's window (`scheduling.slots`), in the working hours of
    all invited, clear of bookings and of the invited institutions' busy times."""
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


async def guardian_links(
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
        code, invite = new_code(
            register.id,
            Role.PARTICIPANT,
            created_by_id=actor.member_id,
            now=now,
            expires_at=conference.deadline,
            invitation_id=invitation.id,
        )
        session.add(invite)
        links.append(GuardianLink(invitation.number, code, conference.deadline))
    return links
