"""`roundtable demo`: the real bot against the local Bot API stand-in, with a scripted cast.

It shows what Round Table does today, person by person, as each of them sees it on their phone.
Nothing touches real data: the database and the key live in a temporary directory, and the clock
is injected, so the story reads the same on every run.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import RoundTableApp, build_application, serve
from bot.core.clock import FakeClock
from bot.core.config import Settings, isolated_settings
from bot.core.crypto import load_cipher
from bot.core.db import Database
from bot.core.migrate import upgrade
from bot.core.models import Conference, InstitutionKind, Role
from bot.core.runtime import Runtime
from bot.sandbox import BotApiSandbox, FloodLimits, Person
from bot.sandbox.models import BotMessage
from bot.services import members
from bot.transport.telegram import delivery

DEMO_TOKEN = "7000000001:DEMO-sandbox-token"  # noqa: S105 - only the local stand-in knows it
# Monday 23 November 2026, 08:00 in Cheb.
DEMO_START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
LINK = re.compile(r"\?start=([A-Za-z0-9_-]+)")
CODE = re.compile(r"R-\d{4}-\d{4}")
PRAGUE = ZoneInfo("Europe/Prague")
# What the coordinator types into the record: no child's name, as the bot asks.
SUMMARY = (
    "The boy misses school on Mondays; older boys take his snack money. The parents agreed to "
    "support him and to meet the class teacher every month."
)
TASKS = (  # title, the owner's first name (on the coordinator's button), due in days
    ("Arrange tutoring", "Jana", 14),
    ("Talk to the older boys", "Tomáš", 7),
    ("Assessment at the counselling centre", "Olena", 30),
)
REVIEW = "15.2.2027 10:00"  # a Monday, not a holiday, within three months of the conference


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
        """An admin joins and invites a coordinator, a school, the police and a counselling
        centre (someone uninvited is turned away); the school refers a child and the coordinator
        opens a case; a poll finds the conference's date; the invitations, a decline and a new
        date; the conference is held and recorded, the review fixed; two weeks of tasks (done
        early, more time given, one let slip until the coordinator is alerted) and the Monday
        digests; and the case is closed, which cancels the review."""
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
        await self.invitations()
        await self.follow_the_tasks(await self.record())
        await self.close()

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
            await _tap(person, poll, "ps:")
        offer = await _until(coordinator, "cf:c:")
        await _tap(coordinator, offer, "cf:c:")

    async def invitations(self) -> None:
        """Everyone gets the invitation with its calendar file. The school accepts, the
        psychologist is not sure yet, the police officer declines (he is in court that day)
        with a reason; the coordinator, flagged at once, picks a new date in one tap and
        everyone is invited again (same UID, SEQUENCE 1). All accept; two days before, the
        reminders come."""
        coordinator, officer = self.coordinator, self.officer
        answers = {self.teacher: "a", self.psychologist: "t", officer: "d"}
        first: dict[Person, int] = {}
        for person, answer in answers.items():
            invitation = await _until(person, "iv:")
            first[person] = invitation.message_id
            await self.runtime_settle()
            await _tap(person, invitation, rf"iv:.*:{answer}$")
        await _until(officer, "ir:")  # "type a short reason, if you like"
        await officer.send_text("Ten den mám celý den soud.")
        flag = await _until(coordinator, "ca:n:", text="declined the case")  # flagged
        await _until(coordinator, None, text="gave for declining")  # and the reason, protected
        await _tap(coordinator, flag, "ca:n:")
        times = await _until(coordinator, "ca:t:")
        await _tap(coordinator, times, "ca:t:")
        for person in answers:
            invitation = await _until(person, "iv:")
            while invitation.message_id == first[person]:  # the old one, redrawn
                invitation = await _until(person, "iv:")
            await self.runtime_settle()
            await _tap(person, invitation, r"iv:.*:a$")
        await _until(coordinator, "ca:x:", text="Accepted 3")
        starts, _ends = await self.held_conference()
        self.clock.set(starts - timedelta(days=2))
        await self.sweep()
        for person in answers:
            await _until(person, None, text="⏰")

    async def record(self) -> dict[Person, BotMessage]:
        """The conference is over: the coordinator is asked for the record, one screen. The
        psychologist did not come after all (one tap); the summary, typed, does not stay in the
        chat; three tasks for three owners; Finish sends each owner their task and gives the
        coordinator the .docx record, protected. The table agreed on the review, so she fixes
        its date: everyone invited gets its invitation (a new calendar entry) and accepts, and
        she takes the record again, now with the review's date. Returns the message each owner
        got their task in."""
        coordinator = self.coordinator
        _starts, ends = await self.held_conference()
        self.clock.set(ends + timedelta(minutes=1))
        await self.sweep()
        ended = await _until(coordinator, "rc:o:", text="has ended")
        await _tap(coordinator, ended, "rc:o:")
        screen = await _until(coordinator, "rc:a:")  # the record screen, in place
        await _tap(coordinator, screen, "rc:a:")
        await _until(coordinator, "rc:t:")
        await _tap(coordinator, screen, "rc:t:", label="PPP Cheb")  # came → did not come
        await _until(coordinator, "rc:t:")
        await _tap(coordinator, screen, "rc:o:")  # back
        await _until(coordinator, "rc:s:")
        await _tap(coordinator, screen, "rc:s:")
        await _until(coordinator, None, text="Type the summary")
        await coordinator.send_text(SUMMARY)
        screen = await _until(coordinator, "rc:n:")  # "saved", and the screen anew below
        for title, owner, days in TASKS:
            self.clock.advance(timedelta(minutes=3))
            await _tap(coordinator, screen, "rc:n:")
            await _until(coordinator, "rc:x")  # "What is the task?"
            await coordinator.send_text(title)
            owners = await _until(coordinator, "rc:w:")
            await _tap(coordinator, owners, "rc:w:", label=owner)
            await _until(coordinator, "rc:d:")  # "By when?", in place
            await _tap(coordinator, owners, f"rc:d:{days}$")
            screen = await _until(coordinator, "rc:n:")
        await _tap(coordinator, screen, "rc:e:")
        await _until(coordinator, "rc:v:")  # finished, in place
        await _until(coordinator, None, text="The record of", document=True)
        assigned = {person: await _until(person, "tk:d:") for person in self.owners}

        await _tap(coordinator, screen, "rc:v:")
        await _until(coordinator, None, text="Type the date and time")
        await coordinator.send_text(REVIEW)
        await _until(coordinator, None, text="You chair it", document=True)
        for person in self.owners:
            invitation = await _until(person, "iv:")
            await self.runtime_settle()
            await _tap(person, invitation, r"iv:.*:a$")
        # The record again, now with the review's date: the screen is reached from /cases.
        await coordinator.send_text("/cases")
        cases = await _until(coordinator, "rc:o:")
        await _tap(coordinator, cases, "rc:o:")
        screen = await _until(coordinator, "rc:r:")
        await _tap(coordinator, screen, "rc:r:")
        await _until(coordinator, None, text="The record of", document=True)
        return assigned

    async def follow_the_tasks(self, assigned: dict[Person, BotMessage]) -> None:
        """Two weeks of the plan, by the clock. The coordinator's Monday digest; the police
        officer nudged 3 days before his task is due. The psychologist asks for two more weeks
        and is given them in one tap; the teacher is done early, with a note the coordinator
        reads on request. The officer is nudged on the due day and the day after, the next
        Monday's digest has his task overdue, and a week overdue the coordinator is alerted:
        she reminds him again, and he is done."""
        coordinator, officer = self.coordinator, self.officer
        today = self.clock.now().astimezone(PRAGUE).date()
        (days,) = [days for _title, owner, days in TASKS if owner == officer.first_name]
        due = today + timedelta(days=days)
        monday = today + timedelta(days=7 - today.weekday())
        self.clock.set(_local(monday, 8))
        await self.sweep()
        await _until(coordinator, None, text="Your week")  # his task is due this week
        self.clock.set(_local(due - timedelta(days=3), 9))
        await self.sweep()
        await _until(officer, "tk:d:", text="⏰")

        self.clock.set(_local(monday + timedelta(days=1), 10))  # Tuesday
        psychologist = self.psychologist
        await _tap(psychologist, assigned[psychologist], "tk:m:")
        more = await _until(psychologist, "tk:x:")
        await _tap(psychologist, more, r"tk:x:\d+:14$")
        asked = await _until(coordinator, "tk:g:")
        await _tap(coordinator, asked, "tk:g:")
        await _until(psychologist, "tk:d:")  # "more time given", with her buttons again

        self.clock.set(_local(monday + timedelta(days=2), 14))  # Wednesday
        teacher = self.teacher
        await _tap(teacher, assigned[teacher], "tk:d:")
        await _until(teacher, "tk:k:")  # "type a short note, or Done without one"
        await teacher.send_text("Doučování domluveno: úterý a čtvrtek po vyučování, s paní Novou.")
        done = await _until(coordinator, "tk:l:", text="has done")
        await _tap(coordinator, done, "tk:l:")  # her note, read on request
        await _until(coordinator, None, text="Notes on")

        for offset in (0, 1):
            self.clock.set(_local(due + timedelta(days=offset), 9))
            await self.sweep()
            await _until(officer, "tk:d:", text="⏰")
        self.clock.set(_local(monday + timedelta(days=7), 8))
        await self.sweep()
        await _until(coordinator, "tk:e:", text="Your week")  # his task is overdue
        self.clock.set(_local(due + timedelta(days=7), 9))
        await self.sweep()
        overdue = await _until(coordinator, "tk:a:", text="week overdue")
        await _tap(coordinator, overdue, "tk:a:")  # remind again
        reminder = await _until(officer, "tk:d:", text="⏰")
        self.clock.advance(timedelta(hours=2))
        await _tap(officer, reminder, "tk:d:")
        done = await _until(officer, "tk:k:")
        await _tap(officer, done, "tk:k:")  # done, without a note
        await _until(coordinator, None, text="has done")

    async def close(self) -> None:
        """The family moves away and the case is handed over: the coordinator closes it from
        /cases. The review conference is cancelled (every calendar gets the CANCEL) and the open
        task with it; weeks later nobody is nudged."""
        coordinator = self.coordinator
        self.clock.advance(timedelta(hours=3))
        await coordinator.send_text("/cases")
        cases = await _until(coordinator, "cc:c:")
        await _tap(coordinator, cases, "cc:c:")
        outcomes = await _until(coordinator, "cc:h:")
        await _tap(coordinator, outcomes, "cc:h:")  # handed to another authority
        await _until(coordinator, None, text="is closed")
        for person in (coordinator, *self.owners):
            await _until(person, None, text="❌", document=True)
        self.clock.advance(timedelta(weeks=4))  # past the psychologist's nudges: none come
        await self.sweep()

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


def _local(day: date, hour: int) -> datetime:
    """A full hour of a day in Cheb."""
    return datetime.combine(day, time(hour), tzinfo=PRAGUE)


async def _until(
    person: Person, data_prefix: str | None, *, text: str = "", document: bool = False
) -> BotMessage:
    """The next message (sent, edited or a document) that shows `text` and has a button whose
    data starts with `data_prefix`; with `data_prefix` None, one without buttons."""
    while True:
        message = await person.next_message()
        if text not in (message.text or message.caption or ""):
            continue
        if document and message.document is None:
            continue
        data = [data for _label, data in _buttons(message)]
        if data_prefix is None and not data:
            return message
        if data_prefix is not None and any(d.startswith(data_prefix) for d in data):
            return message


async def _tap(person: Person, message: BotMessage, data: str, *, label: str = "") -> None:
    """Press the button of `message` (as it is now) whose data matches the pattern `data` and
    whose label holds `label`: labels differ from language to language, the data does not."""
    now = person.messages[message.message_id]
    labels = [t for t, d in _buttons(now) if re.match(data, d) and label in t]
    if not labels:
        raise RuntimeError(f"no button {data!r} {label!r} for {person.first_name}")
    await person.press(labels[0], message_id=message.message_id)


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
            # Invitations, new times, cancellations, records: the same names come again, so
            # each person's documents are numbered in the order they got them.
            (directory / f"{role}-{number}-{name}").write_bytes(content)
    print(f"\nTranscripts written to {directory}/")
