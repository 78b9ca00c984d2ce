"""Property-based: random traffic at the referral dialog, through the real running bot.

A referrer and a coordinator of the same district send random sequences of texts (whitespace,
4,096-character texts, control characters, right-to-left marks, emoji, SQL, HTML, iCalendar line
injection), years, commands, photos, voice messages, stickers, presses of the buttons they see,
and forged, stale or garbage callback data, in random order, mixed with runs of cooperative
answers so that referrals get sent, asked about, accepted and declined. The properties:

1. every update gets an answer: a new, edited or deleted message, or a callback answer;
2. nothing reaches the error handler, and nothing is logged at WARNING or above;
3. the database stays consistent: one draft per referrer at most; every sent referral has a
   code R-YYYY-NNNN, unique, submitted_at, urgency, and the child's details complete; every
   accepted referral has exactly one case, no other referral has any;
4. a message sent while the bot's latest word is a prompt of the person's draft is taken by the
   dialog (it is noted, to be deleted after sending: it may name the child);
5. a /refer dialog at a step is at the step its draft is at.

Hypothesis drives a synchronous function in a worker thread; each example runs on the test's event
loop, where the bot runs, via run_coroutine_threadsafe, and waits for the bot to finish each update
before the next (no fixed sleeps). Each example brings a new referrer and coordinator, so that a
failing example replays and shrinks on its own; the database accumulates across examples (earlier
referrals are the other people's ids to forge, and the coordinator's queue). A failure names the
example, the actions as resolved (which button, which id) and the tail of both chats.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from telegram import Update

from bot.clock import FakeClock
from bot.models import (
    AuditEntry,
    Case,
    Institution,
    InstitutionKind,
    Member,
    Referral,
    ReferralStatus,
    Role,
)
from bot.processor import OrderedUpdateProcessor
from bot.sandbox import BotApiSandbox, BotMessage, FloodLimits, Person
from bot.services import members, referrals
from handlers.common import ACTIVE_DIALOG, Context
from handlers.referral import REPLY, RESUME
from handlers.triage import TYPING
from tests.e2e.conftest import TOKEN, RunningBot

SCHOOL = "ZŠ Hradební"
EXAMPLES = int(os.environ.get("ROUNDTABLE_PROPERTY_EXAMPLES", "40"))  # more for a soak run
MAX_ACTIONS = 12
HELPFUL_STEPS = 16  # a run of cooperative answers: enough to fill in and send a referral
ACTION_TIMEOUT = 10.0  # seconds for the bot to finish handling one update
TELEGRAM_TEXT_LIMIT = 4096  # UTF-16 code units
CODE = re.compile(r"R-(\d{4})-\d{4}")

Who = Literal["referrer", "coordinator"]
MediaKind = Literal["photo", "voice", "sticker"]
Source = Literal["random", "referral", "others", "institution"]

# --- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A text message (commands included)."""

    who: Who
    text: str


@dataclass(frozen=True)
class Media:
    who: Who
    kind: MediaKind


@dataclass(frozen=True)
class Press:
    """A button of the newest bot message that has buttons (`button` is taken modulo)."""

    who: Who
    button: int


@dataclass(frozen=True)
class PressOld:
    """A button of any bot message still in the chat, quite likely a stale one."""

    who: Who
    message: int
    button: int


@dataclass(frozen=True)
class Forged:
    """Well-formed callback data with an id: random, a real referral (anyone's, or someone
    else's), or an institution."""

    who: Who
    template: str
    source: Source
    number: int


@dataclass(frozen=True)
class Data:
    """Callback data as given: valid-looking dialog data, stale data or garbage."""

    who: Who
    data: str


@dataclass(frozen=True)
class Helpful:
    """A few actions of a cooperative referrer: the right kind of answer for the draft's current
    step, each (so that referrals get sent and decided, and the coordinator's side gets its
    share). Each is one update, checked like any other action."""

    who: Who
    variant: int
    steps: int


Single = Text | Media | Press | PressOld | Forged | Data
Action = Single | Helpful

# --- strategies -----------------------------------------------------------------------------

