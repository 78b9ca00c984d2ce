"""Guests: invitees who are not on Telegram, invited by e-mail (issue 22).

At planning, the coordinator may add an institution of the district that has a contact address
(the paediatrician, the prosecutor's office), or a named person with their address. A guest
becomes an invitation of kind GUEST: it gets the invitation, new times and the cancellation by
e-mail only, and the coordinator enters its availability in the poll, as for a guardian without
Telegram. An institution's guest starts out required or optional by the institution's kind (as
when it is ticked), a named person optional; the coordinator may change either with ★/☆.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.models import Institution, InstitutionKind, Invitation, InvitationKind
from bot.services import addresses, audit, mailing
from bot.services.board import own_case
from bot.services.errors import ServiceError
from bot.services.members import Actor

MAX_NAME = 120
MAX_GUESTS = 8  # the plan lists each with its address: 8 stay well within a message


class GuestError(ServiceError):
    """A guest that cannot be added as asked."""


class MailOff(GuestError):
    """This Round Table sends no e-mail: guests cannot be invited."""


class DuplicateGuest(GuestError):
    """The address is invited already (another guest of the same conference)."""


class BadName(GuestError):
    """A guest's name must be text of 1 to 120 characters."""


class AlreadyInvited(GuestError):
    """The institution is invited on Telegram already: untick it to invite it by e-mail."""


class TooManyGuests(GuestError):
    """At most MAX_GUESTS guests."""


class NoContact(GuestError):
    """Not an institution of the district with a contact address (a stale button)."""


