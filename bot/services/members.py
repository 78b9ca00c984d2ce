"""Members, institutions and joining by one-time invite codes."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.db import insert_if_absent
from bot.core.models import (
    ChatData,
    ConversationState,
    District,
    Institution,
    InstitutionKind,
    Invitation,
    InviteCode,
    JoinAttempt,
    Member,
    Role,
    UserData,
    conversation_key,
)
from bot.services import audit
from bot.services.errors import NotFound, ServiceError

# Who may hand out invites for which roles (the CLI, for the first admin, may do anything).
INVITABLE_ROLES: dict[Role, tuple[Role, ...]] = {
    Role.ADMIN: (Role.ADMIN, Role.COORDINATOR, Role.REFERRER, Role.PARTICIPANT),
    Role.COORDINATOR: (Role.REFERRER, Role.PARTICIPANT),
}
CODE_BYTES = 16  # 128 bits: guessing is hopeless, throttling only keeps the log quiet
DEFAULT_DISTRICT = "Default district"
MAX_NAME_LENGTH = 120


@dataclass(frozen=True)
class Actor:
    """The registered, active person behind an update: what rules need to know about them."""

    member_id: int
    telegram_user_id: int
    chat_id: int
    display_name: str
    role: Role
    locale: str
    institution_id: int
    institution_name: str
    district_id: int
    reachable: bool = True
    is_guardian: bool = False  # joined by a guardian's conference link

    @property
    def can_invite(self) -> bool:
        return self.role in INVITABLE_ROLES

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def coordinates(self, district_id: int) -> bool:
        """Whether they are a coordinator of this district (its cases are theirs to run)."""
        return self.role is Role.COORDINATOR and self.district_id == district_id


@dataclass(frozen=True)
class IssuedInvite:
    code: str
    expires_at: datetime
    institution_name: str
    role: Role


@dataclass(frozen=True)
class Joined:
    actor: Actor


@dataclass(frozen=True)
class AlreadyMember:
    actor: Actor


@dataclass(frozen=True)
class CodeRefused:
    reason: str  # "unknown", "expired" or "used"


@dataclass(frozen=True)
class Throttled:
    retry_after: timedelta


JoinResult = Joined | AlreadyMember | CodeRefused | Throttled


@dataclass(frozen=True)
class MemberView:
    member_id: int
    telegram_user_id: int
    chat_id: int
    display_name: str
    institution_name: str
    role: Role
    active: bool
    reachable: bool
    guardian: bool = False  # joined by a guardian's conference link: a family, not staff


# Admins manage staff, not families: a guardian's name next to "Guardians" would tell an admin
# that the family has a child-protection case. Only the case's coordinator (and the operator's
# CLI) sees guardians; to an admin they are not there at all.
STAFF = Institution.kind != InstitutionKind.GUARDIANS


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def new_code(
    institution_id: int,
    role: Role,
    *,
    created_by_id: int | None,
    now: datetime,
    expires_at: datetime,
    invitation_id: int | None = None,
) -> tuple[str, InviteCode]:
    """A one-time code for joining, and its row: only the code's hash is stored."""
    code = secrets.token_urlsafe(CODE_BYTES)
    invite = InviteCode(
        code_hash=hash_code(code),
        institution_id=institution_id,
        role=role,
        created_by_id=created_by_id,
        created_at=now,
        expires_at=expires_at,
        invitation_id=invitation_id,
    )
    return code, invite


def _actor(member: Member, institution: Institution) -> Actor:
    return Actor(
        member_id=member.id,
        telegram_user_id=member.telegram_user_id,
        chat_id=member.chat_id,
        display_name=member.display_name,
        role=member.role,
        locale=member.locale,
        institution_id=institution.id,
        institution_name=institution.name,
        district_id=institution.district_id,
        reachable=member.reachable,
        is_guardian=institution.kind is InstitutionKind.GUARDIANS,
    )


async def find_actor(session: AsyncSession, telegram_user_id: int) -> Actor | None:
    """The active member with this Telegram id, or None for strangers and leavers."""
    row = (
        await session.execute(
            select(Member, Institution)
            .join(Institution, Member.institution_id == Institution.id)
            .where(Member.telegram_user_id == telegram_user_id, Member.active.is_(True))
        )
    ).first()
    return None if row is None else _actor(row[0], row[1])


