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

from pydantic import SecretStr

from bot.app import build_application, serve
from bot.core.clock import FakeClock
from bot.core.config import Settings, isolated_settings
from bot.core.crypto import load_cipher
from bot.core.db import Database
from bot.core.migrate import upgrade
from bot.core.runtime import Runtime
from bot.demo_cast import LINK, MAILBOX, PAEDIATRICS, WEB, Cast
from bot.demo_steps import PRAGUE, busy_calendar, buttons, first_of_each, local, tap, until
from bot.demo_web import link_in, mail_text, web_app_url
from bot.sandbox import BotApiSandbox, FloodLimits, Person
from bot.sandbox.mail import MailServer
from bot.sandbox.models import BotMessage

DEMO_TOKEN = "7000000001:DEMO-sandbox-token"  # noqa: S105 - only the local stand-in knows it
# Monday 23 November 2026, 08:00 in Cheb.
DEMO_START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
CODE = re.compile(r"R-\d{4}-\d{4}")
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
# The conference's goal (the invitations say only that it is in the bot), and the child's voice.
GOAL = "Agree how the school and the family end the Monday absences and the taking of his money."
SUPPORT = "the school's prevention worker, whom he trusts"
CHILD_VIEW = "I like my class, but I am afraid of the older boys at the break."
# The police officer's comment on the draft record.
COMMENT = "Doplňte prosím, že se škola domluví s policií na společné návštěvě rodiny."
REVIEW = "15.2.2027 10:00"  # a Monday, not a holiday, within three months of the conference