FRAGMENTS = (
    " ",
    "  \n\t ",
    "\u00a0",
    "\u200b",
    "\u3000",
    "\u200f",  # right-to-left mark
    "\u202e",  # right-to-left override
    "\u2066",
    "\x00",
    "\x07",
    "\x1b[31m",
    "\x7f",
    "\u0085",
    "\u2028",
    "<b>",
    "</b>",
    "<i>x</i>",
    "<a href='javascript:x'>",
    "&amp;",
    "&lt;",
    "&",
    "<",
    ">",
    "'; DROP TABLE referrals; --",
    '" OR 1=1 --',
    "Robert'); DROP TABLE members;--",
    "X\r\nBEGIN:VEVENT",
    "\r\nEND:VCALENDAR\r\n",
    "SUMMARY:x\nDESCRIPTION:y",
    "👨‍👩‍👧‍👦",
    "🧒🏽",
    "🏳️‍🌈",
    "Kryštof Dvořák",
    "مرحبا",
    "שלום",
    "{name}",
    "{0}",
    "%s",
    "%(code)s",
    "\\",
    "5.B",
    "ZŠ Hradební",
)
YEARS = (
    "2015",
    "2006",
    "2023",
    "２０１５",
    "٢٠١٥",
    "2015.0",
    "-2015",
    " 2015 ",
    "20 15",
    "0",
    "99999",
    "2015\n",
    "1e3",
)
COMMANDS = (
    "/refer",
    "/cancel",
    "/myreferrals",
    "/help",
    "/start",
    "/foo",
    "/refer now",
    "/start not-a-code",
    "/Refer",
    "/cancel@roundtable_bot",
)
COORDINATOR_COMMANDS = ("/referrals", "/cases")
ID_TEMPLATES = (
    "rf:r:{}",
    "rf:o:{}",
    "rf:a:{}",
    "rf:d:{}",
    "rf:q:{}",
    "ref:school:{}",
    "rq:p:{}",
    "cs:p:{}",
)
VALUES = (
    "yes",
    "no",
    "done",
    "skip",
    "agree",
    "disagree",
    "not_asked",
    "not_informed",
    "routine",
    "week",
    "urgent",
    *referrals.CATEGORIES,
    referrals.OTHER,
    "1",
    "",
)
STEP_NAMES = (*referrals.STEPS, "sent", "bogus", "")
FIXED_DATA = (
    "ref:send",
    "ref:x",
    "ref:new",
    "ref:resume",
    "ref:fresh",
    "ref:rx",
    "rf:x",
    "ref:",
    "ref::",
    "ref:go:",
    "rf:o:-1",
    "rf:o:99999999999999999999",
    "rf:o:1:2",
    "rf:r:",
    "rf:a:١",  # Arabic-Indic digit: isdecimal() is true
    "ref:urgency:URGENT",
    "ref:concerns:__proto__",
    "rq:p:-1",
    "cs:p:x",
    "lang:xx",
)
AUDITED = ("referral.asked", "referral.answered", "referral.declined", "referral.accepted")
BOUNDARIES = (0, 2**31 - 1, 2**31, 10**12 - 1, 10**12, 2**63 - 1, 2**63, 10**20)  # ids
LEAVING = ("ref:x", "ref:resume", "ref:fresh")  # not buttons of a step
PRINTABLE = st.characters(codec="utf-8")  # no lone surrogates


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def long_text(fragment: str, length: int) -> str:
    """`fragment` repeated to about `length` UTF-16 code units, within Telegram's limit."""
    text = fragment * (length // max(utf16_len(fragment), 1) + 1)
    text = text[:length]
    while utf16_len(text) > TELEGRAM_TEXT_LIMIT:
        text = text[:-1]
    return text or fragment


def texts(who: Who) -> st.SearchStrategy[str]:
    commands = COMMANDS + (COORDINATOR_COMMANDS if who == "coordinator" else ())
    return st.one_of(
        st.sampled_from(FRAGMENTS),
        st.lists(st.sampled_from(FRAGMENTS), min_size=2, max_size=8).map("".join),
        st.sampled_from(YEARS),
        st.integers(1000, 9999).map(str),
        st.text(PRINTABLE, min_size=1, max_size=40),
        st.builds(
            long_text,
            st.sampled_from((*FRAGMENTS, "a", "ž", "x y ")),
            st.integers(90, TELEGRAM_TEXT_LIMIT),
        ),
        st.sampled_from(commands),
        st.sampled_from(commands),
    )


def callback_data() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(FIXED_DATA),
        st.builds("ref:{}:{}".format, st.sampled_from(STEP_NAMES), st.sampled_from(VALUES)),
        st.builds("ref:{}:{}".format, st.sampled_from(("go", "edit")), st.sampled_from(STEP_NAMES)),
        st.text(PRINTABLE, min_size=1, max_size=64),
    )


