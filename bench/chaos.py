"""Chaos: the bot as its own process under a steady load of people, killed with SIGKILL at random
moments and restarted, while Telegram fails at a set rate and (on PostgreSQL) the database goes
away for a moment. Afterwards it counts and checks what people sent, what Telegram saw
acknowledged, what is stored and which notifications came.

`python -m bench chaos [--people N] [--kills K] [--fault-rate R] [--outages O] [--seed S]
[--database-url URL]` prints the counts as one JSON line and the broken promises, if any, on
stderr; tests/e2e/test_chaos.py runs it in the suite.

The pieces are meant to be reused (a standby taking over is the same story with two processes):
`seed`, `Stage` (the stand-in, the database, bot processes started and killed, what was in
flight at each kill), `Walker` (one person), `DatabaseProxy` (bench/dbproxy.py) and `Chaos`
(the whole run), whose `Report` has the counts and the violations.

What the words mean:

- an update is *acknowledged* when the stand-in saw getUpdates asked with a higher offset: from
  then on Telegram would not deliver it again;
- an answer is *stored* when the database holds it: the referral, submitted, with what the
  person typed; the poll answer as the person last saw it before Send; the RSVP; each progress
  note the person saw confirmed. An answer counts once its update (the last Send, the RSVP
  tap) was acknowledged, or, for notes, once the person saw "The note is saved.";
- a notification is *due* when its row's moment has come during the run: the task reminders
  seeded to come due over the first seconds (some to people who blocked the bot) and the
  invitations to the conferences whose date is set. It is *delivered* when the stand-in
  received the message, *duplicated* for each copy after the first. It was *in flight at a
  kill* when the stand-in had it and its outbox row was not marked sent when the process died.
  A copy after the first is allowed only for those, and for sends whose answer the stand-in
  held back past the client's timeout (an injected "timeout": the bot cannot know it arrived).

A dialog *resumes where it was*: when a person, unsure whether the bot got their last answer
(no reply, an apology, or the update acknowledged without a reply), asks again (/refer →
Continue), the bot shows the step they were at or the one after it, and the referral finally
stored holds exactly what they typed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select

from bench import load, process, world
from bench.dbproxy import DatabaseProxy
from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import (
    Conference,
    ConferenceStatus,
    District,
    InstitutionKind,
    Invitation,
    Member,
    OutboxRow,
    OutboxStatus,
    Referral,
    ReferralStatus,
    Role,
    Rsvp,
    SlotAnswer,
    Task,
    TaskNote,
    TaskStatus,
)
from bot.sandbox import BotApiSandbox, BotMessage, ChatEvent, FloodLimits, Person
from bot.sandbox.faults import Faults
from bot.services import confidentiality, invitations
from bot.services import tasks as task_service
from bot.services.members import ensure_institution
from scheduling.finder import Vote

TOKEN = "7000000004:SANDBOX-token-for-the-chaos-run"
FIRST_PERSON = load.FIRST_PERSON  # the referrers who talk to the bot (chat id = user id)
COORDINATOR = load.COORDINATOR
FIRST_BYSTANDER = FIRST_PERSON + 500_000  # members who only get reminders
PATIENCE = 60.0  # how long a person waits for any sign of their update (restarts included)
SETTLE_SECONDS = 120.0  # for due notifications to be sent and updates confirmed at the end
MAX_TRIES = 40  # actions of one phase before a person is declared stuck
APOLOGY = "Sorry, something went wrong on our side"
T = TypeVar("T")


class ChaosError(Exception):
    """The run could not go on (a person stuck, the bot gone); the message says where."""


@dataclass(frozen=True)
class Options:
    people: int = 12  # referrers going through referral, poll, RSVP and a task note
    bystanders: int = 16  # members who only receive reminders
    blocked: int = 2  # of the bystanders: blocked the bot before the run
    kills: int = 3
    faults: Faults = field(default_factory=Faults)
    seed: int = 1
    remind_over: float = 12.0  # seconds from the start over which the reminders come due
    think: float = 0.05  # a person's mean pause before each update, seconds
    outages: int = 0  # times the database goes away (needs a proxy: PostgreSQL)
    outage_seconds: float = 3.0
    rtt_ms: float = 0.0


# The seed: load.seed's district (a coordinator, the people's schools, per team of eight one
# conference polling for its date and one with its date set), plus bystanders, one open task
# for everyone and a reminder of it due within the first `remind_over` seconds.


@dataclass(frozen=True)
class Tracked:
    """The notifications followed through the run, by what their buttons carry."""

    reminders: dict[int, int]  # task id -> outbox row id
    invitations: dict[int, int]  # invitation id -> outbox row id
    blocked_rows: frozenset[int]  # rows to people who blocked the bot

    def row_of(self, message: BotMessage) -> int | None:
        for _label, data in (button for row in message.buttons() for button in row):
            if data is None:
                continue
            if found := re.fullmatch(r"tk:d:(\d+)", data):
                return self.reminders.get(int(found.group(1)))
            if found := re.fullmatch(r"iv:(\d+):\d+:a", data):
                return self.invitations.get(int(found.group(1)))
        return None

    @property
    def rows(self) -> set[int]:
        return set(self.reminders.values()) | set(self.invitations.values())


def person_id(number: int) -> int:
    return FIRST_PERSON + number


def bystander_id(number: int) -> int:
    return FIRST_BYSTANDER + number


async def seed(url: str, key: str, options: Options, *, now: datetime) -> Tracked:
    await load.seed(url, options.people, now=now, locale="en")
    database = Database(url)
    cipher = Cipher([key.encode()])
    rng = random.Random(options.seed)
    try:
        async with database.transaction() as session:
            conference = await session.scalar(
                select(Conference)
                .where(Conference.status == ConferenceStatus.SCHEDULED)
                .order_by(Conference.id)
                .limit(1)
            )
            assert conference is not None
            district = await session.get_one(District, conference.district_id)
            office = await ensure_institution(
                session, district, "PPP Cheb", InstitutionKind.PPP, now=now
            )
            for number in range(options.bystanders):
                session.add(
                    world.member(
                        bystander_id(number),
                        f"Bystander {number + 1}",
                        office.id,
                        Role.PARTICIPANT,
                        locale="en",
                        now=now,
                    )
                )
            await session.flush()
            await confidentiality.record_seeded(session, now=now)  # as joining asks them to
            owners = list(
                await session.scalars(
                    select(Member)
                    .where(Member.telegram_user_id != COORDINATOR)
                    .order_by(Member.telegram_user_id)
                )
            )
            planned = []
            for number, owner in enumerate(owners):
                task = Task(
                    case_id=conference.case_id,
                    conference_id=conference.id,
                    title=cipher.encrypt(f"Chaos task {number + 1}".encode()),
                    owner_id=owner.id,
                    due_on=(now + timedelta(days=14)).date(),
                    status=TaskStatus.OPEN,
                    version=1,
                    created_at=now,
                    issued_at=now,
                )
                session.add(task)
                await session.flush()
                planned.append(
                    outbox.Planned(
                        key=f"chaos:remind:{task.id}",
                        kind=task_service.NUDGE,
                        subject=f"task:{task.id}",
                        member_id=owner.id,
                        due_at=now + timedelta(seconds=rng.uniform(0, options.remind_over)),
                        payload={"task": task.id, "version": 1},
                    )
                )
            await outbox.plan(session, planned, now=now)
            rows = list(
                await session.scalars(
                    select(OutboxRow).where(
                        OutboxRow.kind.in_([task_service.NUDGE, invitations.INVITE])
                    )
                )
            )
        blocked = {bystander_id(number) for number in range(options.blocked)}
        reminders = {
            int(row.payload["task"]): row.id for row in rows if row.kind == task_service.NUDGE
        }
        invited = {
            int(row.payload["invitation"]): row.id
            for row in rows
            if row.kind == invitations.INVITE and row.payload.get("invitation") is not None
        }
        return Tracked(
            reminders=reminders,
            invitations=invited,
            blocked_rows=frozenset(row.id for row in rows if row.chat_id in blocked),
        )
    finally:
        await database.dispose()


# The stage: the stand-in, the database and the bot processes.


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: when (time.monotonic), and the tracked rows the stand-in had delivered
    while the outbox had not marked them sent."""

    at: float
    in_flight: frozenset[int]


