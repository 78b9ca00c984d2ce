"""The demo's cast (`bot.demo`): who they are, and what they can do in the bot, in its mail
and on its web page, before the story makes them do it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.app import WEB_SERVER_KEY, RoundTableApp
from bot.core.clock import FakeClock
from bot.core.models import Conference, InstitutionKind, Role
from bot.core.runtime import Runtime
from bot.demo_steps import tap, until
from bot.demo_web import DemoBrowser
from bot.sandbox import BotApiSandbox, Person
from bot.sandbox.mail import MailPerson, MailServer, calendar_part
from bot.services import addresses, members
from bot.transport.mail.imap import Intake
from bot.transport.telegram import delivery
from handlers import mail_replies

# The paediatrician's practice is not on Telegram: invited by e-mail, answering from a calendar.
MAILBOX = "konference@cheb.example.cz"
PAEDIATRICS = "Pediatrie Cheb"
PAEDIATRICS_ADDRESS = "ordinace@pediatrie-cheb.example.cz"
WEB = "https://kulatystul.cheb.example.cz"  # the poll's web page, behind a reverse proxy
LINK = re.compile(r"\?start=([A-Za-z0-9_-]+)")


class Cast:
    """The cast and the helpers that make them act."""

    def __init__(
        self,
        sandbox: BotApiSandbox,
        runtime: Runtime,
        application: RoundTableApp,
        clock: FakeClock,
        mail: MailServer,
    ) -> None:
        self.sandbox = sandbox
        self.runtime = runtime
        self.application = application
        self.clock = clock
        # The paediatrician reads her mail; her calendar's answers reach the bot's mailbox,
        # which the bot reads as it reads its IMAP mailbox (the demo has no IMAP server: the
        # mail goes to the reader's intake directly).
        self.doctor = MailPerson(mail, PAEDIATRICS_ADDRESS, "MUDr. Petra Nováková")
        self.mailbox = Intake(
            runtime.database,
            clock=runtime.clock,
            cipher=runtime.cipher,
            organizer=MAILBOX,
            on_applied=mail_replies.after_reply(application),
        )
        self.admin = sandbox.person(1001, "Alena", last_name="Dvořáková", language_code="cs")
        self.coordinator = sandbox.person(1002, "Hana", last_name="Králová", language_code="en")
        self.teacher = sandbox.person(1003, "Jana", last_name="Malá", language_code="cs")
        self.officer = sandbox.person(1004, "Tomáš", last_name="Beneš", language_code="cs")
        self.psychologist = sandbox.person(1005, "Olena", last_name="Koval", language_code="uk")
        self.stranger = sandbox.person(1006, "Eva", language_code="cs")
        self._web: DemoBrowser | None = None

    @property
    def web(self) -> DemoBrowser:
        """The browser of the doctor and of the Mini App, once the page's server listens."""
        if self._web is None:
            self._web = DemoBrowser(WEB, self.application.bot_data[WEB_SERVER_KEY].port)
        return self._web

    @property
    def cast(self) -> dict[str, Person]:
        return {
            "admin": self.admin,
            "coordinator": self.coordinator,
            "teacher": self.teacher,
            "police": self.officer,
            "psychologist": self.psychologist,
            "stranger": self.stranger,
        }

    async def first_admin_code(self) -> str:
        """What `roundtable invite --institution ... --role admin` does on the server."""
        now = self.runtime.clock.now()
        async with self.runtime.database.transaction() as session:
            district = await members.ensure_district(session, "Cheb", now=now)
            town = await members.ensure_institution(
                session, district, "Městský úřad Cheb", InstitutionKind.SOCIAL_DEPARTMENT, now=now
            )
            invite = await members.create_invite(
                session,
                institution_id=town.id,
                role=Role.ADMIN,
                creator=None,
                now=now,
                ttl=self.runtime.settings.invite_ttl,
            )
        return invite.code

    async def paediatrics_contact(self) -> None:
        """The paediatric practice has no one on Telegram: the operator gives its contact
        address (`roundtable district --institution "Pediatrie Cheb" --email ...`)."""
        now = self.runtime.clock.now()
        async with self.runtime.database.transaction() as session:
            district = await members.ensure_district(session, "Cheb", now=now)
            await members.ensure_institution(
                session, district, PAEDIATRICS, InstitutionKind.DOCTOR, now=now
            )
            await addresses.set_contact_by_name(
                session, "Cheb", PAEDIATRICS, PAEDIATRICS_ADDRESS, now=now
            )

    async def calendar_answers(self, partstat: str) -> None:
        """The paediatrician opens the newest invitation and presses her calendar's button."""
        invitation = await self.doctor.next_mail()
        while calendar_part(invitation.message) is None:  # a reminder, say: read, no button
            invitation = await self.doctor.next_mail()
        await self.mailbox.take(self.doctor.reply(invitation, partstat, at=self.clock.now()))
        await self.runtime_settle()

    async def join(self, person: Person, code: str, language: str) -> None:
        """Joining: the language, then confidentiality confirmed with one tap before anything
        of a case reaches them."""
        await person.send_text(f"/start {code}")
        await person.next_message()
        await person.press(language)
        await person.next_message()
        prompt = await until(person, "cn:")
        await tap(person, prompt, r"cn:\d+$")
        await person.next_message()

    async def admin_invites(
        self, institution: str, role_label: str, *, new_kind_label: str | None = None
    ) -> str:
        """The admin (who chose Czech) makes an invite link in the bot and copies its code."""
        admin = self.admin
        await admin.send_text("/invite")
        await admin.next_message()
        if new_kind_label is None:
            await admin.press(institution)
        else:
            await admin.press("Nová instituce")
            await admin.next_message()
            await admin.send_text(institution)
            await admin.next_message()
            await admin.press(new_kind_label)
        await admin.next_message()
        await admin.press(role_label)
        found = LINK.search((await admin.next_message()).text or "")
        if found is None:
            raise RuntimeError("the bot did not show an invite link")
        return found.group(1)

    @property
    def owners(self) -> tuple[Person, ...]:
        return self.teacher, self.officer, self.psychologist

    async def runtime_settle(self) -> None:
        """Let the outbox note where each invitation went before anyone answers it."""
        await self.application.bot_data[delivery.DISPATCHER_KEY].settle()

    async def sweep(self) -> None:
        jobs = self.application.job_queue.get_jobs_by_name("sweep")  # type: ignore[union-attr]
        await jobs[0].run(self.application)
        await self.runtime_settle()

    async def held_conference(self) -> tuple[datetime, datetime]:
        """When the case's first conference starts and ends."""
        async with self.runtime.database.transaction() as session:
            conference = (
                await session.scalars(select(Conference).order_by(Conference.id).limit(1))
            ).one()
        starts = conference.starts_at
        assert starts is not None
        return starts, starts + timedelta(minutes=conference.duration_minutes)