async def turned_away(
    session: AsyncSession, telegram_user_id: int, request: str, *, now: datetime
) -> None:
    """A stranger's or a leaver's command or button, refused before any dialog: audited, with
    the member when it is a leaver. `request` is a command's name or a button's data (ids and
    codes, never text a person typed)."""
    member_id = await session.scalar(  # their latest membership, if they ever were one
        select(Member.id)
        .where(Member.telegram_user_id == telegram_user_id)
        .order_by(Member.id.desc())
        .limit(1)
    )
    await audit.record(
        session,
        at=now,
        actor_id=member_id,
        action="access.refused",
        subject_type="telegram_user",
        subject_id=telegram_user_id,
        request=request,
    )


async def ensure_district(session: AsyncSession, name: str | None, *, now: datetime) -> District:
    """The named district, created if new; without a name the only one there is."""
    if name is None:
        districts = (await session.scalars(select(District).limit(2))).all()
        if len(districts) == 1:
            return districts[0]
        if len(districts) > 1:
            raise NotFound("there are several districts: say which one with --district")
        name = DEFAULT_DISTRICT
    name = _clean_name(name)
    await insert_if_absent(session, District, {"name": name, "created_at": now}, ["name"])
    return (await session.scalars(select(District).where(District.name == name))).one()


async def ensure_institution(
    session: AsyncSession, district: District, name: str, kind: InstitutionKind, *, now: datetime
) -> Institution:
    name = _clean_name(name)
    values = {"district_id": district.id, "name": name, "kind": kind, "created_at": now}
    await insert_if_absent(session, Institution, values, ["district_id", "name"])
    query = select(Institution).where(
        Institution.district_id == district.id, Institution.name == name
    )
    return (await session.scalars(query)).one()


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME_LENGTH:
        raise ValueError(f"a name must be 1 to {MAX_NAME_LENGTH} characters")
    return cleaned


def require_inviter(actor: Actor, *, now: datetime) -> None:
    """Only admins and coordinators hand out invite links; anyone else's attempt is audited."""
    if not actor.can_invite:
        raise audit.refused(actor, "invite", "member", at=now)


async def institutions_of(session: AsyncSession, district_id: int) -> list[Institution]:
    """The district's institutions one can be invited to: not the guardians' register (its
    people join only by a conference's link)."""
    return list(
        await session.scalars(
            select(Institution)
            .where(Institution.district_id == district_id, STAFF)
            .order_by(Institution.name)
        )
    )


async def create_invite(
    session: AsyncSession,
    *,
    institution_id: int,
    role: Role,
    creator: Actor | None,
    now: datetime,
    ttl: timedelta,
) -> IssuedInvite:
    """A new one-time code for joining an institution in a role. creator=None is the CLI."""
    institution = await session.get(Institution, institution_id)
    if institution is None:
        raise NotFound(f"no institution with id {institution_id}")
    if creator is not None and (
        role not in INVITABLE_ROLES.get(creator.role, ())
        or institution.district_id != creator.district_id
        or institution.kind is InstitutionKind.GUARDIANS  # only a conference's link leads there
    ):
        raise audit.refused(
            creator, "invite", "institution", institution_id, at=now, role=role.value
        )
    code, invite = new_code(
        institution.id,
        role,
        created_by_id=None if creator is None else creator.member_id,
        now=now,
        expires_at=now + ttl,
    )
    session.add(invite)
    await session.flush()
    await audit.acted(
        session,
        creator,
        "invite.created",
        invite,
        at=now,
        institution_id=institution.id,
        role=role.value,
        via="bot" if creator else "cli",
    )
    return IssuedInvite(code, invite.expires_at, institution.name, role)