class Story(Cast):
    """The story: one case from the report to its closing, act by act."""

    async def play(self) -> None:
        """An admin joins and invites a coordinator, a school, the police and a counselling
        centre, each confirming confidentiality as they join (someone uninvited is turned
        away); the school refers a child and the coordinator opens a case; a poll finds the
        conference's date; the invitations, a decline and a new date; the conference is held
        and recorded, the review fixed; two weeks of tasks (done early, more time given, one let
        slip until the coordinator is alerted) and the Monday digests; and the case is closed,
        which cancels the review."""
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
        await self.paediatrics_contact()

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
        await teacher.press("Odpovědět")
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
            "kalendar.ics", busy_calendar(wednesday, wednesday.replace(hour=16)), "text/calendar"
        )
        await officer.next_message()
        await coordinator.press("Plan: PK-2026-0001")
        await until(coordinator, "pl:")
        # Truancy and bullying pre-tick the school and the counselling centre; the police
        # officer knows the family, so the coordinator adds the police as optional.
        await coordinator.press("☐ Policie ČR Cheb")
        await until(coordinator, "pl:")
        await coordinator.press("★ required", message_id=None)
        await until(coordinator, "pl:")
        # The paediatrician has seen the boy: her practice is invited by e-mail.
        await coordinator.press("+ Guest by e-mail")
        await until(coordinator, "pl:")
        await coordinator.press(f"✉ {PAEDIATRICS}")
        await until(coordinator, "pl:")
        # The goal, typed once; everyone invited reads it in the bot on request.
        await coordinator.press("🎯 Goal")
        await until(coordinator, None, text="Type the goal")
        await coordinator.send_text(GOAL)
        await until(coordinator, "pl:")
        await coordinator.press("Send the poll")
        await until(coordinator, "cf:o:")  # the live board
        # The practice's mail lists the times with a personal link: the doctor answers on
        # the page (yes, if need be), and the coordinator's board shows it at once.
        page = await self.web.open(link_in(mail_text(await self.doctor.next_mail())))
        await self.web.send(page, {0: "yes", 1: "maybe"}, action="send")
        await until(coordinator, "cf:o:", text="✅ ☆ ✉ Pediatrie Cheb")
        # The psychologist answers in the grid, the Mini App of her poll's message.
        poll = await until(self.psychologist, "ps:")
        grid = await self.web.mini_app(
            web_app_url(poll), 1005, "Olena", DEMO_TOKEN, int(self.clock.now().timestamp())
        )
        await self.web.send(grid, {0: "yes", 1: "yes", 3: "yes"}, action="send")
        taps = {self.teacher: (0, 1), self.officer: (0, 2, 2)}
        for person, times in taps.items():
            poll = await until(person, "ps:")
            for index in times:
                current = person.messages[poll.message_id]
                labels = [text for text, data in buttons(current) if data.startswith("pv:")]
                await person.press(labels[index], message_id=poll.message_id)
                await person.next_message()
            await tap(person, poll, "ps:")
        offer = await until(coordinator, "cf:c:")
        await tap(coordinator, offer, "cf:c:")

    async def invitations(self) -> None:
        """Everyone gets the invitation with its calendar file. Everyone said yes to this time
        in the poll, so everyone is marked as coming: the school leaves it so, the
        psychologist is not sure yet, the police officer declines (he is in court that day)
        with a reason; the coordinator, flagged at once, picks a new date in one tap and
        everyone is invited again (same UID, SEQUENCE 1). All accept; two days before, the
        reminders come."""
        coordinator, officer = self.coordinator, self.officer
        answers = {self.teacher: None, self.psychologist: "t", officer: "d"}
        first: dict[Person, int] = {}
        for person, answer in answers.items():
            invitation = await until(person, "iv:")
            first[person] = invitation.message_id
            if answer is not None:
                await self.runtime_settle()
                await tap(person, invitation, rf"iv:.*:{answer}$")
        await self.calendar_answers("ACCEPTED")  # the practice's calendar: Accept
        await until(officer, "ir:")  # "type a short reason, if you like"
        await officer.send_text("Ten den mám celý den soud.")
        flag = await until(coordinator, "ca:n:", text="declined the case")  # flagged
        await until(coordinator, None, text="gave for declining")  # and the reason, protected
        await tap(coordinator, flag, "ca:n:")
        times = await until(coordinator, "ca:t:")
        await tap(coordinator, times, "ca:t:")
        for person in answers:
            invitation = await until(person, "iv:")
            while invitation.message_id == first[person]:  # the old one, redrawn
                invitation = await until(person, "iv:")
            await self.runtime_settle()
            await tap(person, invitation, r"iv:.*:a$")
        await self.calendar_answers("ACCEPTED")  # the new time, accepted in her calendar
        await until(coordinator, "ca:x:", text="Accepted 4")
        starts, _ends = await self.held_conference()
        self.clock.set(starts - timedelta(days=2))
        await self.sweep()
        for person in answers:
            await until(person, None, text="⏰")
        await self.doctor.next_mail()  # her reminder, by mail

    async def childs_voice(self, record: BotMessage) -> None:
        """From the record screen: the boy took part with a support person, and what he said
        when he was prepared for the conference, each typed once (protected screens)."""
        coordinator = self.coordinator
        await tap(coordinator, record, "mt:o:")
        screen = await until(coordinator, "mt:p:")
        await tap(coordinator, screen, r"mt:p:\d+:s$")
        await until(coordinator, "mt:s:")
        await tap(coordinator, screen, "mt:s:")
        await until(coordinator, None, text="Type who supports the child")
        await coordinator.send_text(SUPPORT)
        screen = await until(coordinator, "mt:v:")
        await tap(coordinator, screen, "mt:v:")
        await until(coordinator, None, text="Type the child's view")
        await coordinator.send_text(CHILD_VIEW)
        await until(coordinator, "mt:v:")

    async def record(self) -> dict[Person, BotMessage]:
        """The conference is over: the coordinator is asked for the record, one screen. The
        psychologist did not come after all (one tap); the summary, typed, does not stay in the
        chat; three tasks for three owners; Finish sends each owner their task, gives the
        coordinator the .docx record, protected, and sends its draft for comments to those who
        came. The table agreed on the review, so she fixes its date: everyone invited gets its
        invitation (a new calendar entry) and accepts. The teacher has no comments, the officer
        comments; she reads it and sends the final record, now with the review's date, to all
        who came. Returns the message each owner got their task in."""
        coordinator = self.coordinator
        _starts, ends = await self.held_conference()
        self.clock.set(ends + timedelta(minutes=1))
        await self.sweep()
        ended = await until(coordinator, "rc:o:", text="has ended")
        await tap(coordinator, ended, "rc:o:")
        screen = await until(coordinator, "rc:a:")  # the record screen, in place
        await tap(coordinator, screen, "rc:a:")
        await until(coordinator, "rc:t:")
        await tap(coordinator, screen, "rc:t:", label="PPP Cheb")  # came → did not come
        await until(coordinator, "rc:t:")
        await tap(coordinator, screen, "rc:h:")  # the boy came, with the prevention worker
        await until(coordinator, "rc:t:")
        await tap(coordinator, screen, "rc:o:")  # back
        await until(coordinator, "rc:s:")
        await self.childs_voice(screen)
        await tap(coordinator, screen, "rc:s:")
        await until(coordinator, None, text="Type the summary")
        await coordinator.send_text(SUMMARY)
        screen = await until(coordinator, "rc:n:")  # "saved", and the screen anew below
        for title, owner, days in TASKS:
            self.clock.advance(timedelta(minutes=3))
            await tap(coordinator, screen, "rc:n:")
            await until(coordinator, "rc:x")  # "What is the task?"
            await coordinator.send_text(title)
            owners = await until(coordinator, "rc:w:")
            await tap(coordinator, owners, "rc:w:", label=owner)
            await until(coordinator, "rc:d:")  # "By when?", in place
            await tap(coordinator, owners, f"rc:d:{days}$")
            screen = await until(coordinator, "rc:n:")
        await tap(coordinator, screen, "rc:e:")
        await until(coordinator, "rc:v:")  # finished, in place
        await until(coordinator, None, text="The record of", document=True)
        assigned, drafts = {}, {}
        for person in self.owners:  # each their task; those who came also the draft record
            if person is self.psychologist:  # she did not come
                assigned[person] = await until(person, "tk:d:")
            else:
                assigned[person], drafts[person] = await first_of_each(person, "tk:d:", "rk:n:")

        await tap(coordinator, screen, "rc:v:")
        await until(coordinator, None, text="Type the date and time")
        await coordinator.send_text(REVIEW)
        await until(coordinator, None, text="You chair it", document=True)
        for person in self.owners:
            invitation = await until(person, "iv:")
            await self.runtime_settle()
            await tap(person, invitation, r"iv:.*:a$")
        await self.calendar_answers("ACCEPTED")  # the review, in the practice's calendar
        await self.comment_round(drafts)
        return assigned

    async def comment_round(self, drafts: dict[Person, BotMessage]) -> None:
        """The draft record, for comments: the teacher has none; the officer comments (his
        typed comment leaves his chat) and the coordinator reads it on request. Then she sends
        the final record, now with the review's date, from the record's screen on /cases."""
        await tap(self.teacher, drafts[self.teacher], "rk:n:")
        await until(self.teacher, None, text="bez výhrad")
        officer = self.officer
        await tap(officer, drafts[officer], "rk:c:")
        await until(officer, None, text="/cancel")  # "type your comment"
        await officer.send_text(COMMENT)
        await until(officer, None, text="jsme předali")
        notice = await until(self.coordinator, "rk:r:")
        await tap(self.coordinator, notice, "rk:r:")
        await until(self.coordinator, None, text="Comment on the draft record")
        coordinator = self.coordinator
        await coordinator.send_text("/cases")
        cases = await until(coordinator, "rc:o:")
        await tap(coordinator, cases, "rc:o:")
        screen = await until(coordinator, "rk:f:")
        await tap(coordinator, screen, "rk:f:")
        await until(coordinator, None, text="The final record of", document=True)
        for person in drafts:
            await until(person, None, document=True)  # the final record, to all who came

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
        self.clock.set(local(monday, 8))
        await self.sweep()
        await until(coordinator, None, text="Your week")  # his task is due this week
        self.clock.set(local(due - timedelta(days=3), 9))
        await self.sweep()
        await until(officer, "tk:d:", text="⏰")

        self.clock.set(local(monday + timedelta(days=1), 10))  # Tuesday
        psychologist = self.psychologist
        await tap(psychologist, assigned[psychologist], "tk:m:")
        more = await until(psychologist, "tk:x:")
        await tap(psychologist, more, r"tk:x:\d+:14$")
        asked = await until(coordinator, "tk:g:")
        await tap(coordinator, asked, "tk:g:")
        await until(psychologist, "tk:d:")  # "more time given", with her buttons again

        self.clock.set(local(monday + timedelta(days=2), 14))  # Wednesday
        teacher = self.teacher
        await tap(teacher, assigned[teacher], "tk:d:")
        await until(teacher, "tk:k:")  # "type a short note, or Done without one"
        await teacher.send_text("Doučování domluveno: úterý a čtvrtek po vyučování, s paní Novou.")
        done = await until(coordinator, "tk:l:", text="has done")
        await tap(coordinator, done, "tk:l:")  # her note, read on request
        await until(coordinator, None, text="Notes on")

        for offset in (0, 1):
            self.clock.set(local(due + timedelta(days=offset), 9))
            await self.sweep()
            await until(officer, "tk:d:", text="⏰")
        self.clock.set(local(monday + timedelta(days=7), 8))
        await self.sweep()
        await until(coordinator, "tk:e:", text="Your week")  # his task is overdue
        self.clock.set(local(due + timedelta(days=7), 9))
        await self.sweep()
        overdue = await until(coordinator, "tk:a:", text="week overdue")
        await tap(coordinator, overdue, "tk:a:")  # remind again
        reminder = await until(officer, "tk:d:", text="⏰")
        self.clock.advance(timedelta(hours=2))
        await tap(officer, reminder, "tk:d:")
        done = await until(officer, "tk:k:")
        await tap(officer, done, "tk:k:")  # done, without a note
        await until(coordinator, None, text="has done")

    async def close(self) -> None:
        """The family moves away and the case is handed over: the coordinator closes it from
        /cases. The review conference is cancelled (every calendar gets the CANCEL) and the open
        task with it; weeks later nobody is nudged."""
        coordinator = self.coordinator
        self.clock.advance(timedelta(hours=3))
        await coordinator.send_text("/cases")
        cases = await until(coordinator, "cc:c:")
        await tap(coordinator, cases, "cc:c:")
        outcomes = await until(coordinator, "cc:h:")
        await tap(coordinator, outcomes, "cc:h:")  # handed to another authority
        await until(coordinator, None, text="is closed")
        for person in (coordinator, *self.owners):
            await until(person, None, text="❌", document=True)
        await self.doctor.next_mail()  # the review's CANCEL, which her calendar applies
        self.clock.advance(timedelta(weeks=4))  # past the psychologist's nudges: none come
        await self.sweep()