class Stage:
    """A stand-in and a database for bot processes, which it starts, kills and stops."""

    def __init__(
        self,
        sandbox: BotApiSandbox,
        url: str,
        directory: Path,
        key: str,
        *,
        bot_url: str | None = None,
        **settings: object,
    ) -> None:
        self.sandbox = sandbox
        self.url = url  # the database, as the harness reaches it
        self.bot_url = bot_url or url  # as the bot reaches it (through a proxy, say)
        self.directory = directory
        self.key = key
        self.settings = settings
        self.processes: list[asyncio.subprocess.Process] = []
        self.kills: list[Kill] = []
        # Set when a bot process ends that was not killed or stopped here.
        self.died: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._ending: set[int] = set()  # pids killed or stopped on purpose
        self._watchers: set[asyncio.Task[None]] = set()

    @property
    def bot(self) -> asyncio.subprocess.Process | None:
        """The newest process, while it runs."""
        if self.processes and self.processes[-1].returncode is None:
            return self.processes[-1]
        return None

    def environment(self) -> dict[str, str]:
        return process.bot_environment(
            self.sandbox, url=self.bot_url, directory=self.directory, key=self.key, **self.settings
        )

    async def start(self) -> asyncio.subprocess.Process:
        started = await process.start("bot.cli", ["run"], self.environment(), self.directory)
        self.processes.append(started)
        watcher = asyncio.create_task(self._watch(started))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return started

    async def _watch(self, bot: asyncio.subprocess.Process) -> None:
        code = await bot.wait()
        if bot.pid not in self._ending and not self.died.done():
            self.died.set_result(f"a bot process exited by itself ({code})\n{self.log_tail()}")

    async def kill(self, bot: asyncio.subprocess.Process, tracked: Tracked) -> Kill:
        """SIGKILL, then note which tracked notifications were in flight."""
        self._ending.add(bot.pid)
        await process.kill(bot)
        at = time.monotonic()
        # Requests the process had written before it died are still answered: count them in.
        await self.sandbox.wait_for_calls_to_end(timeout=30)
        delivered = deliveries(self.sandbox, tracked)
        statuses = await row_statuses(self.url, tracked.rows)
        kill = Kill(
            at=at,
            in_flight=frozenset(
                row
                for row, copies in delivered.items()
                if copies and statuses.get(row) is not OutboxStatus.SENT
            ),
        )
        self.kills.append(kill)
        return kill

    async def stop(self) -> None:
        self._ending.update(running.pid for running in self.processes)
        for running in self.processes:
            await process.stop(running)

    def log_tail(self, lines: int = 40) -> str:
        return process.tail(self.directory, lines)

    def log_count(self, words: str) -> int:
        """Lines of the bot processes' output that hold the words."""
        log = self.directory / process.LOG
        text = log.read_text(errors="replace") if log.exists() else ""
        return sum(words in line for line in text.splitlines())


def deliveries(sandbox: BotApiSandbox, tracked: Tracked) -> Counter[int]:
    """How many copies of each tracked notification the stand-in received."""
    copies: Counter[int] = Counter()
    for person in sandbox.people.values():
        for event in person.events:
            if event.kind in ("sent", "document") and event.message is not None:
                row = tracked.row_of(event.message)
                if row is not None:
                    copies[row] += 1
    return copies