@dataclass
class Guest:
    """A guest in the plan: an institution's contact address, or a named person's address."""

    email: str
    name: str = ""  # a named person's; an institution's guest is named by the institution
    institution_id: int | None = None
    required: bool = False

    @property
    def key(self) -> str:
        """What the plan's buttons name the guest by, whatever its place in the list: "i" and
        the institution's id, or "n" and the first 8 hex digits of the SHA-256 of a named
        person's lower-cased address (never the address itself)."""
        if self.institution_id is not None:
            return f"i{self.institution_id}"
        return "n" + hashlib.sha256(self.email.lower().encode()).hexdigest()[:8]

    def to_data(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "institution_id": self.institution_id,
            "required": self.required,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Guest:
        institution = data.get("institution_id")
        return cls(
            email=str(data["email"]),
            name=str(data.get("name", "")),
            institution_id=int(institution) if institution is not None else None,
            required=bool(data.get("required", False)),
        )


@dataclass(frozen=True)
class GuestChoice:
    institution_id: int
    name: str


@dataclass(frozen=True)
class GuestView:
    """A guest as the coordinator's plan shows it (the address is for the coordinator only)."""

    name: str
    email: str
    required: bool
    institution: bool


async def guest_choices(
    session: AsyncSession, actor: Actor, case_id: int, *, now: datetime
) -> list[GuestChoice]:
    """The district's institutions with a contact address, to invite as guests (not the
    coordinator's own: they chair the conference)."""
    await own_case(session, actor, case_id, now=now)
    rows = await session.execute(
        select(Institution.id, Institution.name)
        .where(
            Institution.district_id == actor.district_id,
            Institution.id != actor.institution_id,
            Institution.kind != InstitutionKind.GUARDIANS,
            Institution.email.is_not(None),
        )
        .order_by(Institution.name, Institution.id)
    )
    return [GuestChoice(institution_id, name) for institution_id, name in rows]


def check_name(text: str) -> str:
    """A named guest's name: one line of 1 to 120 characters."""
    name = " ".join(text.split())
    if not name or len(name) > MAX_NAME:
        raise BadName(str(len(name)))
    return name


def _check_room(guests: Sequence[Guest], address: str, *, mail_enabled: bool) -> None:
    if not mail_enabled:
        raise MailOff("no mail settings")
    if len(guests) >= MAX_GUESTS:
        raise TooManyGuests(str(MAX_GUESTS))
    if any(mailing.same(guest.email, address) for guest in guests):
        raise DuplicateGuest(addresses.domain_of(address))


async def add_institution_guest(
    session: AsyncSession,
    actor: Actor,
    case_id: int,
    guests: list[Guest],
    *,
    invited: Mapping[int, bool],
    institution_id: int,
    required: bool,
    mail_enabled: bool,
    now: datetime,
) -> Guest:
    """An institution invited by its contact address (added to `guests`)."""
    case = await own_case(session, actor, case_id, now=now)
    if not mail_enabled:
        raise MailOff("no mail settings")
    institution = await session.get(Institution, institution_id)
    if (
        institution is None
        or institution.district_id != actor.district_id
        or institution.id == actor.institution_id
        or institution.kind is InstitutionKind.GUARDIANS
        or not institution.email
    ):
        raise NoContact(str(institution_id))
    if institution.id in invited or any(g.institution_id == institution.id for g in guests):
        raise AlreadyInvited(institution.name)
    _check_room(guests, institution.email, mail_enabled=mail_enabled)
    guest = Guest(institution.email, "", institution.id, required)
    guests.append(guest)
    await mailing.clear(session, guest.email)  # given again: mail may go to it again
    await audit.acted(
        session, actor, "conference.guest_added", case, at=now, institution=institution.id
    )
    return guest


async def add_named_guest(
    session: AsyncSession,
    actor: Actor,
    case_id: int,
    guests: list[Guest],
    *,
    name: str,
    address: str,
    mail_enabled: bool,
    now: datetime,
) -> Guest:
    """A named person invited by their address (added to `guests`, optional)."""
    case = await own_case(session, actor, case_id, now=now)
    clean = check_name(name)
    email = addresses.normalised(address)
    _check_room(guests, email, mail_enabled=mail_enabled)
    guest = Guest(email, clean, None, False)
    guests.append(guest)
    await mailing.clear(session, email)  # given again: mail may go to it again
    await audit.acted(
        session,
        actor,
        "conference.guest_added",
        case,
        at=now,
        institution=None,
        domain=addresses.domain_of(email),
    )
    return guest


async def remove_guest(
    session: AsyncSession,
    actor: Actor,
    case_id: int,
    guests: list[Guest],
    key: str,
    *,
    now: datetime,
) -> Guest | None:
    """The guest of this `key` (`Guest.key`) taken out of the plan; None if there is none
    (a stale button: removed already, or of an older plan)."""
    case = await own_case(session, actor, case_id, now=now)
    guest = guest_by_key(guests, key)
    if guest is None:
        return None
    guests.remove(guest)
    await audit.acted(
        session,
        actor,
        "conference.guest_removed",
        case,
        at=now,
        institution=guest.institution_id,
    )
    return guest


def guest_by_key(guests: Iterable[Guest], key: str) -> Guest | None:
    """The plan's guest of this `key` (`Guest.key`), or None."""
    return next((guest for guest in guests if guest.key == key), None)


async def guest_views(session: AsyncSession, guests: Sequence[Guest]) -> list[GuestView]:
    wanted = [guest.institution_id for guest in guests if guest.institution_id]
    names: dict[int, str] = {}
    if wanted:
        rows = await session.execute(
            select(Institution.id, Institution.name).where(Institution.id.in_(wanted))
        )
        names = {institution_id: name for institution_id, name in rows}
    return [
        GuestView(
            guest.name or names.get(guest.institution_id or 0, ""),
            guest.email,
            guest.required,
            guest.institution_id is not None,
        )
        for guest in guests
    ]


def guest_invitations(guests: Iterable[Guest]) -> list[Invitation]:
    """The plan's guests as the conference's invitations."""
    return [
        Invitation(
            kind=InvitationKind.GUEST,
            institution_id=guest.institution_id,
            email=guest.email,
            guest_name=guest.name or None,
            required=guest.required,
            number=0,
        )
        for guest in guests
    ]


def guests_of(invitations: Iterable[Invitation]) -> list[Guest]:
    """A held conference's guests, for the review conference's plan."""
    return [
        Guest(i.email, i.guest_name or "", i.institution_id, i.required)
        for i in invitations
        if i.kind is InvitationKind.GUEST and i.email
    ]


async def current_guests(
    session: AsyncSession, guests: Iterable[Guest], *, mail_enabled: bool
) -> list[Guest]:
    """The guests as they can be invited now (a review conference's, carried over from the
    last one, or a plan's when its poll starts): none when this Round Table sends no e-mail;
    an institution's guest at the institution's contact address as it is now, left out when it
    has none any more; an address that is another guest's already, left out."""
    if not mail_enabled:
        return []
    guests = list(guests)
    wanted = [guest.institution_id for guest in guests if guest.institution_id is not None]
    contacts: dict[int, str | None] = {}
    if wanted:
        rows = await session.execute(
            select(Institution.id, Institution.email).where(Institution.id.in_(wanted))
        )
        contacts = {institution_id: email for institution_id, email in rows}
    current: list[Guest] = []
    for guest in guests:
        now_at = guest.email
        if guest.institution_id is not None:
            now_at = contacts.get(guest.institution_id) or ""
        if now_at and not any(mailing.same(now_at, other.email) for other in current):
            current.append(replace(guest, email=now_at))
    return current