def actions_of(who: Who) -> st.SearchStrategy[Action]:
    small = st.integers(0, 1000)
    press = st.builds(Press, st.just(who), small)
    helpful = st.builds(Helpful, st.just(who), small, st.integers(1, HELPFUL_STEPS))
    return st.one_of(
        st.builds(Text, st.just(who), texts(who)),
        st.builds(Text, st.just(who), texts(who)),
        st.builds(Media, st.just(who), st.sampled_from(("photo", "voice", "sticker"))),
        press,
        press,
        press,
        st.builds(PressOld, st.just(who), small, small),
        st.builds(
            Forged,
            st.just(who),
            st.sampled_from(ID_TEMPLATES),
            st.sampled_from(("random", "referral", "referral", "others", "institution")),
            st.one_of(st.integers(0, 10**13), st.sampled_from(BOUNDARIES)),
        ),
        st.builds(Data, st.just(who), callback_data()),
        helpful,
        helpful,
        helpful,
    )


ACTIONS = st.lists(
    st.one_of(actions_of("referrer"), actions_of("referrer"), actions_of("coordinator")),
    min_size=1,
    max_size=MAX_ACTIONS,
)

# --- watching the bot -----------------------------------------------------------------------


Key = tuple[str, int, str]


def key_of(update: object) -> Key:
    """What identifies an update of a simulated person: the chat and message, or the presser
    and the callback data."""
    if isinstance(update, Update):
        query = update.callback_query
        if query is not None:
            return ("callback", query.from_user.id, query.data or "")
        message = update.message
        if message is not None:
            return ("message", message.chat.id, str(message.message_id))
        return ("other", update.update_id, "")
    return ("other", 0, repr(update))


class Handled:
    """The updates the bot has taken up and finished (dialog state saved included), in order."""

    def __init__(self) -> None:
        self.started: list[Key] = []
        self.finished: set[int] = set()
        self._changed = asyncio.Condition()

    def install(self, bot: RunningBot) -> None:
        processor = bot.application.update_processor
        assert isinstance(processor, OrderedUpdateProcessor)
        process = processor.do_process_update

        async def watched(update: object, coroutine: Awaitable[Any]) -> None:
            index = len(self.started)
            self.started.append(key_of(update))
            try:
                await process(update, coroutine)
            finally:
                async with self._changed:
                    self.finished.add(index)
                    self._changed.notify_all()

        processor.do_process_update = watched  # type: ignore[method-assign]

    def mark(self) -> int:
        return len(self.started)

    async def wait_for(self, key: Key, since: int) -> None:
        """Until the update `key`, taken up after `mark()` returned `since`, is finished."""

        def finished() -> bool:
            return any(
                index in self.finished
                for index in range(since, len(self.started))
                if self.started[index] == key
            )

        async with asyncio.timeout(ACTION_TIMEOUT), self._changed:
            await self._changed.wait_for(finished)