def held_back(sandbox: BotApiSandbox, tracked: Tracked) -> Counter[int]:
    """Tracked notifications sent in a call whose answer the stand-in held back (a "timeout")."""
    held: Counter[int] = Counter()
    for record in sandbox.faults.injected:
        if record.kind != "timeout" or record.chat_id is None or record.message_id is None:
            continue
        person = sandbox.people.get(record.chat_id)
        sent = _first_snapshot(person, record.message_id) if person else None
        row = tracked.row_of(sent) if sent is not None else None
        if row is not None:
            held[row] += 1
    return held


def _first_snapshot(person: Person, message_id: int) -> BotMessage | None:
    for event in person.events:
        if event.message is not None and event.message.message_id == message_id:
            return event.message
    return None


async def row_statuses(url: str, rows: set[int]) -> dict[int, OutboxStatus]:
    database = Database(url)
    try:
        async with database.transaction() as session:
            found = await session.execute(
                select(OutboxRow.id, OutboxRow.status).where(OutboxRow.id.in_(rows))
            )
            return {row_id: status for row_id, status in found}
    finally:
        await database.dispose()


# One person.


REFERRAL_STEPS = {  # a prompt's words -> the step
    "Please check the referral before sending it": "summary",
    "Sent. Your referral code is": "sent",
    "You have an unfinished referral": "resume",
    "There is no referral in progress": "gone",
    "Is the child in danger right now?": "danger",
    "What is the child's name?": "name",
    "In which year was the child born?": "year",
    "Which class does the child attend?": "class",
    "What is going on? Choose all that apply": "concerns",
    "Describe what is going on:": "description",
    "What has the school already tried?": "tried",
    "Do the child's parents or guardians know": "guardians",
    "How urgent is it?": "urgency",
}
FOLLOWS = {
    "danger": "name",
    "name": "year",
    "year": "class",
    "class": "concerns",
    "concerns": "description",
    "description": "tried",
    "tried": "guardians",
    "guardians": "urgency",
    "urgency": "summary",
    "summary": "sent",
}
CONCERNS = ("truancy", "bullying")
CONCERN_LABELS = {"truancy": "truancy", "bullying": "bullying and cyberbullying"}
MARKS = {"yes": "✅", "maybe": "🤷", "no": "❌"}


def referral_step(text: str) -> str | None:
    for words, step in REFERRAL_STEPS.items():
        if words in text:
            return step
    return None


@dataclass
class Story:
    """What one person did and saw, for the checks."""

    name: str
    child: str
    year: int
    class_name: str
    description: str
    poll_wanted: dict[int, str] = field(default_factory=dict)  # slot id -> "yes"/"maybe"/"no"
    poll_invitation: int | None = None
    rsvp_wanted: str = "a"
    rsvp_invitation: int | None = None
    task_id: int | None = None
    # Updates whose effect must be stored once acknowledged.
    referral_sends: list[int] = field(default_factory=list)
    poll_sends: list[int] = field(default_factory=list)
    rsvp_taps: list[int] = field(default_factory=list)
    notes_typed: list[str] = field(default_factory=list)
    notes_confirmed: list[str] = field(default_factory=list)
    code: str | None = None  # the referral code the person was told
    resyncs: int = 0
    resumed_wrong: list[str] = field(default_factory=list)  # a dialog that did not resume
    summary_wrong: list[str] = field(default_factory=list)  # a summary not as typed


