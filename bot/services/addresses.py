"""E-mail addresses: a member's own work address (confirmed by a one-time code mailed to it),
an institution's contact address (set by an admin or the operator), and their validation.

A member's new address is used only once the code mailed to it has been typed back: the code
is six digits, valid for 30 minutes and for five wrong tries; asking again replaces it, and at
most three codes an hour are mailed. Only the code's SHA-256 is kept for checking; the code
itself is kept encrypted for the mail that carries it (`mail.code`, rendered at send time by
bot.transport.mail.code_mail). Giving an address again (confirmed by its owner, or set by an
admin) clears its mark of failing: the person has said it works.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.mail_tables import EmailConfirmation
from bot.core.models import Channel, Institution, InstitutionKind, Member
from bot.services import audit, mailing
from bot.services.errors import NotFound, ServiceError
from bot.services.members import Actor, ensure_district, require_admin

MAX_ADDRESS = 254
CODE_DIGITS = 6
CODE_VALID = timedelta(minutes=30)
MAX_TRIES = 5
CODES_PER_HOUR = 3
CODE_KIND = "mail.code"


class AddressError(ServiceError):
    """An address or a code that cannot be used as given."""


class InvalidAddress(AddressError):
    """Not an e-mail address (or longer than an address may be)."""


class SameAddress(AddressError):
    """The member's confirmed address already: nothing to confirm."""


class TakenAddress(AddressError):
    """Another active member confirmed this address: a calendar's answer from it could not be
    told apart (bot.services.calendar_replies), so each member gives their own."""


class TooManyCodes(AddressError):
    """Three codes were mailed within the hour: the next one waits."""

    def __init__(self, again_at: datetime) -> None:
        super().__init__("too many codes")
        self.again_at = again_at


def normalised(text: str) -> str:
    """The address as it is kept: validated (syntax only, no DNS) and normalised (the domain in
    lower case, Unicode normalised); InvalidAddress otherwise."""
    text = text.strip()
    if not text or len(text) > MAX_ADDRESS:
        raise InvalidAddress("empty or too long")
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidAddress("not an address") from None
    if len(valid.normalized) > MAX_ADDRESS:
        raise InvalidAddress("too long")
    return valid.normalized


def domain_of(address: str) -> str:
    """What an audit entry or a log may say of an address: its domain, never the mailbox."""
    return address.rpartition("@")[2].lower()


# A member's own address.


@dataclass(frozen=True)
class OwnAddress:
    address: str | None
    failing: bool = False


@dataclass(frozen=True)
class CodeSent:
    confirmation_id: int
    address: str
    expires_at: datetime


@dataclass(frozen=True)
class Confirmed:
    address: str


@dataclass(frozen=True)
class WrongCode:
    tries_left: int


@dataclass(frozen=True)
class NoCode:
    """No code is waiting: none was asked for, it expired, or its tries are used up."""


async def own_address(session: AsyncSession, actor: Actor) -> OwnAddress:
    member = await session.get_one(Member, actor.member_id)
    if member.email is None:
        return OwnAddress(None)
    return OwnAddress(member.email, await mailing.failing(session, member.email))


async def _not_taken(session: AsyncSession, member_id: int, address: str) -> None:
    taken = await session.scalar(
        select(Member.id)
        .where(
            func.lower(Member.email) == address.lower(),
            Member.active.is_(True),
            Member.id != member_id,
        )
        .limit(1)
    )
    if taken is not None:
        raise TakenAddress(domain_of(address))