class Problems(logging.Handler):
    """Warnings and errors logged by the bot, the library or the sandbox."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = f" ({record.exc_info[1]!r})" if record.exc_info else ""
        self.records.append(f"{record.name}: {record.getMessage()}{exc}")


@contextmanager
def logged_problems(names: tuple[str, ...]) -> Iterator[Problems]:
    problems = Problems()
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(problems)
    try:
        yield problems
    finally:
        for logger in loggers:
            logger.removeHandler(problems)


# --- the driver -----------------------------------------------------------------------------


@dataclass
class Driver:
    bot: RunningBot
    handled: Handled
    errors: list[str]
    problems: Problems
    people: dict[Who, Person] = field(default_factory=dict)
    tally: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)

    async def run(self, actions: list[Action]) -> None:
        self.log = []
        self.errors.clear()  # a failure of an earlier example is that example's
        self.problems.records.clear()
        self.tally["examples"] += 1
        self.people = await self.newcomers(self.tally["examples"])
        for action in actions:
            if isinstance(action, Helpful):
                for step in range(action.steps):
                    await self.perform(await self.helpful(action.who, action.variant + step))
            else:
                await self.perform(action)
        await self.check_database()
        await self.check_dialogs()

    async def newcomers(self, number: int) -> dict[Who, Person]:
        """A coordinator and a referrer who join the district for this example. The previous
        example's coordinator leaves, so that the district has one coordinator at a time (each
        referral is announced to every coordinator)."""
        if "coordinator" in self.people:
            runtime = self.bot.runtime
            async with runtime.database.transaction() as session:
                leaver = await session.scalar(
                    select(Member.id).where(
                        Member.telegram_user_id == self.people["coordinator"].user_id
                    )
                )
                assert leaver is not None
                await members.deactivate_member(session, None, leaver, now=runtime.clock.now())
        coordinator = await join(
            self.bot,
            10_000 + 2 * number,
            "Hana",
            Role.COORDINATOR,
            institution="OSPOD Cheb",
            district="Cheb",
        )
        referrer = await join(
            self.bot,
            10_001 + 2 * number,
            "Jana",
            Role.REFERRER,
            institution=SCHOOL,
            district="Cheb",
        )
        return {"referrer": referrer, "coordinator": coordinator}

    async def perform(self, action: Single) -> None:
        await self.perform_one(action)
        self.tally["actions"] += 1
        assert not self.errors, self.failure(f"errors reached the error handler: {self.errors}")
        assert not self.problems.records, self.failure(
            f"warnings or errors were logged: {self.problems.records}"
        )

    async def perform_one(self, action: Single) -> None:
        person = self.people[action.who]
        start = len(person.events)
        since = self.handled.mark()
        prompted = await self.prompted(person)
        if isinstance(action, Text):
            self.note(action.who, f"types {action.text!r}")
            message_id = await person.send_text(action.text)
        elif isinstance(action, Media):
            self.note(action.who, f"sends a {action.kind}")
            send = {"photo": person.send_photo, "voice": person.send_voice}
            message_id = await send.get(action.kind, person.send_sticker)()
        else:
            message, data = await self.callback(person, action)
            self.note(action.who, f"presses {data!r} on message {message.message_id}")
            await person.press_data(data, message_id=message.message_id, timeout=ACTION_TIMEOUT)
            self.tally["callbacks answered"] += 1
            await self.done(("callback", person.user_id, data), since)
            return
        await self.done(("message", person.chat_id, str(message_id)), since)
        reaction = [e for e in person.events[start:] if e.kind != "user"]
        assert reaction, self.failure(f"the bot did not react to {person.first_name}'s message")
        if prompted and not (isinstance(action, Text) and action.text.startswith("/")):
            row = await self.draft_of(person)
            taken = row is not None and any(ref[0] == message_id for ref in row.message_refs)
            assert taken, self.failure(
                f"the bot's latest message to {person.first_name} was a prompt of her draft, but "
                "the /refer dialog did not take her answer (nor note it for deletion)"
            )

    async def done(self, key: Key, since: int) -> None:
        try:
            await self.handled.wait_for(key, since)
        except TimeoutError:
            raise AssertionError(
                self.failure("the bot did not finish handling the update")
            ) from None

    async def callback(self, person: Person, action: Single) -> tuple[BotMessage, str]:
        """The message pressed on and the callback data of a press or a forgery."""
        shown = person.chat.bot_messages_newest_first()
        with_buttons = [(m, datas) for m in shown if (datas := callback_datas(m))]
        last = person.last_bot_message()
        match action:
            case Press(button=button) if with_buttons:
                message, datas = with_buttons[0]
                return message, datas[button % len(datas)]
            case PressOld(message=index, button=button) if with_buttons:
                message, datas = with_buttons[index % len(with_buttons)]
                return message, datas[button % len(datas)]
            case Forged(template=template, source=source, number=number):
                return last, template.format(await self.resolve(person, source, number))
            case Data(data=data):
                return last, data
        return last, "ref:new"  # nothing to press: the home message's button

    async def resolve(self, person: Person, source: Source, number: int) -> int:
        if source == "random":
            return number
        async with self.bot.runtime.database.transaction() as session:
            if source == "institution":
                query = select(Institution.id)
            else:
                query = select(Referral.id).join(Member, Referral.referrer_id == Member.id)
                if source == "others":
                    query = query.where(Member.telegram_user_id != person.user_id)
            ids = sorted(await session.scalars(query))
        return ids[number % len(ids)] if ids else number

    async def helpful(self, who: Who, variant: int) -> Single:
        """The right kind of answer for the step the person's draft is at; first back into the
        dialog, as a person would, if it is not going on."""
        person = self.people[who]
        if who == "coordinator" and (deciding := await self.deciding(person, variant)):
            return deciding
        row = await self.draft_of(person)
        state = await self.dialog_state(person, "refer")
        waiting = await self.referrals_of(person, ReferralStatus.NEEDS_INFO)
        if waiting and state != REPLY and variant % 2:
            return Data(who, f"rf:r:{waiting[variant % len(waiting)]}")
        if state == RESUME:
            return Data(who, "ref:resume")
        if state == REPLY:
            return Text(who, "He missed twelve days in November. <b>&</b>")
        if row is None or state != row.step:
            return Text(who, "/refer")
        shown = callback_datas(person.last_bot_message())
        schools = [data for data in shown if data.startswith("ref:school:")] or [
            "ref:go:school_name"
        ]
        chosen = self.bot.runtime.cipher.decrypt_json(row.sealed).get("categories", [])
        match row.step:
            case "danger":
                return Data(who, "ref:danger:yes" if variant % 5 == 0 else "ref:danger:no")
            case "name":
                return Text(who, ("Kryštof Dvořák", "Ева <b>Петрова</b>")[variant % 2])
            case "year":
                return Text(who, str(2006 + variant % 18))
            case "class":
                return Text(who, "5.B") if variant % 4 else Data(who, "ref:go:school")
            case "school":
                return Data(who, schools[variant % len(schools)])
            case "school_name":
                return Text(who, "ZŠ Nová & <Stará>")
            case "concerns":
                if chosen and variant % 3:
                    return Data(who, "ref:concerns:done")
                categories = (*referrals.CATEGORIES, referrals.OTHER)
                return Data(who, f"ref:concerns:{categories[variant % len(categories)]}")
            case "other":
                return Text(who, "Sleeps in class")
            case "description":
                return Text(who, "Since October he misses Mondays. X\r\nBEGIN:VEVENT")
            case "tried":
                return Data(who, "ref:tried:skip") if variant % 2 else Text(who, "A talk")
            case "guardians":
                choices = ("agree", "disagree", "not_asked", "not_informed")
                return Data(who, f"ref:guardians:{choices[variant % 4]}")
            case "urgency":
                return Data(who, f"ref:urgency:{('routine', 'week', 'urgent')[variant % 3]}")
            case "summary":
                return Data(who, "ref:send" if variant % 4 else "ref:edit:description")
        return Data(who, "ref:resume")

    async def deciding(self, coordinator: Person, variant: int) -> Single | None:
        """A coordinator's share: open, accept, decline or ask about a referral waiting for a
        decision, and type the reason or the question when asked for it."""
        who: Who = "coordinator"
        if await self.dialog_state(coordinator, "triage") == TYPING:
            reasons = (
                "Not for us: <b>no</b> & X\r\nBEGIN:VEVENT",
                "How often? '; DROP TABLE cases",
            )
            return Text(who, reasons[variant % 2])
        waiting = await self.referrals_of(
            coordinator, ReferralStatus.SUBMITTED, ReferralStatus.NEEDS_INFO, district=True
        )
        if not waiting or variant % 7 == 6:
            return None  # the coordinator reports a concern instead
        what = "oadqq"[variant % 5]
        chosen = waiting[-1] if variant % 3 else waiting[variant % len(waiting)]  # mostly newest
        return Data(who, f"rf:{what}:{chosen}")

    async def referrals_of(
        self, person: Person, *statuses: ReferralStatus, district: bool = False
    ) -> list[int]:
        """The ids of the person's referrals (or their district's) in these statuses."""
        async with self.bot.runtime.database.transaction() as session:
            member = await session.scalar(
                select(Member).where(Member.telegram_user_id == person.user_id)
            )
            assert member is not None
            query = select(Referral.id).where(Referral.status.in_(statuses))
            if district:
                place = await session.get_one(Institution, member.institution_id)
                query = query.where(Referral.district_id == place.district_id)
            else:
                query = query.where(Referral.referrer_id == member.id)
            return sorted(await session.scalars(query.order_by(Referral.id)))

    async def prompted(self, person: Person) -> bool:
        """Whether the bot's latest word to the person (the message it last sent or edited) is
        a prompt of their /refer draft: its Cancel and another dialog button. A message sent
        then is an answer to the draft, which may name the child."""
        latest = None
        for event in reversed(person.events):
            if event.kind in ("sent", "edited") and event.message is not None:
                latest = person.messages[event.message.message_id]
                break
        if latest is None or latest.deleted:
            return False
        datas = callback_datas(latest)
        others = [d for d in datas if d.startswith("ref:") and d not in LEAVING]
        return "ref:x" in datas and bool(others) and await self.draft_of(person) is not None

    async def draft_of(self, person: Person) -> Referral | None:
        async with self.bot.runtime.database.transaction() as session:
            row: Referral | None = await session.scalar(
                select(Referral)
                .join(Member, Referral.referrer_id == Member.id)
                .where(
                    Member.telegram_user_id == person.user_id,
                    Referral.status == ReferralStatus.DRAFT,
                )
            )
        return row

    async def dialog_state(self, person: Person, name: str) -> object:
        """The state of the person's dialog `name`, if it is the dialog they are in (as saved
        after each update)."""
        application = self.bot.application
        if application.user_data.get(person.user_id, {}).get(ACTIVE_DIALOG) != name:
            return None
        persistence = application.persistence
        assert persistence is not None
        conversations = await persistence.get_conversations(name)
        return conversations.get((person.chat_id, person.user_id))

    def note(self, who: Who, what: str) -> None:
        self.log.append(f"{who} {what}")

    def failure(self, reason: str) -> str:
        tails = "\n".join(
            f"--- the chat with {person.first_name}, last lines:\n"
            + "\n".join(person.transcript().splitlines()[-40:])
            for person in self.people.values()
        )
        steps = "\n".join(f"  {number}. {line}" for number, line in enumerate(self.log, 1))
        return f"{reason}\nThe actions of this example:\n{steps}\n{tails}"

    async def check_dialogs(self) -> None:
        """A /refer dialog at a step is at the step its draft is at (the database leads)."""
        for person in self.people.values():
            state = await self.dialog_state(person, "refer")
            if state not in referrals.STEPS:
                continue
            row = await self.draft_of(person)
            step = None if row is None else row.step
            assert step == state, self.failure(
                f"{person.first_name}'s dialog is at {state!r}, the draft at {step!r}"
            )

    async def check_database(self) -> None:
        cipher = self.bot.runtime.cipher
        async with self.bot.runtime.database.transaction() as session:
            rows = list(await session.scalars(select(Referral).order_by(Referral.id)))
            cases = list(await session.scalars(select(Case)))
            done = await session.execute(
                select(AuditEntry.action, func.count())
                .where(AuditEntry.action.in_(AUDITED))
                .group_by(AuditEntry.action)
            )
        drafts = Counter(row.referrer_id for row in rows if row.status is ReferralStatus.DRAFT)
        assert all(n <= 1 for n in drafts.values()), self.failure(f"several drafts: {drafts}")
        sent = [row for row in rows if row.status is not ReferralStatus.DRAFT]
        for row in sent:
            problem = incomplete(row, cipher.decrypt_json(row.sealed))
            assert problem is None, self.failure(f"referral {row.id} ({row.code}): {problem}")
        codes = [row.code for row in rows if row.code is not None]
        assert len(codes) == len(set(codes)), self.failure(f"duplicate codes: {codes}")
        per_referral = Counter(case.referral_id for case in cases)
        for row in sent:
            expected = 1 if row.status is ReferralStatus.ACCEPTED else 0
            assert per_referral[row.id] == expected, self.failure(
                f"{row.code} is {row.status.value} with {per_referral[row.id]} cases"
            )
        for status in ReferralStatus:  # how far the traffic got, as the database now says
            self.tally[status.value] = sum(row.status is status for row in rows)
        self.tally["cases"] = len(cases)
        for action, count in done:
            self.tally[action] = count


def incomplete(row: Referral, sealed: dict[str, object]) -> str | None:
    """What is wrong with a sent referral, or None."""
    found = CODE.fullmatch(row.code or "")
    if found is None:
        return f"code {row.code!r}"
    if row.submitted_at is None:
        return "no submitted_at"
    if int(found.group(1)) != row.submitted_at.year:
        return f"code {row.code} but sent in {row.submitted_at.year}"
    if row.urgency is None or row.danger is None or row.guardians_consent is None:
        return "urgency, danger or the guardians' consent missing"
    for key in ("name", "class_name", "school", "description"):
        value = sealed.get(key)
        if not isinstance(value, str) or not value.strip():
            return f"{key} missing"
    if not isinstance(sealed.get("birth_year"), int):
        return "birth_year missing"
    categories = sealed.get("categories")
    if not isinstance(categories, list) or not categories:
        return "no categories"
    return None


def callback_datas(message: BotMessage) -> list[str]:
    return [data for row in message.buttons() for _, data in row if data is not None]


# --- setting up -----------------------------------------------------------------------------


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[BotApiSandbox]:
    """The Bot API stand-in without flood control: a fast stream of actions within the time a
    test may take (flood control is the rate limiter's business, tested elsewhere)."""
    server = BotApiSandbox(token=TOKEN, clock=clock.timestamp, flood=FloodLimits(enabled=False))
    await server.start()
    yield server
    await server.stop()
    assert server.unimplemented == [], "the bot called Bot API methods the stand-in lacks"


async def join(
    bot: RunningBot, user_id: int, name: str, role: Role, *, institution: str, district: str
) -> Person:
    """Like RunningBot.join, in a district named (there are two)."""
    kind = InstitutionKind.SCHOOL if institution.startswith("ZŠ") else InstitutionKind.OSPOD
    person = bot.sandbox.person(user_id, name, language_code="cs")
    await person.send_text(f"/start {await bot.invite_code(role, institution, kind, district)}")
    await person.next_message()
    await person.press("English")
    await person.next_message()
    return person


async def referrer_elsewhere(bot: RunningBot, handled: Handled) -> Person:
    """A referrer of another district, with one referral sent: someone else's ids to forge."""
    person = await join(bot, 3, "Petr", Role.REFERRER, institution="ZŠ Sokolov", district="Sokolov")
    script: list[tuple[str, str]] = [
        ("text", "/refer"),
        ("data", "ref:danger:no"),
        ("text", "Anna Nováková"),
        ("text", "2012"),
        ("text", "7.A"),
        ("data", "ref:concerns:bullying"),
        ("data", "ref:concerns:done"),
        ("text", "Other children take her lunch."),
        ("data", "ref:tried:skip"),
        ("data", "ref:guardians:agree"),
        ("data", "ref:urgency:week"),
        ("data", "ref:send"),
    ]
    for kind, value in script:
        since = handled.mark()
        if kind == "text":
            key: Key = ("message", person.chat_id, str(await person.send_text(value)))
        else:
            await person.press_data(value)
            key = ("callback", person.user_id, value)
        await handled.wait_for(key, since)
    assert "Your referral code is R-2026-0001." in person.transcript(), person.transcript()
    return person


async def test_random_traffic_is_always_answered_and_keeps_the_database_consistent(
    bot: RunningBot,
) -> None:
    handled = Handled()
    handled.install(bot)
    errors: list[str] = []

    async def record(update: object, context: Context) -> None:
        errors.append(f"{type(context.error).__name__}: {context.error}")

    bot.application.add_error_handler(record)
    await bot.invite_code(Role.REFERRER, SCHOOL, district="Cheb")
    await bot.invite_code(Role.REFERRER, "ZŠ Komenského", district="Cheb")  # a second school
    await referrer_elsewhere(bot, handled)
    loop = asyncio.get_running_loop()

    with logged_problems(("handlers", "bot", "telegram")) as problems:
        driver = Driver(bot, handled, errors, problems)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            print_blob=True,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )
        @given(ACTIONS)
        def sequences(actions: list[Action]) -> None:
            future = asyncio.run_coroutine_threadsafe(driver.run(actions), loop)
            try:
                updates = sum(a.steps if isinstance(a, Helpful) else 1 for a in actions)
                future.result(timeout=ACTION_TIMEOUT * (updates + 4))
            except TimeoutError:
                future.cancel()  # the next example must not run alongside this one
                raise

        try:
            await asyncio.to_thread(sequences)
        finally:
            print(f"\nreferral properties: {dict(driver.tally)}")
    assert not errors