class Walker:
    """One person, who acts like a careful real one: does a thing, watches the chat for the
    bot's answer, and when unsure whether the bot got it (no answer, an apology, or the stand-in
    saw the update acknowledged without an answer) looks again where the dialog is before
    going on, rather than typing their answer twice."""

    def __init__(
        self,
        person: Person,
        sandbox: BotApiSandbox,
        story: Story,
        rng: random.Random,
        *,
        think: float,
        kills: Callable[[], int] = lambda: 0,
    ) -> None:
        self.person = person
        self.kills = kills  # how many times the bot has been killed so far
        # Kills, and faults on this chat, before the person's last update was acknowledged.
        self.settled_kills = 0
        self.settled_faults = 0
        self.sandbox = sandbox
        self.story = story
        self.rng = rng
        self.think = think
        # The last update was handled (acknowledged) and drew no apology: what the chat shows
        # now is the bot's answer to it, even when the answer changed nothing on screen.
        self.clean = False

    # The two things a person does.

    async def say(
        self, text: str, answered: Callable[[list[ChatEvent]], T | None]
    ) -> tuple[int, T | None]:
        await self._pause()
        before = len(self.person.events)
        await self.person.send_text(text)
        return await self._watch(before, answered)

    async def tap(
        self, message_id: int, data: str, answered: Callable[[list[ChatEvent]], T | None]
    ) -> tuple[int, T | None]:
        await self._pause()
        before = len(self.person.events)
        if not self._still_there(message_id):
            return -1, None
        await self.person.tap(data, message_id=message_id)
        return await self._watch(before, answered)

    async def _pause(self) -> None:
        if self.think > 0:
            await asyncio.sleep(self.rng.expovariate(1 / self.think))

    def _still_there(self, message_id: int) -> bool:
        message = self.person.messages.get(message_id)
        return message is not None and not message.deleted

    async def _watch(
        self, before: int, answered: Callable[[list[ChatEvent]], T | None]
    ) -> tuple[int, T | None]:
        """The bot's answer to the update just made, or None once it is clear none is coming:
        an apology, or the update acknowledged (handled, replies included) without an answer.
        After a kill, or when Telegram failed a call to this chat meanwhile, the person waits
        for the acknowledgement in any case: updates the dead process had in hand come again
        and may be answered again, and the apology for an earlier update may come late (after
        a call that timed out); such an answer must not be taken for the answer to this one."""
        update_id = self.person.last_update_id
        assert update_id is not None
        entry = self.sandbox.journal[update_id]

        def look() -> bool | None:
            if entry.acknowledged_at is not None:
                return True
            events = [e for e in self.person.events[before:] if e.kind != "user"]
            found = answered(events)
            apology = any(APOLOGY in _text(e) for e in events)
            if (found is not None or apology) and self._settled():
                return True
            return None

        await self.person.chat.changed.wait_for(look, PATIENCE)
        events = [e for e in self.person.events[before:] if e.kind != "user"]
        acknowledged = entry.acknowledged_at is not None
        if acknowledged:
            self.settled_kills = self.kills()
            self.settled_faults = self.sandbox.faults.by_chat[self.person.chat_id]
        self.clean = acknowledged and not any(APOLOGY in _text(e) for e in events)
        return update_id, answered(events)

    def _settled(self) -> bool:
        """Nothing happened since the last acknowledged update that could bring a late answer
        to an earlier one."""
        return (
            self.kills() == self.settled_kills
            and self.sandbox.faults.by_chat[self.person.chat_id] == self.settled_faults
        )

    # Finding things in the chat.

    def newest(self, pattern: str) -> BotMessage | None:
        """The newest bot message with a button whose data match."""
        expression = re.compile(pattern)
        for message in self.person.chat.bot_messages_newest_first():
            if any(d and expression.match(d) for row in message.buttons() for _t, d in row):
                return message
        return None

    def stuck(self, what: str) -> ChaosError:
        return ChaosError(
            f"{self.person.first_name} is stuck: {what}\n{self.person.transcript()[-3000:]}"
        )

    # The round: language (and so the poll), a referral, the poll, the invitation, a task note.

    async def run(self) -> None:
        await self.language()
        await self.referral()
        await self.poll()
        await self.rsvp()
        await self.task_note()

    async def language(self) -> None:
        for _try in range(MAX_TRIES):
            if self.newest(r"^pv:") is not None:
                return
            _update, shown = await self.say(
                "/language", lambda events: _newest_event_with(events, r"^lang:en$")
            )
            if shown is None:
                continue
            await self.tap(
                shown.message_id, "lang:en", lambda events: _newest_event_with(events, r"^pv:")
            )
        if self.newest(r"^pv:") is None:
            raise self.stuck("no poll after choosing a language")

    # The referral.

    async def referral(self) -> None:
        story = self.story
        step, message = await self._referral_answer(*await self.say("/refer", _referral_event))
        last: str | None = None  # the step the person last answered
        for _try in range(MAX_TRIES * 2):
            if step == "sent":
                return
            if step is None or message is None or step == "gone":
                step, message = await self._resync(last)
                continue
            if step == "resume":
                step, message = await self._referral_answer(
                    *await self.tap(message.message_id, "ref:resume", _referral_event)
                )
                continue
            if step == "summary":
                self._check_summary(message)
                update_id, answered = await self.tap(
                    message.message_id, "ref:send", _referral_event
                )
                if update_id > 0:
                    story.referral_sends.append(update_id)
                last = "summary"
                step, message = await self._referral_answer(update_id, answered)
                continue
            last = step
            step, message = await self._referral_answer(*await self._answer_step(step, message))
        raise self.stuck(f"the referral did not get sent (at {step})")

    async def _referral_answer(
        self, _update_id: int, answered: ChatEvent | None
    ) -> tuple[str | None, BotMessage | None]:
        if answered is None or answered.message is None:
            return None, None
        step = referral_step(_text(answered))
        if step == "sent":
            found = re.search(r"R-\d{4}-\d{4}", _text(answered))
            self.story.code = found.group(0) if found else None
        return step, answered.message

    async def _answer_step(self, step: str, message: BotMessage) -> tuple[int, ChatEvent | None]:
        story = self.story
        typed = {
            "name": story.child,
            "year": str(story.year),
            "class": story.class_name,
            "description": story.description,
        }
        if step in typed:
            return await self.say(typed[step], _referral_event)
        tapped = {
            "danger": "ref:danger:no",
            "tried": "ref:tried:skip",
            "guardians": "ref:guardians:agree",
            "urgency": "ref:urgency:routine",
        }
        if step in tapped:
            return await self.tap(message.message_id, tapped[step], _referral_event)
        assert step == "concerns"
        ticked = {
            concern
            for concern, label in CONCERN_LABELS.items()
            if any(text == "✅ " + label for row in message.buttons() for text, _d in row)
        }
        missing = [concern for concern in CONCERNS if concern not in ticked]
        if missing:
            # A tick is a toggle: the answer to it shows the ticks as they are now.
            return await self.tap(message.message_id, f"ref:concerns:{missing[0]}", _referral_event)
        return await self.tap(message.message_id, "ref:concerns:done", _referral_event)

    async def _resync(self, last: str | None) -> tuple[str | None, BotMessage | None]:
        """Unsure where the dialog is. After Send: /myreferrals tells whether it was sent (never
        /refer before knowing: with no draft left it starts a new referral). Then /refer and
        Continue show the step the draft is at."""
        story = self.story
        story.resyncs += 1
        if last == "summary":
            for _try in range(MAX_TRIES):
                _update, listing = await self.say(
                    "/myreferrals",
                    lambda events: next((e for e in events if "Your referrals" in _text(e)), None),
                )
                if listing is None:
                    continue
                found = re.search(r"(R-\d{4}-\d{4}) · waiting for a decision", _text(listing))
                if found:
                    story.code = found.group(1)
                    return "sent", listing.message
                break
            else:
                raise self.stuck("/myreferrals never answered")
        update_id, answered = await self.say("/refer", _referral_event)
        step, message = await self._referral_answer(update_id, answered)
        if step == "resume" and message is not None:
            step, message = await self._referral_answer(
                *await self.tap(message.message_id, "ref:resume", _referral_event)
            )
        if step in FOLLOWS and last is not None and step not in (last, FOLLOWS.get(last)):
            story.resumed_wrong.append(f"answered {last}, resumed at {step}")
        return step, message

    def _check_summary(self, message: BotMessage) -> None:
        story = self.story
        text = message.text or ""
        expected = [
            f"Child: {story.child}, born {story.year}",
            f"Class: {story.class_name}, ",
            "Concerns: truancy, bullying and cyberbullying",
            story.description,
        ]
        for part in expected:
            if part not in text:
                story.summary_wrong.append(part)

    # The poll: three times set as wanted (each tap cycles ⬜ → ✅ → 🤷 → ❌), then Send.

    async def poll(self) -> None:
        message = self.newest(r"^pv:")
        if message is None:
            raise self.stuck("no poll")
        times = [d for row in message.buttons() for _t, d in row if d and d.startswith("pv:")]
        story = self.story
        for data in times[:3]:
            story.poll_wanted[int(data.split(":")[2])] = self.rng.choice(list(MARKS))
        story.poll_invitation = int(times[0].split(":")[1])
        for data in times[:3]:
            await self._set_time(message.message_id, data)
        await self._send_poll(message.message_id)

    async def _set_time(self, message_id: int, data: str) -> None:
        wanted = MARKS[self.story.poll_wanted[int(data.split(":")[2])]]
        fresh = False  # the poll's buttons were redrawn after the last tap
        for _try in range(MAX_TRIES):
            if fresh and self._mark_of(message_id, data) == wanted:
                return
            _update, edited = await self.tap(
                message_id, data, lambda events: _edit_of(events, message_id)
            )
            fresh = edited is not None
        raise self.stuck(f"the time {data} never showed {wanted}")

    def _mark_of(self, message_id: int, data: str) -> str | None:
        message = self.person.messages.get(message_id)
        for row in message.buttons() if message else []:
            for text, button in row:
                if button == data:
                    return text.split(" ", 1)[0]
        return None

    async def _send_poll(self, message_id: int) -> None:
        message = self.person.messages[message_id]
        send = next(d for row in message.buttons() for _t, d in row if d and d.startswith("ps:"))
        for _try in range(MAX_TRIES):
            update_id, edited = await self.tap(
                message_id,
                send,
                lambda events: next(
                    (e for e in events if _is_edit_of(e, message_id) and "Answered by" in _text(e)),
                    None,
                ),
            )
            if update_id > 0:
                self.story.poll_sends.append(update_id)
            # A second Send may redraw nothing new ("message is not modified").
            shown = self.person.messages[message_id].text or ""
            if edited is not None or (self.clean and "Answered by" in shown):
                return
        raise self.stuck("the poll answer was never confirmed")

    # The invitation: accept or "tentative", until the message shows it.

    async def rsvp(self) -> None:
        story = self.story
        story.rsvp_wanted = self.rng.choice(["a", "t"])
        label = "• ✅ Accept •" if story.rsvp_wanted == "a" else "• 🤔 Tentative •"
        invitation = await self._wait_for(r"^iv:\d+:\d+:a$", "an invitation")
        data = next(
            d
            for row in invitation.buttons()
            for _t, d in row
            if d and re.fullmatch(rf"iv:\d+:\d+:{story.rsvp_wanted}", d)
        )
        story.rsvp_invitation = int(data.split(":")[1])
        for _try in range(MAX_TRIES):
            update_id, _edited = await self.tap(
                invitation.message_id, data, lambda events: _edit_of(events, invitation.message_id)
            )
            if update_id > 0:
                story.rsvp_taps.append(update_id)
            # Any copy of the invitation (it may have come twice) shows the answer.
            copies = [
                m
                for m in self.person.chat.bot_messages_newest_first()
                if any(d == data for row in m.buttons() for _t, d in row)
            ]
            if any(_has_button(copy, label) for copy in copies):
                return
        raise self.stuck("the invitation never showed the answer")

    async def _wait_for(self, pattern: str, what: str) -> BotMessage:
        found = await self.person.chat.changed.wait_for(
            lambda: self.newest(pattern), PATIENCE + SETTLE_SECONDS
        )
        if found is None:
            raise self.stuck(f"{what} never came")
        return found

    # A task: the reminder's "Note" button, then the note.

    async def task_note(self) -> None:
        reminder = await self._wait_for(r"^tk:n:\d+$", "a task reminder")
        note = next(d for row in reminder.buttons() for _t, d in row if d and d.startswith("tk:n"))
        self.story.task_id = int(note.split(":")[2])
        for attempt in range(1, MAX_TRIES):
            source = self.newest(r"^tk:n:\d+$") or reminder
            _update, asked = await self.tap(
                source.message_id,
                note,
                lambda events: next(
                    (e for e in events if "Type a short progress note" in _text(e)), None
                ),
            )
            # A second tap may redraw nothing new: the prompt is already there.
            shown = self.person.messages[source.message_id].text or ""
            if asked is None and not (self.clean and "Type a short progress note" in shown):
                continue
            text = f"Progress of {self.person.first_name}, try {attempt}"
            self.story.notes_typed.append(text)
            _update, saved = await self.say(
                text,
                lambda events: next((e for e in events if "The note is saved" in _text(e)), None),
            )
            if saved is not None:
                self.story.notes_confirmed.append(text)
                return
        raise self.stuck("the note was never confirmed")