async def redeem_invite(
    session: AsyncSession,
    *,
    code: str,
    telegram_user_id: int,
    chat_id: int,
    display_name: str,
    locale: str,
    now: datetime,
    attempts_per_hour: int,
) -> JoinResult:
    """Register a person with a one-time code. A code registers one person, once."""
    existing = await session.scalar(
        select(Member).where(Member.telegram_user_id == telegram_user_id, Member.active.is_(True))
    )
    if existing is not None:
        institution = await session.get_one(Institution, existing.institution_id)
        return AlreadyMember(_actor(existing, institution))

    hour_ago = now - timedelta(hours=1)
    recent = list(
        await session.scalars(
            select(JoinAttempt.attempted_at)
            .where(JoinAttempt.telegram_user_id == telegram_user_id)
            .where(JoinAttempt.attempted_at > hour_ago)
            .order_by(JoinAttempt.attempted_at)
        )
    )
    if len(recent) >= attempts_per_hour:
        return Throttled(retry_after=recent[0] + timedelta(hours=1) - now)

    invite = await session.scalar(select(InviteCode).where(InviteCode.code_hash == hash_code(code)))
    refusal = _refusal(invite, now)
    if refusal is not None or invite is None:
        session.add(JoinAttempt(telegram_user_id=telegram_user_id, attempted_at=now))
        day_ago = now - timedelta(days=1)
        await session.execute(delete(JoinAttempt).where(JoinAttempt.attempted_at < day_ago))
        return CodeRefused(refusal or "unknown")

    # Claim the code atomically: of two people racing with one code, only one row update wins.
    claimed = await session.execute(
        update(InviteCode)
        .where(InviteCode.id == invite.id, InviteCode.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return CodeRefused("used")

    # A member row is one person in one institution and role. A leaver who joins again in
    # another institution or role gets a new row: the old one, inactive, keeps what it held
    # (tasks, answers) with the old institution until a coordinator hands it on, and none of it
    # follows them. Back in the same institution and role, they are that member again.
    member = await session.scalar(
        select(Member)
        .where(
            Member.telegram_user_id == telegram_user_id,
            Member.institution_id == invite.institution_id,
            Member.role == invite.role,
        )
        .order_by(Member.id.desc())
        .limit(1)
    )
    if member is None:
        member = Member(telegram_user_id=telegram_user_id, joined_at=now)
        session.add(member)
    member.chat_id = chat_id
    member.display_name = display_name[:128] or str(telegram_user_id)
    member.institution_id = invite.institution_id
    member.role = invite.role
    member.locale = locale
    member.active = True
    member.reachable = True
    member.deactivated_at = None
    await session.flush()
    invite.used_by_id = member.id
    if invite.invitation_id is not None:  # a guardian's link: they answer that poll
        await session.execute(
            update(Invitation)
            .where(Invitation.id == invite.invitation_id)
            .values(member_id=member.id)
        )
    institution = await session.get_one(Institution, invite.institution_id)
    joined = _actor(member, institution)
    await audit.acted(
        session,
        joined,
        "member.joined",
        member,
        at=now,
        invite_id=invite.id,
        role=invite.role.value,
        institution_id=invite.institution_id,
    )
    return Joined(joined)


def _refusal(invite: InviteCode | None, now: datetime) -> str | None:
    if invite is None:
        return "unknown"
    if invite.used_at is not None:
        return "used"
    if invite.expires_at <= now:
        return "expired"
    return None


async def set_locale(session: AsyncSession, actor: Actor, locale: str) -> Actor:
    await session.execute(update(Member).where(Member.id == actor.member_id).values(locale=locale))
    return replace(actor, locale=locale)


async def list_members(
    session: AsyncSession, actor: Actor | None, *, now: datetime
) -> list[MemberView]:
    """The staff registered in the admin's district; everyone, guardians too (marked), in all
    districts for the CLI (actor=None): the operator answers data-protection requests."""
    query = select(Member, Institution).join(Institution, Member.institution_id == Institution.id)
    if actor is not None:
        require_admin(actor, now=now, action="members.list")
        query = query.where(Institution.district_id == actor.district_id, STAFF)
    rows = await session.execute(
        query.order_by(Member.active.desc(), func.lower(Member.display_name), Member.id)
    )
    return [member_view(member, institution) for member, institution in rows]


async def forget_dialog_state(session: AsyncSession, member: Member) -> None:
    """The member's stored dialog state goes: where they were in a dialog, and their user and
    chat data."""
    key = conversation_key((member.chat_id, member.telegram_user_id))
    await session.execute(delete(ConversationState).where(ConversationState.key == key))
    await session.execute(delete(UserData).where(UserData.user_id == member.telegram_user_id))
    await session.execute(delete(ChatData).where(ChatData.chat_id == member.chat_id))


async def has_left(session: AsyncSession, member_id: int) -> bool:
    """Whether a notification's recipient is a deactivated member (nothing goes to them)."""
    active = await session.scalar(select(Member.active).where(Member.id == member_id))
    return active is False


async def admin_locales(session: AsyncSession, district_id: int | None) -> list[tuple[int, str]]:
    """Where operational alerts go: (chat id, locale) of the active, reachable admins of a
    district, or of all districts when district_id is None."""
    query = select(Member.chat_id, Member.locale).where(
        Member.role == Role.ADMIN, Member.active.is_(True), Member.reachable.is_(True)
    )
    if district_id is not None:
        query = query.join(Institution, Member.institution_id == Institution.id).where(
            Institution.district_id == district_id
        )
    rows = await session.execute(query)
    return [(chat_id, locale) for chat_id, locale in rows]


async def mark_unreachable(session: AsyncSession, chat_id: int, *, now: datetime) -> None:
    """The person blocked the bot: stop counting on messages reaching them."""
    result = await session.execute(
        update(Member)
        .where(Member.chat_id == chat_id, Member.reachable.is_(True))
        .values(reachable=False)
        .returning(Member.id)
    )
    for member_id in result.scalars():
        await audit.record(
            session,
            at=now,
            actor_id=None,
            action="member.unreachable",
            subject_type="member",
            subject_id=member_id,
        )


async def mark_reachable(session: AsyncSession, actor: Actor) -> Actor:
    """The person wrote to the bot, so they have unblocked it."""
    await session.execute(update(Member).where(Member.id == actor.member_id).values(reachable=True))
    return replace(actor, reachable=True)


def require_admin(actor: Actor, *, now: datetime, action: str, subject: object = None) -> None:
    if actor.is_admin:
        return
    raise audit.refused(actor, action, "member", subject, at=now)


def require_coordinator(
    actor: Actor, *, now: datetime, action: str, subject_type: str, subject: object = None
) -> None:
    """Coordinators only: anyone else's attempt is an audited refusal."""
    if actor.role is not Role.COORDINATOR:
        raise audit.refused(actor, action, subject_type, subject, at=now)


def member_view(member: Member, institution: Institution) -> MemberView:
    return MemberView(
        member_id=member.id,
        telegram_user_id=member.telegram_user_id,
        chat_id=member.chat_id,
        display_name=member.display_name,
        institution_name=institution.name,
        role=member.role,
        active=member.active,
        reachable=member.reachable,
        guardian=institution.kind is InstitutionKind.GUARDIANS,
    )


async def create_institution(
    session: AsyncSession, actor: Actor, name: str, kind: InstitutionKind, *, now: datetime
) -> Institution:
    """An admin registers an institution of their district (an existing name is reused, but
    never the guardians' register: typing its name is no way into it)."""
    require_admin(actor, now=now, action="institution.create")
    district = await session.get_one(District, actor.district_id)
    institution = await ensure_institution(session, district, name, kind, now=now)
    if institution.kind is InstitutionKind.GUARDIANS:
        raise audit.refused(actor, "institution.create", "institution", institution.id, at=now)
    await audit.acted(
        session, actor, "institution.created", institution, at=now, kind=institution.kind.value
    )
    return institution


@dataclass(frozen=True)
class DistrictSettings:
    name: str
    place: str | None
    hours: tuple[time, time]
    overrides: list[tuple[str, time, time]]  # institutions with their own working hours
    mailbox: str | None = None  # the ORGANIZER of calendar invitations


async def configure_district(
    session: AsyncSession,
    name: str | None,
    *,
    place: str | None = None,
    hours: tuple[time, time] | None = None,
    institution: str | None = None,
    reset: bool = False,
    mailbox: str | None = None,
    now: datetime,
) -> DistrictSettings:
    """The operator sets where conferences usually meet and the working hours, for the district
    or (with `institution`) one institution's own hours; `reset` drops an institution's own."""
    district = await ensure_district(session, name, now=now)
    if hours is not None and not hours[0] < hours[1]:
        raise CliValueError("working hours must end after they start")
    if institution is not None:
        found = await session.scalar(
            select(Institution).where(
                Institution.district_id == district.id, Institution.name == _clean_name(institution)
            )
        )
        if found is None:
            raise NotFound(f"no institution named {institution!r} in {district.name}")
        found.day_starts, found.day_ends = (None, None) if reset or hours is None else hours
    else:
        if place is not None:
            district.place = _clean_name(place)[:200] or None
        if mailbox is not None:
            district.mailbox = _mailbox(mailbox)
        if hours is not None:
            district.day_starts, district.day_ends = hours
    await audit.acted(
        session, None, "district.configured", district, at=now, institution=institution
    )
    await session.flush()
    rows = await session.scalars(
        select(Institution)
        .where(Institution.district_id == district.id, Institution.day_starts.is_not(None))
        .order_by(Institution.name)
    )
    overrides = [
        (row.name, row.day_starts or district.day_starts, row.day_ends or district.day_ends)
        for row in rows
    ]
    return DistrictSettings(
        district.name,
        district.place,
        (district.day_starts, district.day_ends),
        overrides,
        district.mailbox,
    )


MAILBOX = re.compile(r"^[^@\s\"<>,;:]+@[^@\s\"<>,;:]+\.[^@\s\"<>,;:]+$")


def _mailbox(value: str) -> str | None:
    """The district's invitation mailbox (replies to invitations go there); "" removes it."""
    value = value.strip()
    if not value:
        return None
    if len(value) > 254 or not MAILBOX.match(value):
        raise CliValueError(f"{value!r} is not an e-mail address")
    return value


class CliValueError(ServiceError):
    """A value the operator gave that cannot be used."""