def demo_settings(data_dir: Path, sandbox: BotApiSandbox, mail: MailServer) -> Settings:
    return isolated_settings(
        token=SecretStr(DEMO_TOKEN),
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'demo.sqlite3'}",
        encryption_key_file=data_dir / "demo.key",
        bot_api_url=sandbox.base_url,
        bot_file_url=sandbox.base_file_url,
        smtp_url=SecretStr(mail.url),
        mail_from=f"Round Table Cheb <{MAILBOX}>",
        web_url=WEB,  # the page, on a port of its own (any free one)
        web_port=0,
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
        mail = MailServer()  # a real SMTP server on 127.0.0.1: the practice's mail arrives there
        await mail.start()
        settings = demo_settings(data_dir, sandbox, mail)
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
            story = Story(sandbox, runtime, application, clock, mail)
            stop = asyncio.Event()
            bot = asyncio.create_task(serve(application, stop))
            try:
                await story.play()
            finally:
                stop.set()
                await bot
        finally:
            await sandbox.stop()
            await mail.stop()
            await database.dispose()
    _publish(story, out)


def _publish(story: Story, out: str | None) -> None:
    for role, person in story.cast.items():
        print(f"\n===== {person.first_name} ({role}) =====")
        print(person.transcript())
    doctor = story.doctor
    print(f"\n===== {doctor.name} ({PAEDIATRICS}, by e-mail) =====")
    print(doctor.transcript())
    pages = "\n\n".join(story.web.pages)
    print("\n===== The web page, as the doctor and the Mini App saw it =====")
    print(pages)
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
    (directory / "paediatrician.txt").write_text(doctor.transcript() + "\n", encoding="utf-8")
    (directory / "web-pages.txt").write_text(pages + "\n", encoding="utf-8")
    for number, mail in enumerate(doctor.mails, start=1):
        # Each mail as it arrived (RFC 5322): a mail program or a calendar opens it.
        (directory / f"paediatrician-{number}-mail.eml").write_bytes(mail.raw)
    print(f"\nTranscripts written to {directory}/")