def _text(event: ChatEvent) -> str:
    message = event.message
    return (message.text or message.caption or "") if message is not None else ""


def _referral_event(events: list[ChatEvent]) -> ChatEvent | None:
    for event in reversed(events):
        if event.kind in ("sent", "edited") and referral_step(_text(event)) is not None:
            return event
    return None


def _newest_event_with(events: list[ChatEvent], pattern: str) -> BotMessage | None:
    expression = re.compile(pattern)
    for event in reversed(events):
        message = event.message
        if message is not None and any(
            d and expression.match(d) for row in message.buttons() for _t, d in row
        ):
            return message
    return None


def _is_edit_of(event: ChatEvent, message_id: int) -> bool:
    return (
        event.kind == "edited"
        and event.message is not None
        and event.message.message_id == message_id
    )


def _edit_of(events: list[ChatEvent], message_id: int) -> ChatEvent | None:
    return next((e for e in events if _is_edit_of(e, message_id)), None)


def _has_button(message: BotMessage, label: str) -> bool:
    return any(text == label for row in message.buttons() for text, _d in row)


# The run.


@dataclass
class Report:
    """The counts of a run and the promises it found broken."""

    counts: dict[str, Any]
    violations: list[str]
    # The chats of the people a violation names (what they saw and did), to find out why.
    transcripts: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        return json.dumps({"bench": "chaos", **self.counts}, sort_keys=False)

    def explained(self) -> str:
        """The violations, each person's transcript after theirs."""
        lines = list(self.violations)
        for name, transcript in self.transcripts.items():
            lines += [f"--- {name}", transcript]
        return "\n".join(lines)


