"""`roundtable demo`: the real bot against the local Bot API stand-in, with a scripted cast.

It shows what Round Table does today, person by person, as each of them sees it on their phone.
Nothing touches real data: the database and the key live in a temporary directory, and the clock
is injected, so the story reads the same on every run.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from icalendar import Calendar, Event
from pydantic import SecretStr
from sqlalchemy import select

from bot import outbox
from bot.app import RoundTableApp, build_application, serve
from bot.clock import FakeClock
from bot.config import Settings, isolated_settings
from bot.crypto import load_cipher
from bot.db import Database
from bot.migrate import upgrade
from bot.models import Conference, InstitutionKind, Role
from bot.runtime import Runtime
from bot.sandbox import BotApiSandbox, FloodLimits, Person
from bot.sandbox.models import BotMessage
from bot.services import members

DEMO_TOKEN = "7000000001:DEMO-sandbox-token"  # noqa: S105 - only the local stand-in knows it
# Monday 23 November 2026, 08:00 in Cheb.
DEMO_START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
LINK = re.compile(r"\?start=([A-Za-z0-9_-]+)")
CODE = re.compile(r"R-\d{4}-\d{4}")


class Story:
    """The cast and the helpers that make them act."""

    def __init__(
        self,
        sandbox: BotApiSandbox,
        runtime: Runtime,
        application: RoundTableApp,
        clock: FakeClock,
    ) -> None:
        self.sandbox = sandbox
        self.runtime = runtime
        self.application = application
        self.clock = clock
        self.admin = sandbox.person(1001, "Alena", last_name="Dvořáková", language_code="cs")
        self.coordinator = sandbox.person(1002, "Hana", last_name="Králová", language_code="en")
        self.teacher = sandbox.person(1003, "Jana", last_name="Malá", language_code="cs")
        self.officer = sandbox.person(1004, "Tomáš", last_name="Beneš", language_code="cs")
        self.psychologist = sandbox.person(1005, "Olena", last_name="Koval", language_code="uk")
        self.stranger = sandbox.person(1006, "Eva", language_code="cs")

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

    async def join(self, person: Person, code: str, language: str) -> None:
        await person.send_text(f"/start {code}")
        await person.next_message()
        await person.press(language)
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

    async def play(self) -> None:
        await self.join(self.admin, await self.first_admin_code(), "Čeština")
        coordinator_code = await self.admin_invites(
            "OSPOD Cheb", "koordinátor", new_kind_label="Sociálně-právní ochrana dětí (OSPOD)"
        )
        await self.join(self.coordinator, coordinator_code, "English")
        teacher_code = await self.admin_invites(
            "ZŠ Hradební", "oznamovatel", new_kind_label="Škola"
        )
        await self.join(self.teacher, teacher_code, "Čeština")
        police_code = await self.admin_invites(
            "Policie ČR Cheb", "účastník", new_kind_label="Policie"
        )
        await self.join(self.officer, police_code, "Čeština")

        # The coordinator invites the counselling centre's psychologist herself.
        await self.admin_invites(
            "PPP Cheb", "účastník", new_kind_label="Pedagogicko-psychologická poradna (PPP)"
        )
        coordinator = self.coordinator
        await coordinator.send_text("/invite")
        await coordinator.next_message()
        await coordinator.press("PPP Cheb")
        await coordinator.next_message()
        await coordinator.press("participant")
        found = LINK.search((await coordinator.next_message()).text or "")
        assert found is not None
        await self.join(self.psychologist, found.group(1), "Українська")

        # Someone without an invite, then with a link that was already used.
        await self.stranger.send_text("Dobrý den, můžu se přidat?")
        await self.stranger.next_message()
        await self.stranger.send_text(f"/start {teacher_code}")
        await self.stranger.next_message()

        await self.admin.send_text("/members")
        await self.admin.next_message()

        await self.refer_and_triage()
        await self.find_a_date()

    async def refer_and_triage(self) -> None:
        """The teacher reports a concern (in Czech), the coordinator (in English) asks her a
        question, she answers, and the coordinator accepts: a case is opened."""
        teacher, coordinator = self.teacher, self.coordinator
        await teacher.press("Nahlásit obavy")  # the button on her home message
        await teacher.next_message()
        await teacher.press("Ne")  # not in danger right now
        await teacher.next_message()
        for typed in ("Kryštof Dvořák", "2015", "5.B"):
            await teacher.send_text(typed)
            await teacher.next_message()
        for concern in ("záškoláctví", "šikana a kyberšikana", "Hotovo"):
            await teacher.press(concern)
            await teacher.next_message()
        await teacher.send_text(
            "Od října chybí skoro každé pondělí. Spolužákům říká, že mu starší kluci berou "
            "peníze na svačinu."
        )
        await teacher.next_message()
        for label in ("Přeskočit", "Informováni, souhlasí", "Běžné", "Odeslat"):
            await teacher.press(label)
            await teacher.next_message()
        found = CODE.search(teacher.last_bot_message().text or "")
        if found is None:
            raise RuntimeError("the bot did not give a referral code")
        code = found.group(0)

        await coordinator.next_message()  # the notification: code, urgency, school only
        await coordinator.press(f"Open {code}")
        await coordinator.next_message()
        await coordinator.press("Ask the referrer")
        await coordinator.next_message()
        await coordinator.send_text("Does he have older siblings at your school?")
        await coordinator.next_message()

        await teacher.next_message()  # the question
        await teacher.press("Odpověď")
        await teacher.next_message()
        await teacher.send_text("Ano, sestru v 9.A. Rodiče o tom vědí, přijdou na schůzku.")
        await teacher.next_message()

        await coordinator.next_message()  # "The referrer answered ..."
        await coordinator.press(f"Open {code}")
        await coordinator.next_message()
        await coordinator.press("Accept")
        await teacher.next_message()  # "Your referral ... was accepted"
        await coordinator.send_text("/cases")
        while "Open cases" not in (coordinator.last_bot_message().text or ""):
            await coordinator.next_message()

    async def find_a_date(self) -> None:
        """The officer shares his calendar (court all Wednesday); the coordinator plans the
        conference in three taps; the school, the police and the counselling centre answer the
        poll, each in their language; the coordinator confirms the best time."""
        officer, coordinator = self.officer, self.coordinator
        wednesday = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
        await officer.send_document(
            "kalendar.ics", _busy_calendar(wednesday, wednesday.replace(hour=16)), "text/calendar"
        )
        await officer.next_message()
        await coordinator.press("Plan: PK-2026-0001")
        await _until(coordinator, "pl:")
        # Truancy and bullying pre-tick the school and the counselling centre; the police
        # officer knows the family, so the coordinator adds the police as optional.
        await coordinator.press("☐ Policie ČR Cheb")
        await _until(coordinator, "pl:")
        await coordinator.press("★ required", message_id=None)
        await _until(coordinator, "pl:")
        await coordinator.press("Send the poll")
        await _until(coordinator, "cf:o:")  # the live board
        taps = {self.teacher: (0, 1), self.officer: (0, 2, 2), self.psychologist: (0, 1, 3)}
        for person, times in taps.items():
            poll = await _until(person, "ps:")
            for index in times:
                current = person.messages[poll.message_id]
                labels = [text for text, data in _buttons(current) if data.startswith("pv:")]
                await person.press(labels[index], message_id=poll.message_id)
                await person.next_message()
            send = [text for text, data in _buttons(poll) if data.startswith("ps:")]
            await person.press(send[0], message_id=poll.message_id)
        offer = await _until(coordinator, "cf:c:")
        confirm = [text for text, data in _buttons(offer) if data.startswith("cf:c:")]
        await coordinator.press(confirm[0], message_id=offer.message_id)
        await self.invitations()

    async def invitations(self) -> None:
        """Everyone gets the invitation with its calendar file. The school accepts, the
        psychologist is not sure yet, the police officer declines (he is in court that day)
        with a reason; the coordinator, flagged at once, picks a new date in one tap and
        everyone is invited again (same UID, SEQUENCE 1). All accept; two days before, the
        reminders come. In the end the coordinator cancels, so the calendars get a CANCEL."""
        coordinator, officer = self.coordinator, self.officer
        answers = {self.teacher: "a", self.psychologist: "t", officer: "d"}
        first: dict[Person, int] = {}
        for person, answer in answers.items():
            invitation = await _until(person, "iv:")
            first[person] = invitation.message_id
            press = [t for t, data in _buttons(invitation) if data.endswith(f":{answer}")]
            await self.runtime_settle()
            await person.press(press[0], message_id=invitation.message_id)
        await _until(officer, "ir:")  # "type a short reason, if you like"
        await officer.send_text("Ten den mám celý den soud.")
        flag = await _until(coordinator, "ca:n:", text_part="declined the case")  # flagged
        await _until(coordinator, "", text="gave for declining")  # and the reason, protected
        new_date = [t for t, data in _buttons(flag) if data.startswith("ca:n:")]
        await coordinator.press(new_date[0], message_id=flag.message_id)
        times = await _until(coordinator, "ca:t:")
        choice = [t for t, data in _buttons(times) if data.startswith("ca:t:")]
        await coordinator.press(choice[0], message_id=times.message_id)
        for person in answers:
            invitation = await _until(person, "iv:")
            while invitation.message_id == first[person]:  # the old one, redrawn
                invitation = await _until(person, "iv:")
            press = [t for t, data in _buttons(invitation) if data.endswith(":a")]
            await self.runtime_settle()
            await person.press(press[0], message_id=invitation.message_id)
        board = await _until(coordinator, "ca:x:", text_part="3")
        starts = await self.starts_at()
        self.clock.set(starts - timedelta(days=2))
        await self.sweep()
        for person in answers:
            await _until(person, "", text="⏰")
        await coordinator.press("❌ Cancel the conference", message_id=board.message_id)
        await _until(coordinator, "ca:y:")
        await coordinator.press("❌ Yes, cancel it")
        for person in answers:
            await _until(person, "", text="PK-2026-0001", document=True)

    async def runtime_settle(self) -> None:
        """Let the outbox note where each invitation went before anyone answers it."""
        await self.application.bot_data[outbox.DISPATCHER_KEY].settle()

    async def sweep(self) -> None:
        jobs = self.application.job_queue.get_jobs_by_name("sweep")  # type: ignore[union-attr]
        await jobs[0].run(self.application)
        await self.runtime_settle()

    async def starts_at(self) -> datetime:
        async with self.runtime.database.transaction() as session:
            starts: datetime | None = await session.scalar(select(Conference.starts_at))
        assert starts is not None
        return starts


async def _until(
    person: Person,
    data_prefix: str,
    *,
    text: str | None = None,
    text_part: str | None = None,
    document: bool = False,
) -> BotMessage:
    """The next message with a button whose data starts with the prefix (or with the text)."""
    while True:
        message = await person.next_message()
        shown = message.text or message.caption or ""
        if document and message.document is None:
            continue
        if text is not None and text in shown and not message.buttons():
            return message
        if text_part is not None and text_part not in shown:
            continue
        if text is None and any(data.startswith(data_prefix) for _t, data in _buttons(message)):
            return message


def _buttons(message: BotMessage) -> list[tuple[str, str]]:
    return [(label, data or "") for row in message.buttons() for label, data in row]


def _busy_calendar(start: datetime, end: datetime) -> bytes:
    """An .ics export with one busy event, as Outlook writes it (the title stays private)."""
    calendar = Calendar()
    calendar.add("prodid", "-//Round Table demo//EN")
    calendar.add("version", "2.0")
    event = Event()
    event.add("uid", "court-hearing@example.org")
    event.add("dtstamp", start)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", "Soudní jednání")
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def demo_settings(data_dir: Path, sandbox: BotApiSandbox) -> Settings:
    return isolated_settings(
        token=SecretStr(DEMO_TOKEN),
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'demo.sqlite3'}",
        encryption_key_file=data_dir / "demo.key",
        bot_api_url=sandbox.base_url,
        bot_file_url=sandbox.base_file_url,
    )


async def run_demo(out: str | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="roundtable-demo-") as scratch:
        data_dir = Path(scratch)
        clock = FakeClock(DEMO_START)
        # The cast answers at machine speed, not a person's: a burst allowance a person typing
        # would never exceed keeps Telegram's per-chat limit from slowing the story down.
        sandbox = BotApiSandbox(
            token=DEMO_TOKEN, clock=clock.timestamp, flood=FloodLimits(chat_burst=100)
        )
        await sandbox.start()
        settings = demo_settings(data_dir, sandbox)
        database = Database(settings.effective_database_url)
        try:
            await upgrade(database)
            runtime = Runtime(
                settings=settings,
                database=database,
                clock=clock,
                cipher=load_cipher(settings, create=True),
            )
            application = build_application(runtime)
            story = Story(sandbox, runtime, application, clock)
            stop = asyncio.Event()
            bot = asyncio.create_task(serve(application, stop))
            try:
                await story.play()
            finally:
                stop.set()
                await bot
        finally:
            await sandbox.stop()
            await database.dispose()
    _publish(story, out)


def _publish(story: Story, out: str | None) -> None:
    for role, person in story.cast.items():
        print(f"\n===== {person.first_name} ({role}) =====")
        print(person.transcript())
    if out is None:
        return
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    for role, person in story.cast.items():
        (directory / f"{role}.txt").write_text(person.transcript() + "\n", encoding="utf-8")
        for number, (name, content) in enumerate(person.documents(), start=1):
            # Invitation, new time, cancellation: the same file name, so numbered in order.
            (directory / f"{role}-{number}-{name}").write_bytes(content)
    print(f"\nTranscripts written to {directory}/")
