"""A conference with invitees by e-mail, for the mail tests: a coordinator, two members of two
institutions with confirmed addresses, two guests not on Telegram (a hospital's contact address
and a named doctor), and a case opened from a referral whose sealed data names the child."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from pydantic import SecretStr
from sqlalchemy import select, update

from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.config import isolated_settings
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import (
    Channel,
    Conference,
    InstitutionKind,
    Invitation,
    InvitationKind,
    Member,
    OutboxRow,
    OutboxStatus,
    Referral,
    ReferralStatus,
    Role,
)
from bot.core.outbox import Letter
from bot.core.runtime import Runtime
from bot.services import decisions, invitation_mail, invitations, members, planning
from bot.services.members import Actor
from bot.services.planning import Defaults, Plan, Started
from bot.transport.mail.notices import mail_kinds
from tests.bot.test_conferences import _slots
from tests.bot.test_members import _join
from tests.rows import case_from

BOT = "konference@mesto.example.cz"
MAIL_FROM = f"Kulatý stůl Cheb <{BOT}>"
COORDINATOR = "vedouci.ospod@mesto.example.cz"
TEACHER = "ucitelka@zs-hradebni.example.cz"
OFFICER = "policista@policie.example.cz"
HOSPITAL = "detske.oddeleni@nemocnice.example.cz"
DOCTOR = "dvorakova@ambulance.example.cz"
ADDRESSES = (COORDINATOR, TEACHER, OFFICER, HOSPITAL, DOCTOR)
# What the referral's sealed data says of the child: none of it may reach a mail.
CHILD = ("Tereza Malinová", "2015", "šikana ve třídě", "spí u babičky")
DEFAULTS = Defaults()


@dataclass(frozen=True)
class World:
    coordinator: Actor
    teacher: Actor
    officer: Actor
    conference_id: int
    case_code: str
    hospital: int  # the guests' invitations
    doctor: int


def runtime(database: Database, clock: FakeClock, cipher: Cipher) -> Runtime:
    settings = isolated_settings(
        smtp_url=SecretStr("smtp://127.0.0.1:2525"),
        mail_from=MAIL_FROM,
        default_locale="cs",
    )
    return Runtime(settings=settings, database=database, clock=clock, cipher=cipher)


async def world(database: Database, clock: FakeClock, cipher: Cipher) -> World:
    """The poll started, the guests added (as the planning dialog does) and mailed."""
    coordinator = await _join(database, clock, Role.COORDINATOR, 1, institution="OSPOD Cheb")
    teacher = await _join(database, clock, Role.REFERRER, 2)
    officer = await _join(database, clock, Role.PARTICIPANT, 3, institution="Policie Cheb")
    async with database.transaction() as session:
        for actor, address in ((coordinator, COORDINATOR), (teacher, TEACHER), (officer, OFFICER)):
            await session.execute(
                update(Member).where(Member.id == actor.member_id).values(email=address)
            )
        referral = Referral(
            code="R-2026-0001",
            district_id=coordinator.district_id,
            referrer_id=teacher.member_id,
            institution_id=teacher.institution_id,
            status=ReferralStatus.ACCEPTED,
            step="done",
            sealed=cipher.encrypt_json(
                {"name": CHILD[0], "born": CHILD[1], "concern": CHILD[2], "tried": CHILD[3]}
            ),
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(referral)
        await session.flush()
        case = await case_from(
            session, referral, "PK-2026-0001", coordinator.member_id, now=clock.now()
        )
        started = await planning.start_poll(
            session,
            coordinator,
            Plan(
                case_id=case.id,
                invited={teacher.institution_id: True, officer.institution_id: True},
                place="OSPOD Cheb, zasedací místnost",
            ),
            now=clock.now(),
            defaults=DEFAULTS,
            mail_enabled=True,
        )
        assert isinstance(started, Started)
        district = await members.ensure_district(session, "Cheb", now=clock.now())
        hospital = await members.ensure_institution(
            session, district, "Nemocnice Cheb", InstitutionKind.DOCTOR, now=clock.now()
        )
        guests = [
            Invitation(
                conference_id=started.conference_id,
                kind=InvitationKind.GUEST,
                institution_id=hospital.id,
                email=HOSPITAL,
                required=True,
            ),
            Invitation(
                conference_id=started.conference_id,
                kind=InvitationKind.GUEST,
                guest_name="MUDr. Eva Dvořáková",
                email=DOCTOR,
                required=False,
            ),
        ]
        session.add_all(guests)
        await session.flush()
        conference = await session.get_one(Conference, started.conference_id)
        await invitation_mail.plan_poll_mails(session, conference, now=clock.now())
        return World(
            coordinator,
            teacher,
            officer,
            started.conference_id,
            case.code,
            guests[0].id,
            guests[1].id,
        )


async def schedule(database: Database, clock: FakeClock, world: World, index: int = 0) -> None:
    """The coordinator fixes the conference at the poll's `index`-th time."""
    slot = (await _slots(database, world.conference_id))[index]
    async with database.transaction() as session:
        await decisions.confirm(
            session, world.coordinator, world.conference_id, slot.id, now=clock.now()
        )


async def mail_rows(database: Database, kind: str | None = None) -> list[OutboxRow]:
    async with database.transaction() as session:
        query = select(OutboxRow).where(OutboxRow.channel == Channel.MAIL).order_by(OutboxRow.id)
        if kind is not None:
            query = query.where(OutboxRow.kind == kind)
        return list(await session.scalars(query))


async def send_due(runtime: Runtime) -> list[tuple[Letter, EmailMessage | None]]:
    """What the dispatcher does with the due mail rows, without SMTP: claim, render, mark sent
    (or skipped when moot). Each mail as its recipient's server gets it: bytes parsed again."""
    kinds = mail_kinds(runtime)
    done: list[tuple[Letter, EmailMessage | None]] = []
    while True:
        async with runtime.database.transaction() as session:
            letters = await outbox.claim_mail(
                session, now=runtime.clock.now(), worker="test", limit=50
            )
        if not letters:
            return done
        for letter in letters:
            built = await kinds[letter.kind].render(letter)
            received = None
            if built is not None:
                parsed = message_from_bytes(built.as_bytes(), policy=policy.default)
                assert isinstance(parsed, EmailMessage)
                received = parsed
            status = OutboxStatus.SENT if built is not None else OutboxStatus.SKIPPED
            async with runtime.database.transaction() as session:
                await outbox.finish(
                    session, letter.id, status, now=runtime.clock.now(), outcome="test"
                )
            done.append((letter, received))


async def scheduled(database: Database, clock: FakeClock, cipher: Cipher) -> World:
    """The world, its conference fixed at the poll's first time."""
    fixed = await world(database, clock, cipher)
    await schedule(database, clock, fixed)
    return fixed


async def reschedule(database: Database, clock: FakeClock, world: World) -> None:
    """A new time chosen directly (SEQUENCE + 1)."""
    async with database.transaction() as session:
        times = await decisions.new_times(
            session, world.coordinator, world.conference_id, now=clock.now(), defaults=DEFAULTS
        )
        await decisions.reschedule(
            session, world.coordinator, world.conference_id, times[-1], now=clock.now()
        )


async def cancel(database: Database, clock: FakeClock, world: World) -> None:
    async with database.transaction() as session:
        await invitations.cancel_conference(
            session, world.coordinator, world.conference_id, now=clock.now()
        )


async def conference(database: Database, world: World) -> Conference:
    async with database.transaction() as session:
        return await session.get_one(Conference, world.conference_id)