class Chaos:
    """The whole run: seed, start the bot, let the people loose, kill and restart the bot at
    random moments (and cut the database away), wait for everything due, then count."""

    def __init__(
        self,
        options: Options,
        url: str,
        directory: Path,
        *,
        proxy: DatabaseProxy | None = None,
        log: Callable[[str], None] = lambda _text: None,
    ) -> None:
        if options.outages and proxy is None:
            raise ValueError("taking the database away needs a proxy in front of it")
        self.options = options
        self.url = url
        self.directory = directory
        self.proxy = proxy
        self.log = log
        self.rng = random.Random(options.seed)
        self.key = Cipher.generate_key().decode()
        self.stories: dict[int, Story] = {}
        self.walkers: list[Walker] = []
        self.outages: list[float] = []
        self.stage: Stage | None = None

    async def run(self) -> Report:
        options = self.options
        began = time.monotonic()
        now = datetime.now(UTC)
        tracked = await seed(self.url, self.key, options, now=now)
        self.log(f"seeded in {time.monotonic() - began:.1f} s")
        sandbox = BotApiSandbox(
            token=TOKEN, flood=FloodLimits(enabled=False), rtt_ms=options.rtt_ms
        )
        people = [
            sandbox.person(person_id(number), f"Teacher {number + 1}", language_code="en")
            for number in range(options.people)
        ]
        for number in range(options.bystanders):
            bystander = sandbox.person(bystander_id(number), f"Bystander {number + 1}")
            if number < options.blocked:
                bystander.block()
        sandbox.person(COORDINATOR, "Hana", language_code="en")
        await sandbox.start()
        bot_url = self.proxy.url_for(self.url) if self.proxy is not None else None
        stage = self.stage = Stage(sandbox, self.url, self.directory, self.key, bot_url=bot_url)
        try:
            await stage.start()
            sandbox.inject(options.faults)
            self.walkers = [
                self._walker(person, number, sandbox) for number, person in enumerate(people)
            ]
            load_task = asyncio.ensure_future(
                asyncio.gather(*(walker.run() for walker in self.walkers))
            )
            await _unless_died(stage, self._drive(stage, tracked, load_task), load_task)
            self.log(f"people done after {time.monotonic() - began:.1f} s; settling")
            await _unless_died(stage, self._settle(stage, tracked))
            sandbox.inject(Faults())
        finally:
            await stage.stop()
            await sandbox.stop()
        report = await self._report(stage, tracked, sandbox)
        report.counts["seconds"] = round(time.monotonic() - began, 1)
        return report

    def _walker(self, person: Person, number: int, sandbox: BotApiSandbox) -> Walker:
        story = Story(
            name=person.first_name,
            child=f"Testovací Žák {number + 1}",  # made up: transcripts are printed when stuck
            year=2010 + number % 8,
            class_name=f"{number % 9 + 1}.B",
            description=f"Chybí každé pondělí (č. {number + 1}); spolužáci mu berou svačinu.",
        )
        self.stories[person.user_id] = story
        return Walker(
            person,
            sandbox,
            story,
            random.Random(self.rng.random()),
            think=self.options.think,
            kills=lambda: len(self.stage.kills) if self.stage is not None else 0,
        )

    def _expected_calls(self) -> int:
        """About how many Bot API calls the run makes (for choosing kill moments)."""
        return self.options.people * 45

    async def _drive(self, stage: Stage, tracked: Tracked, load_task: asyncio.Future[Any]) -> None:
        await self._havoc(stage, tracked, load_task)
        await load_task

    async def _havoc(self, stage: Stage, tracked: Tracked, load_task: asyncio.Future[Any]) -> None:
        """Kill and restart at random numbers of Bot API calls; take the database away."""
        options = self.options
        total = self._expected_calls()
        moments = sorted(
            [("kill", self.rng.randint(total // 10, total * 7 // 10)) for _ in range(options.kills)]
            + [
                ("outage", self.rng.randint(total // 5, total * 3 // 5))
                for _ in range(options.outages)
            ],
            key=lambda item: item[1],
        )
        # Each at least this many calls after the one before: a restarted bot gets to work.
        gap = total // 20
        done_at = 0
        for what, planned in moments:
            calls = max(planned, done_at + gap)
            reached = await self._calls_reach(stage, calls, load_task)
            if not reached:
                return  # the people finished first
            bot = stage.bot
            if bot is None:
                return  # _unless_died reports it
            if what == "kill":
                kill = await stage.kill(bot, tracked)
                self.log(f"killed at {calls} calls, {len(kill.in_flight)} notifications in flight")
                await stage.start()
            else:
                assert self.proxy is not None
                self.log(f"database away at {calls} calls for {options.outage_seconds} s")
                self.outages.append(time.monotonic())
                # The people go on meanwhile; the next kill or outage comes after it.
                await self.proxy.outage(options.outage_seconds).wait()
            done_at = sum(stage.sandbox.stats.requests.values())

    async def _calls_reach(self, stage: Stage, calls: int, load_task: asyncio.Future[Any]) -> bool:
        """Wait until the stand-in has had `calls` Bot API calls; False if the people finished
        first. A bot that died is noticed (and reported) by the caller."""
        sandbox = stage.sandbox

        def reached() -> bool:
            return (
                load_task.done()
                or stage.bot is None
                or sum(sandbox.stats.requests.values()) >= calls
            )

        while not await sandbox.wait_for_calls(reached, timeout=1.0):
            pass
        return not load_task.done()

    async def _settle(self, stage: Stage, tracked: Tracked) -> None:
        """Wait until every tracked notification is done with and every update confirmed."""
        deadline = time.monotonic() + SETTLE_SECONDS
        rows = tracked.rows
        while time.monotonic() < deadline:
            statuses = await row_statuses(stage.url, rows)
            settled = all(
                statuses.get(row) in (OutboxStatus.SENT, OutboxStatus.FAILED) for row in rows
            )
            if settled and stage.sandbox.pending_updates() == 0:
                return
            # Look again after the next Bot API call (a send marks a row) or half a second.
            await stage.sandbox.wait_for_calls(lambda: False, timeout=0.5)
        raise ChaosError(
            "notifications or updates were still pending at the end\n" + stage.log_tail()
        )

    async def _report(self, stage: Stage, tracked: Tracked, sandbox: BotApiSandbox) -> Report:
        violations: list[str] = []
        journal = sandbox.journal
        acknowledged = {update_id for update_id, e in journal.items() if e.acknowledged_at}
        stored = await stored_answers(self.url, self.key, self.stories)

        answers = 0
        kept = 0
        for user_id, story in self.stories.items():
            found = stored[user_id]
            violations += [f"{story.name}: {problem}" for problem in story.resumed_wrong]
            violations += [
                f"{story.name}: the summary lacked {part!r}" for part in story.summary_wrong
            ]
            expectations = [
                (
                    "the referral",
                    any(u in acknowledged for u in story.referral_sends),
                    found.referral_ok,
                ),
                (
                    "the poll answer",
                    any(u in acknowledged for u in story.poll_sends),
                    found.poll_ok,
                ),
                ("the RSVP", any(u in acknowledged for u in story.rsvp_taps), found.rsvp_ok),
            ]
            for what, expected, ok in expectations:
                if expected:
                    answers += 1
                    kept += ok
                    if not ok:
                        violations.append(f"{story.name}: {what} acknowledged but not stored")
            answers += len(story.notes_confirmed)
            for text in story.notes_confirmed:
                if found.notes.count(text) == 1:
                    kept += 1
                else:
                    violations.append(
                        f"{story.name}: a confirmed note stored {found.notes.count(text)} times"
                    )
            for text in found.notes:
                if text not in story.notes_typed:
                    violations.append(f"{story.name}: a note stored that was never typed")
            if story.code is not None and story.code != found.code:
                violations.append(f"{story.name}: told {story.code}, stored {found.code}")
            violations += [f"{story.name}: {problem}" for problem in found.problems]
        unacknowledged = len(journal) - len(acknowledged)
        if unacknowledged:
            violations.append(f"{unacknowledged} updates never acknowledged")

        copies = deliveries(sandbox, tracked)
        held = held_back(sandbox, tracked)
        in_flight: Counter[int] = Counter()
        for kill in stage.kills:
            in_flight.update(kill.in_flight)
        statuses = await row_statuses(self.url, tracked.rows)
        due = tracked.rows - tracked.blocked_rows
        for row in sorted(due):
            if copies[row] == 0:
                violations.append(f"notification {row} was due and never delivered")
            extra = copies[row] - 1
            if extra > in_flight[row] + held[row]:
                violations.append(
                    f"notification {row} came {copies[row]} times; in flight at "
                    f"{in_flight[row]} kills, {held[row]} answers held back"
                )
        blocked_chats = {bystander_id(n) for n in range(self.options.blocked)}
        for row in sorted(tracked.blocked_rows):
            if statuses.get(row) is not OutboxStatus.FAILED:
                violations.append(f"notification {row} to a blocked person is {statuses.get(row)}")
        unreachable = await unreachable_chats(self.url)
        for chat in sorted(blocked_chats - unreachable):
            violations.append(f"blocked person {chat} is not marked unreachable")
        for chat in sorted(blocked_chats):
            refused = sandbox.stats.forbidden[chat]
            if refused > 1 + len(stage.kills):
                violations.append(f"sends to blocked person {chat} were tried {refused} times")
        counts: dict[str, Any] = {
            "people": self.options.people,
            "kills": len(stage.kills),
            "outages": len(self.outages),
            "updates_sent": len(journal),
            "acknowledged": len(acknowledged),
            "answers_acknowledged": answers,
            "answers_stored": kept,
            "notifications_due": len(due),
            "delivered": sum(1 for row in due if copies[row]),
            "duplicated": sum(max(copies[row] - 1, 0) for row in due),
            "in_flight_at_kills": sum(in_flight.values()),
            "held_back_sends": sum(held.values()),
            "blocked_rows": len(tracked.blocked_rows),
            "faults": dict(sorted(sandbox.faults.count().items())),
            "resyncs": sum(story.resyncs for story in self.stories.values()),
            # Times the bot waited for the database: an update that failed and was handled again
            # later, or the ledger, the dialog store or the outbox waiting before they went on.
            "waited_for_database": stage.log_count("no database; update")
            + stage.log_count("the database is out of reach"),
        }
        named = {v.split(":", 1)[0] for v in violations}
        transcripts = {
            walker.person.first_name: walker.person.transcript()
            for walker in self.walkers
            if walker.person.first_name in named
        }
        return Report(counts, violations, transcripts)


async def _unless_died(stage: Stage, work: Awaitable[None], *also: asyncio.Future[Any]) -> None:
    """The work, unless a bot process ends by itself first (then a ChaosError)."""
    task: asyncio.Future[Any] = asyncio.ensure_future(work)
    died: asyncio.Future[Any] = stage.died
    await asyncio.wait({task, died}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
        return
    for pending in (task, *also):
        pending.cancel()
    raise ChaosError(stage.died.result())


# What the database holds.


@dataclass
class Stored:
    referral_ok: bool = False
    poll_ok: bool = False
    rsvp_ok: bool = False
    code: str | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def stored_answers(url: str, key: str, stories: dict[int, Story]) -> dict[int, Stored]:
    database = Database(url)
    cipher = Cipher([key.encode()])
    found: dict[int, Stored] = {user_id: Stored() for user_id in stories}
    try:
        async with database.transaction() as session:
            members = {
                member.telegram_user_id: member
                for member in await session.scalars(
                    select(Member).where(Member.telegram_user_id.in_(list(stories)))
                )
            }
            for user_id, story in stories.items():
                member = members[user_id]
                stored = found[user_id]
                submitted = list(
                    await session.scalars(
                        select(Referral).where(
                            Referral.referrer_id == member.id,
                            Referral.status != ReferralStatus.DRAFT,
                        )
                    )
                )
                if len(submitted) > 1:
                    stored.problems.append(f"{len(submitted)} referrals submitted")
                for referral in submitted[:1]:
                    stored.code = referral.code
                    sealed = cipher.decrypt_json(referral.sealed)
                    expected = {
                        "name": story.child,
                        "birth_year": story.year,
                        "class_name": story.class_name,
                        "description": story.description,
                        "categories": ["truancy", "bullying"],
                    }
                    wrong = {k: sealed.get(k) for k, v in expected.items() if sealed.get(k) != v}
                    if wrong or sealed.get("tried"):
                        stored.problems.append(f"the referral holds {sorted(wrong)} not as typed")
                    else:
                        stored.referral_ok = True
                if story.poll_invitation is not None:
                    votes = {
                        slot: vote
                        for slot, vote in await session.execute(
                            select(SlotAnswer.slot_id, SlotAnswer.vote).where(
                                SlotAnswer.invitation_id == story.poll_invitation
                            )
                        )
                    }
                    wanted = {slot: Vote(mark).value for slot, mark in story.poll_wanted.items()}
                    stored.poll_ok = all(votes.get(slot) == vote for slot, vote in wanted.items())
                if story.rsvp_invitation is not None:
                    invitation = await session.get(Invitation, story.rsvp_invitation)
                    wanted_rsvp = Rsvp.ACCEPTED if story.rsvp_wanted == "a" else Rsvp.TENTATIVE
                    stored.rsvp_ok = invitation is not None and invitation.rsvp is wanted_rsvp
                if story.task_id is not None:
                    bodies = await session.scalars(
                        select(TaskNote.body).where(
                            TaskNote.task_id == story.task_id, TaskNote.kind == "note"
                        )
                    )
                    stored.notes = [cipher.decrypt(body).decode() for body in bodies]
        return found
    finally:
        await database.dispose()


async def unreachable_chats(url: str) -> set[int]:
    database = Database(url)
    try:
        async with database.transaction() as session:
            return set(await session.scalars(select(Member.chat_id).where(~Member.reachable)))
    finally:
        await database.dispose()


# The command line.


def parse(arguments: Sequence[str]) -> tuple[Options, str | None]:
    parser = argparse.ArgumentParser(prog="python -m bench chaos")
    parser.add_argument("--people", type=int, default=24)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--outages", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database-url", help="a PostgreSQL server to run on (a fresh database, dropped after)"
    )
    parsed = parser.parse_args(arguments)
    options = Options(
        people=parsed.people,
        kills=parsed.kills,
        faults=Faults(rate=parsed.fault_rate, seed=parsed.seed),
        seed=parsed.seed,
        outages=parsed.outages,
    )
    return options, parsed.database_url


def main(arguments: list[str]) -> int:
    options, url = parse(arguments)
    with tempfile.TemporaryDirectory(prefix="roundtable-chaos-") as temporary:
        directory = Path(temporary)
        try:
            report = asyncio.run(_main(options, url, directory))
        except ChaosError as error:
            print(f"chaos: {error}", file=sys.stderr)
            return 1
    print(report.line())
    if report.violations:
        print(report.explained(), file=sys.stderr)
    return 1 if report.violations else 0


async def _main(options: Options, url: str | None, directory: Path) -> Report:
    def log(text: str) -> None:
        print(f"chaos: {text}", file=sys.stderr, flush=True)

    if url is None:
        url = f"sqlite+aiosqlite:///{directory / 'roundtable.sqlite3'}"
        return await Chaos(options, url, directory, log=log).run()
    fresh = await load.fresh_postgres(url)
    try:
        async with DatabaseProxy.to(fresh) as proxy:
            return await Chaos(options, fresh, directory, proxy=proxy, log=log).run()
    finally:
        await load.drop_postgres(url, fresh)