async def request_code(
    session: AsyncSession, actor: Actor, cipher: Cipher, text: str, *, now: datetime
) -> CodeSent:
    """A new code for the address, mailed to it; the member's earlier pending code ends."""
    address = normalised(text)
    member = await session.get_one(Member, actor.member_id, with_for_update=True)
    if mailing.same(member.email, address):
        raise SameAddress(domain_of(address))
    await _not_taken(session, member.id, address)
    since = now - timedelta(hours=1)
    recent = list(
        await session.scalars(
            select(EmailConfirmation.created_at)
            .where(EmailConfirmation.member_id == member.id, EmailConfirmation.created_at > since)
            .order_by(EmailConfirmation.created_at)
        )
    )
    if len(recent) >= CODES_PER_HOUR:
        raise TooManyCodes(recent[-CODES_PER_HOUR] + timedelta(hours=1))
    await _end_pending(session, member.id, now=now)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    confirmation = EmailConfirmation(
        member_id=member.id,
        address=address,
        code_hash="",
        code=cipher.encrypt(code.encode()),
        created_at=now,
        expires_at=now + CODE_VALID,
        attempts=0,
    )
    session.add(confirmation)
    await session.flush()
    confirmation.code_hash = _hash(confirmation, code)
    mail = outbox.about_member(
        member.id,
        f"mail.code:{confirmation.id}",
        CODE_KIND,
        due_at=now,
        expires_at=confirmation.expires_at,
        payload={"confirmation": confirmation.id},
        channel=Channel.MAIL,
        address=address,
    )
    await outbox.plan(session, [mail], now=now)
    await audit.acted(
        session, actor, "member.email_code_sent", member, at=now, domain=domain_of(address)
    )
    return CodeSent(confirmation.id, address, confirmation.expires_at)


def _hash(confirmation: EmailConfirmation, code: str) -> str:
    """The code's SHA-256, salted with its confirmation (the same code for two people or two
    addresses hashes differently)."""
    text = f"{confirmation.id}:{confirmation.member_id}:{confirmation.address}:{code}"
    return hashlib.sha256(text.encode()).hexdigest()


async def _end_pending(session: AsyncSession, member_id: int, *, now: datetime) -> None:
    await session.execute(
        update(EmailConfirmation)
        .where(
            EmailConfirmation.member_id == member_id,
            EmailConfirmation.confirmed_at.is_(None),
            EmailConfirmation.expires_at > now,
        )
        .values(expires_at=now)
    )


async def _pending(
    session: AsyncSession, member_id: int, *, now: datetime
) -> EmailConfirmation | None:
    return await session.scalar(
        select(EmailConfirmation)
        .where(
            EmailConfirmation.member_id == member_id,
            EmailConfirmation.confirmed_at.is_(None),
            EmailConfirmation.expires_at > now,
            EmailConfirmation.attempts < MAX_TRIES,
        )
        .order_by(EmailConfirmation.id.desc())
        .limit(1)
        .with_for_update()
    )


async def confirm_code(
    session: AsyncSession, actor: Actor, code: str, *, now: datetime
) -> Confirmed | WrongCode | NoCode:
    """The code typed back: right, the address is the member's (audited); wrong, one try less
    (kept: the caller commits it)."""
    pending = await _pending(session, actor.member_id, now=now)
    if pending is None:
        return NoCode()
    typed = "".join(code.split())
    if not typed.isdigit() or not hmac.compare_digest(_hash(pending, typed), pending.code_hash):
        pending.attempts += 1
        await session.flush()
        return WrongCode(MAX_TRIES - pending.attempts)
    pending.confirmed_at = now
    member = await session.get_one(Member, actor.member_id, with_for_update=True)
    await _not_taken(session, member.id, pending.address)  # confirmed by another meanwhile
    member.email = pending.address
    await mailing.clear(session, pending.address)
    await audit.acted(
        session,
        actor,
        "member.email_confirmed",
        member,
        at=now,
        domain=domain_of(pending.address),
    )
    return Confirmed(pending.address)


async def remove_own(session: AsyncSession, actor: Actor, *, now: datetime) -> bool:
    """The member's address goes (and any code waiting); False if there was none."""
    member = await session.get_one(Member, actor.member_id, with_for_update=True)
    await _end_pending(session, member.id, now=now)
    if member.email is None:
        return False
    member.email = None
    await audit.acted(session, actor, "member.email_removed", member, at=now)
    return True


