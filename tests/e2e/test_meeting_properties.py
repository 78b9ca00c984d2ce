"""Property-based: random traffic at invitations, attendance, the record and the tasks.

Each example starts from a conference set for a case (planned, polled and confirmed through the
services, the invitations delivered by the outbox; every other example just after it took
place) with a coordinator and two participants
(police, counselling centre). They send random traffic (tests/e2e/properties.py: hostile texts,
commands, media, presses of what they see, forged and garbage callback data), mixed with runs
of cooperative moves: the participants accept, are unsure, decline with a reason, hand over to
a colleague, take up their tasks (done with a note, a note, more time); the coordinator offers
a new date or cancels, opens the record after the meeting, marks attendance, writes the
summary, adds tasks with owners and dates, sets the review, finishes; and time passes (days,
with the reminder sweep: nudges and reminders go out). Besides the shared properties (every
update answered, nothing reaches the error handler or the log), the database stays consistent:

- an invitation's answer is pending with no one and no time, or given by someone at a time;
  only a declined one may keep a reason;
- a scheduled or held conference has its time; a held one's time has come; a recorded one
  is held;
- a task belongs to the case of its conference, has a title, an owner who is a member and a
  due date; it is done or cancelled exactly when it has its done time; a note belongs to a task
  and its author is a member.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hypothesis import strategies as st
from sqlalchemy import select

from bench import world
from bot.core.models import (
    Case,
    Conference,
    ConferenceStatus,
    Institution,
    Invitation,
    Member,
    Rsvp,
    Task,
    TaskNote,
    TaskStatus,
)
from bot.sandbox import Person
from bot.services import decisions, members, planning, records
from bot.transport.telegram import delivery
from handlers.invitations import REASON
from handlers.record import DUE, OWNER, REVIEW, SUMMARY, TITLE
from handlers.tasks import DONE_NOTE, NOTE
from tests.e2e.conftest import RunningBot
from tests.e2e.properties import (
    TEAM,
    Action,
    Data,
    Driver,
    Press,
    Single,
    Text,
    action_lists,
    actions_of,
    callback_datas,
    examples,
    flood_limits,  # noqa: F401 - the stand-in without flood limits
    garbage_data,
    run_properties,
)

EXAMPLES = examples(16)
MAX_ACTIONS = 10
HELPFUL_STEPS = 12
COMMANDS = ("/agenda", "/cases", "/tasks", "/referrals")
TEMPLATES = (
    "iv:{}:0:a",
    "iv:{}:1:t",
    "iv:{}:0:d",
    "iv:{}:0:c",
    "ih:{}:0:1",
    "ca:n:{}",
    "ca:x:{}",
    "ca:y:{}",
    "ca:t:{}:1796000000",
    "rc:o:{}",
    "rc:a:{}",
    "rc:t:{}",
    "rc:e:{}",
    "rc:r:{}",
    "rc:s:{}",
    "rc:n:{}",
    "rc:v:{}",
    "rc:w:{}",
    "tk:d:{}",
    "tk:n:{}",
    "tk:m:{}",
    "tk:x:{}:7",
    "tk:g:{}:20270101",
    "tk:r:{}:20270101",
    "tk:k:{}",
    "tk:v:{}",
    "tk:e:{}",
    "tk:c:{}",
    "tk:z:{}",
    "tk:o:{}",
    "tk:w:{}:1",
    "tk:u:{}:30",
    "tk:l:{}",
    "tk:a:{}",
    "tk:y:{}",
    "cc:c:{}",
    "cc:f:{}",
    "cc:o:{}",
)
FIXED_DATA = (
    "ir:skip",
    "ca:k",
    "rc:x",
    "rc:d:0",
    "rc:d:x",
    "rc:d:99999",
    "rc:w:",
    "tk:x:1:-7",
    "tk:g:1:99999999",
    "tk:g:1:2027013",
    "tk:u:1:100000",
    "iv:1:1",
    "iv:١:0:a",
    "cc:x:1",
    "ih::",
)
SOURCES = ("invitation", "conference", "task", "member", "case")
DATES = ("31.12.2026", "1.1.2027", "29.2.2027", "2026-12-24", "zítra", "next week", "0.0.0")


def meeting_actions(who: str) -> st.SearchStrategy[Action]:
    return actions_of(
        who,
        commands=COMMANDS if who == "coordinator" else ("/tasks", "/agenda"),
        templates=TEMPLATES,
        sources=SOURCES,
        data=garbage_data(FIXED_DATA),
        helpful_steps=HELPFUL_STEPS,
        extra_texts=DATES,
    )


ACTIONS = action_lists(
    meeting_actions, ("coordinator", "coordinator", "police", "ppp"), MAX_ACTIONS
)


@dataclass(frozen=True)
class Later:
    """Time passes: the clock moves on and the reminder sweep runs."""

    who: str
    hours: int


TEXTS = {
    SUMMARY: ("Agreed: <b>daily</b> attendance & a talk. X\r\nBEGIN:VEVENT", "🧒🏽 ok"),
    TITLE: ("Home visit", "Call the <i>school</i> & '; DROP TABLE tasks"),
    DUE: ("31.12.2026", "15.1.2027"),
    REVIEW: ("1.3.2027", "yes"),
    NOTE: ("Need two more weeks <b>x</b>", "Waiting for the doctor's report"),
    DONE_NOTE: ("Done, see the file. & <i>", "✅"),
    REASON: ("On leave that week. </b>", "\u202e reversed"),
}


@dataclass
class MeetingDriver(Driver):
    conference_id: int = 0

    async def newcomers(self, number: int) -> dict[str, Person]:
        people = await self.replace_people(TEAM, 20_000 + 10 * number)
        self.conference_id = await self.scheduled(people["coordinator"], number)
        delivery.wake(self.bot.application)
        await self.bot.settle()  # the invitations are delivered
        if number % 2 == 0:  # every other example begins after the meeting: the record's turn
            self.people = people
            await self.perform_one(await self.later(6))
            if number % 4 == 0:  # and the record is finished: the owners have tasks
                await self.plan_tasks(people)
        return people

    async def plan_tasks(self, people: dict[str, Person]) -> None:
        """A task for each participant, the record finished, the owners told."""
        runtime = self.bot.runtime
        now = runtime.clock.now()
        async with runtime.database.transaction() as session:
            actor = await members.find_actor(session, people["coordinator"].user_id)
            assert actor is not None
            for who, title in (("police", "Visit the family"), ("ppp", "Assess <b>reading</b>")):
                owner = await members.find_actor(session, people[who].user_id)
                assert owner is not None
                await records.add_task(
                    session,
                    actor,
                    runtime.cipher,
                    self.conference_id,
                    title=title,
                    owner_id=owner.member_id,
                    due_on=(now + timedelta(days=14)).date(),
                    now=now,
                )
            await records.finish_record(session, actor, self.conference_id, now=now)
        delivery.wake(self.bot.application)
        await self.bot.settle()

    async def scheduled(self, coordinator: Person, number: int) -> int:
        """A case whose conference is set, as the coordinator's dialogs leave it."""
        runtime = self.bot.runtime
        defaults = planning.Defaults.of(runtime.settings)
        now = runtime.clock.now()
        async with runtime.database.transaction() as session:
            actor = await members.find_actor(session, coordinator.user_id)
            assert actor is not None
            case = await world.open_case(
                session, f"PK-2026-M{number:03d}", actor.district_id, actor.member_id, now=now
            )
            plan = await planning.new_plan(
                session,
                actor,
                runtime.cipher,
                case.id,
                now=now,
                defaults=defaults,
                mail_enabled=False,
            )
            invited = await session.scalars(
                select(Institution.id).where(Institution.name.in_(("Policie Cheb", "PPP Cheb")))
            )
            plan.invited = dict.fromkeys(invited, True)
            started = await planning.start_poll(
                session, actor, plan, now=now, defaults=defaults, mail_enabled=False
            )
            assert isinstance(started, planning.Started)
            board = await decisions.board(session, actor, started.conference_id, now=now)
            done = await decisions.confirm(
                session, actor, started.conference_id, board.slots[0].id, now=now
            )
            assert isinstance(done, decisions.Scheduled)
            return started.conference_id

    async def perform_one(self, action: Single | Later) -> None:  # type: ignore[override]
        if not isinstance(action, Later):
            await super().perform_one(action)
            return
        self.note(action.who, f"waits {action.hours} hours")
        self.bot.runtime.clock.advance(timedelta(hours=action.hours))  # type: ignore[attr-defined]
        await self.bot.sweep()
        self.tally["sweeps"] += 1

    async def helpful(self, who: str, variant: int) -> Single:
        person = self.people[who]
        for name in ("decline", "record", "task"):
            state = await self.dialog_state(person, name)
            if state == OWNER or (state == DUE and variant % 2):
                return Press(who, variant)  # an owner, a due date of the buttons
            if state in TEXTS:
                return Text(who, TEXTS[state][variant % 2])
        newest = self.newest_buttons(person)
        if who == "coordinator":
            if variant % 6 == 0:
                return await self.later(variant)  # type: ignore[return-value]
            if variant % 6 == 1 or not newest:
                return Data(who, f"rc:o:{self.conference_id}")
            if variant % 6 == 2:
                return Text(who, ("/agenda", "/tasks")[variant % 2])
            adding = [data for data in newest if data.startswith(("rc:n:", "rc:w:", "rc:t:"))]
            if adding and variant % 6 in (3, 4):
                return Data(who, adding[variant % len(adding)])  # tasks, owners, attendance
        elif not newest or variant % 5 == 0:
            return Text(who, "/tasks")
        elif own := self.own_buttons(person):
            return Data(who, own[variant % len(own)])  # their task's or invitation's buttons
        return Press(who, variant)

    async def later(self, variant: int) -> Later:
        """Past the conference's start, if it is still ahead (so the record can be kept), else
        a day or a week (so that nudges come due)."""
        runtime = self.bot.runtime
        async with runtime.database.transaction() as session:
            conference = await session.get_one(Conference, self.conference_id)
        ahead = (conference.starts_at or runtime.clock.now()) - runtime.clock.now()
        if ahead > timedelta() and (variant // 6) % 3:
            return Later("coordinator", int(ahead.total_seconds() // 3600) + 2)
        return Later("coordinator", (26, 24 * 7)[variant % 2])

    def own_buttons(self, person: Person) -> list[str]:
        """The buttons of the newest message about their invitation or a task of theirs
        (prompts and notes may have come since)."""
        for message in person.chat.bot_messages_newest_first():
            if own := [d for d in callback_datas(message) if d.startswith(("tk:", "iv:"))]:
                return own
        return []

    async def ids(self, person: Person, source: str) -> list[int]:
        table = {
            "invitation": Invitation.id,
            "conference": Conference.id,
            "task": Task.id,
            "member": Member.id,
            "case": Case.id,
        }[source]
        async with self.bot.runtime.database.transaction() as session:
            return list(await session.scalars(select(table)))

    async def check(self) -> None:
        runtime = self.bot.runtime
        now = runtime.clock.now()
        async with runtime.database.transaction() as session:
            invitations = list(await session.scalars(select(Invitation)))
            conferences_ = {c.id: c for c in await session.scalars(select(Conference))}
            tasks = list(await session.scalars(select(Task)))
            notes = list(await session.scalars(select(TaskNote)))
            member_ids = set(await session.scalars(select(Member.id)))
        for invitation in invitations:
            given = (invitation.rsvp_at is not None, invitation.rsvp_by_id is not None)
            if invitation.rsvp is Rsvp.PENDING:
                assert given == (False, False), self.failure(
                    f"invitation {invitation.id} is pending but answered at/by {given}"
                )
            else:
                assert given == (True, True), self.failure(
                    f"invitation {invitation.id} is {invitation.rsvp.value} without a time or "
                    "a person"
                )
            if invitation.decline_reason is not None:
                assert invitation.rsvp is Rsvp.DECLINED, self.failure(
                    f"invitation {invitation.id} is {invitation.rsvp.value} with a reason"
                )
        for conference in conferences_.values():
            if conference.status in (ConferenceStatus.SCHEDULED, ConferenceStatus.HELD):
                assert conference.starts_at is not None, self.failure(
                    f"conference {conference.id} is {conference.status.value} without a time"
                )
            if conference.status is ConferenceStatus.HELD:
                assert conference.starts_at is not None and conference.starts_at <= now, (
                    self.failure(f"conference {conference.id} is held before its time")
                )
            if conference.recorded_at is not None:
                assert conference.status is ConferenceStatus.HELD, self.failure(
                    f"conference {conference.id} is recorded but {conference.status.value}"
                )
        for task in tasks:
            conference = conferences_[task.conference_id]
            assert conference.case_id == task.case_id, self.failure(
                f"task {task.id} is of case {task.case_id}, its conference of {conference.case_id}"
            )
            assert runtime.cipher.decrypt(task.title).strip(), self.failure(
                f"task {task.id}: title"
            )
            assert task.owner_id in member_ids and task.due_on is not None, self.failure(
                f"task {task.id}: owner {task.owner_id}, due {task.due_on}"
            )
            closed = task.status in (TaskStatus.DONE, TaskStatus.CANCELLED)
            assert closed == (task.done_at is not None), self.failure(
                f"task {task.id} is {task.status.value}, done at {task.done_at}"
            )
        task_ids = {task.id for task in tasks}
        for note in notes:
            assert note.task_id in task_ids and note.member_id in member_ids, self.failure(
                f"note {note.id} of task {note.task_id} by {note.member_id}"
            )
        for rsvp in Rsvp:
            self.tally[f"invitations {rsvp.value}"] = sum(i.rsvp is rsvp for i in invitations)
        for status in ConferenceStatus:
            self.tally[f"conferences {status.value}"] = sum(
                c.status is status for c in conferences_.values()
            )
        for status in TaskStatus:
            self.tally[f"tasks {status.value}"] = sum(t.status is status for t in tasks)
        self.tally["task notes"] = len(notes)


async def test_invitations_records_and_tasks_keep_the_database_consistent(
    bot: RunningBot,
) -> None:
    driver = MeetingDriver(bot)
    tally = await run_properties(driver, ACTIONS, EXAMPLES, "invitation, record and task")
    assert tally["callbacks answered"] > 0