@dataclass(frozen=True)
class CodeMail:
    """What the code's mail says, read at send time."""

    address: str
    code: str
    locale: str
    expires_at: datetime


async def code_mail(
    session: AsyncSession, cipher: Cipher, confirmation_id: int, *, now: datetime
) -> CodeMail | None:
    """The code to mail, or None when it is moot (confirmed, replaced, expired, used up)."""
    confirmation = await session.get(EmailConfirmation, confirmation_id)
    if (
        confirmation is None
        or confirmation.confirmed_at is not None
        or confirmation.expires_at <= now
        or confirmation.attempts >= MAX_TRIES
    ):
        return None
    member = await session.get_one(Member, confirmation.member_id)
    if not member.active:
        return None
    return CodeMail(
        confirmation.address,
        cipher.decrypt(confirmation.code).decode(),
        member.locale,
        confirmation.expires_at,
    )


# An institution's contact address.


@dataclass(frozen=True)
class Contact:
    institution_id: int
    name: str
    address: str | None

    @classmethod
    def of(cls, institution: Institution) -> Contact:
        return cls(institution.id, institution.name, institution.email)


async def contacts(session: AsyncSession, actor: Actor, *, now: datetime) -> list[Contact]:
    """The district's institutions (not the guardians' register) with their contact address,
    for an admin."""
    require_admin(actor, now=now, action="institution.contacts")
    rows = await session.scalars(
        select(Institution)
        .where(
            Institution.district_id == actor.district_id,
            Institution.kind != InstitutionKind.GUARDIANS,
        )
        .order_by(Institution.name, Institution.id)
    )
    return [Contact.of(row) for row in rows]


async def contact(
    session: AsyncSession, actor: Actor, institution_id: int, *, now: datetime
) -> Contact:
    institution = await _admins_institution(session, actor, institution_id, now=now)
    return Contact.of(institution)


async def _admins_institution(
    session: AsyncSession, actor: Actor, institution_id: int, *, now: datetime
) -> Institution:
    require_admin(actor, now=now, action="institution.email", subject=institution_id)
    institution = await session.get(Institution, institution_id)
    if (
        institution is None
        or institution.district_id != actor.district_id
        or institution.kind is InstitutionKind.GUARDIANS
    ):
        raise audit.refused(actor, "institution.email", "institution", institution_id, at=now)
    return institution


async def set_contact(
    session: AsyncSession,
    actor: Actor,
    institution_id: int,
    text: str | None,
    *,
    now: datetime,
) -> Contact:
    """An admin sets (validated) or removes (None) an institution's contact address."""
    institution = await _admins_institution(session, actor, institution_id, now=now)
    await _set(session, actor, institution, None if text is None else normalised(text), now=now)
    return Contact.of(institution)


async def set_contact_by_name(
    session: AsyncSession,
    district_name: str | None,
    institution_name: str,
    text: str | None,
    *,
    now: datetime,
) -> Contact:
    """The operator (`roundtable district --institution NAME --email ADDRESS`) sets or removes
    (None or "") an institution's contact address."""
    district = await ensure_district(session, district_name, now=now)
    institution = await session.scalar(
        select(Institution).where(
            Institution.district_id == district.id,
            Institution.name == " ".join(institution_name.split()),
        )
    )
    if institution is None or institution.kind is InstitutionKind.GUARDIANS:
        raise NotFound(f"no institution named {institution_name!r} in {district.name}")
    address = normalised(text) if text is not None and text.strip() else None
    await _set(session, None, institution, address, now=now)
    return Contact.of(institution)


async def _set(
    session: AsyncSession,
    actor: Actor | None,
    institution: Institution,
    address: str | None,
    *,
    now: datetime,
) -> None:
    institution.email = address
    if address is None:
        await audit.acted(session, actor, "institution.email_removed", institution, at=now)
        return
    await mailing.clear(session, address)
    await audit.acted(
        session, actor, "institution.email_set", institution, at=now, domain=domain_of(address)
    )
