"""Property-based traffic at the running bot, shared by the dialogs' property tests.

Several people send random sequences of texts (whitespace, texts up to Telegram's 4,096
characters, control characters, right-to-left marks, emoji, SQL, HTML, iCalendar line
injection), commands, photos, voice messages, stickers, calendar files (and a PNG named .ics),
presses of the buttons they see (the
newest or an old one), and forged, stale or garbage callback data, in random order, mixed with
runs of cooperative answers so that the dialog gets somewhere. Every example checks:

1. every update gets an answer: a new, edited or deleted message, or a callback answer;
2. nothing reaches the error handler, and nothing is logged at WARNING or above;
3. the database stays consistent, as the dialog's own test states it (`Driver.check`).

Hypothesis drives a synchronous function in a worker thread; each example runs on the test's
event loop, where the bot runs, via run_coroutine_threadsafe, and waits for the bot to finish
each update before the next (no fixed sleeps). Each example brings new people (`newcomers`), so
that a failing example replays and shrinks on its own; the database accumulates across examples
(earlier rows are the ids to forge). A failure names the example, the actions as resolved
(which button, which id) and the tail of every chat.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from telegram import Update

from bot.core.models import InstitutionKind, Member, Role
from bot.sandbox import BotMessage, FloodLimits, Person
from bot.sandbox.models import CallbackAnswer
from bot.services import leavers
from bot.transport.telegram.processor import OrderedUpdateProcessor
from handlers.common import ACTIVE_DIALOG, Context
from tests.e2e.conftest import RunningBot, confirm_confidentiality

ACTION_TIMEOUT = 10.0  # seconds for the bot to finish handling one update
TELEGRAM_TEXT_LIMIT = 4096  # UTF-16 code units
MediaKind = Literal["photo", "voice", "sticker", "calendar", "not a calendar"]
CALENDAR = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:busy@x\r\n"
    b"DTSTAMP:20261101T000000Z\r\nDTSTART:20261130T080000Z\r\nDTEND:20261130T120000Z\r\n"
    b"RRULE:FREQ=DAILY;COUNT=30\r\nSUMMARY:X\\nBEGIN:VEVENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def examples(default: int) -> int:
    """How many examples a property test runs: its default (sized so that it takes well under
    half a minute on a quiet 2-core machine), or ROUNDTABLE_PROPERTY_EXAMPLES for a soak run."""
    return int(os.environ.get("ROUNDTABLE_PROPERTY_EXAMPLES", default))


# --- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A text message (commands included)."""

    who: str
    text: str


@dataclass(frozen=True)
class Media:
    who: str
    kind: MediaKind


@dataclass(frozen=True)
class Press:
    """A button of the newest bot message that has buttons (`button` is taken modulo)."""

    who: str
    button: int


@dataclass(frozen=True)
class PressOld:
    """A button of any bot message still in the chat, quite likely a stale one."""

    who: str
    message: int
    button: int


@dataclass(frozen=True)
class Forged:
    """Well-formed callback data with an id: random, or a real one of some kind (`source`,
    resolved by the driver: anyone's, someone else's, another district's ...)."""

    who: str
    template: str
    source: str
    number: int


@dataclass(frozen=True)
class Data:
    """Callback data as given: valid-looking dialog data, stale data or garbage."""

    who: str
    data: str


@dataclass(frozen=True)
class Helpful:
    """A few actions of a cooperative person: what the dialog expects next, each (so that the
    dialog gets somewhere). Each is one update, checked like any other action."""

    who: str
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
NUMBERS = (
    "2015",
    "２０１５",
    "٢٠١٥",
    "2015.0",
    "-2015",
    " 2015 ",
    "0",
    "99999",
    "1e3",
    "31.12.2026",
    "2026-12-31",
    "29.2.2027",
    "1. 12.",
    "32.1.",
)
COMMON_COMMANDS = (
    "/start",
    "/help",
    "/language",
    "/cancel",
    "/foo",
    "/start not-a-code",
    "/Help",
    "/cancel@roundtable_bot",
    "/tasks",
)
BOUNDARIES = (0, 2**31 - 1, 2**31, 10**12 - 1, 10**12, 2**63 - 1, 2**63, 10**20)  # ids
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


def texts(commands: Sequence[str], extra: Sequence[str] = ()) -> st.SearchStrategy[str]:
    """Hostile and ordinary texts, numbers and dates, and the commands given (twice as often)."""
    return st.one_of(
        st.sampled_from(FRAGMENTS),
        st.lists(st.sampled_from(FRAGMENTS), min_size=2, max_size=8).map("".join),
        st.sampled_from((*NUMBERS, *extra)),
        st.integers(1000, 9999).map(str),
        st.text(PRINTABLE, min_size=1, max_size=40),
        st.builds(
            long_text,
            st.sampled_from((*FRAGMENTS, "a", "ž", "x y ")),
            st.integers(90, TELEGRAM_TEXT_LIMIT),
        ),
        st.sampled_from((*commands, *COMMON_COMMANDS)),
        st.sampled_from((*commands, *COMMON_COMMANDS)),
    )


def garbage_data(fixed: Sequence[str]) -> st.SearchStrategy[str]:
    """Callback data: stale or malformed data of the dialog (`fixed`), or any text at all."""
    return st.one_of(st.sampled_from(fixed), st.text(PRINTABLE, min_size=1, max_size=64))


def actions_of(
    who: str,
    *,
    commands: Sequence[str],
    templates: Sequence[str],
    sources: Sequence[str],
    data: st.SearchStrategy[str],
    helpful_steps: int,
    extra_texts: Sequence[str] = (),
) -> st.SearchStrategy[Action]:
    """One person's actions; buttons and cooperative runs are the likelier ones."""
    small = st.integers(0, 1000)
    press = st.builds(Press, st.just(who), small)
    helpful = st.builds(Helpful, st.just(who), small, st.integers(1, helpful_steps))
    return st.one_of(
        st.builds(Text, st.just(who), texts(commands, extra_texts)),
        st.builds(Text, st.just(who), texts(commands, extra_texts)),
        st.builds(
            Media,
            st.just(who),
            st.sampled_from(("photo", "voice", "sticker", "calendar", "not a calendar")),
        ),
        press,
        press,
        press,
        st.builds(PressOld, st.just(who), small, small),
        st.builds(
            Forged,
            st.just(who),
            st.sampled_from(templates),
            st.sampled_from(("random", *sources)),
            st.one_of(st.integers(0, 10**13), st.sampled_from(BOUNDARIES)),
        ),
        st.builds(Data, st.just(who), data),
        helpful,
        helpful,
        helpful,
    )


# --- watching the bot -----------------------------------------------------------------------


Key = tuple[str, int, str]


def action_lists(
    actions: Callable[[str], st.SearchStrategy[Action]], people: Sequence[str], most: int
) -> st.SearchStrategy[list[Action]]:
    """Lists of one to `most` actions, each by one of the people: a person named twice acts
    twice as often."""
    return st.lists(st.one_of(*(actions(who) for who in people)), min_size=1, max_size=most)


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


def callback_datas(message: BotMessage) -> list[str]:
    return [data for row in message.buttons() for _, data in row if data is not None]


# --- the driver -----------------------------------------------------------------------------

Cast = dict[str, tuple[str, Role, str, InstitutionKind]]  # who: name, role, institution, kind
# A coordinator and two participants (police, counselling centre): a team of district Cheb.
TEAM: Cast = {
    "coordinator": ("Hana", Role.COORDINATOR, "OSPOD Cheb", InstitutionKind.OSPOD),
    "police": ("Petr", Role.PARTICIPANT, "Policie Cheb", InstitutionKind.POLICE),
    "ppp": ("Olga", Role.PARTICIPANT, "PPP Cheb", InstitutionKind.PPP),
}


@dataclass
class Driver:
    """Performs one example's actions and checks the properties; a dialog's test subclasses it
    with its people (`newcomers`), its cooperative moves (`helpful`), the ids its forgeries use
    (`ids`) and its consistency rules (`check`)."""

    bot: RunningBot
    handled: Handled = field(default_factory=Handled)
    errors: list[str] = field(default_factory=list)
    problems: Problems = field(default_factory=Problems)
    people: dict[str, Person] = field(default_factory=dict)
    tally: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)

    async def replace_people(self, cast: Cast, first_user_id: int) -> dict[str, Person]:
        """The example's people join afresh in district Cheb, and the previous example's leave
        (so that polls and announcements do not fan out to everyone who ever joined)."""
        runtime = self.bot.runtime
        now = runtime.clock.now()
        async with runtime.database.transaction() as session:
            for person in self.people.values():
                leaver = await session.scalar(
                    select(Member.id).where(Member.telegram_user_id == person.user_id)
                )
                assert leaver is not None
                await leavers.deactivate_member(session, None, leaver, now=now)
        people = {}
        for offset, (who, (name, role, institution, kind)) in enumerate(cast.items()):
            people[who] = await join(
                self.bot,
                first_user_id + offset,
                name,
                role,
                institution=institution,
                district="Cheb",
                kind=kind,
            )
        return people

    NOTHING_TO_PRESS = "x"  # the data of a press when the chat has no button

    def __post_init__(self) -> None:
        self.handled.install(self.bot)

    # The dialog's part.

    async def newcomers(self, number: int) -> dict[str, Person]:
        raise NotImplementedError

    async def helpful(self, who: str, variant: int) -> Single:
        """By default: a button of the newest message with buttons."""
        return Press(who, variant)

    async def ids(self, person: Person, source: str) -> list[int]:
        """The ids of a kind (`source`) that forged data may carry."""
        return []

    async def check(self) -> None:
        """The database's consistency after an example."""

    async def before_message(self, person: Person) -> object:
        """What an after_message check needs to know from before a message is sent."""
        return None

    async def after_message(
        self, person: Person, action: Text | Media, message_id: int, before: object
    ) -> None:
        """A check after the bot has handled a message of `person`."""

    async def after_press(self, person: Person, data: str, answer: CallbackAnswer) -> None:
        """A check after the bot has handled a press of `person` (`answer` is what the button
        showed: a note, a pop-up or nothing)."""

    # The machinery.

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
        await self.check()

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
        if isinstance(action, Text | Media):
            before = await self.before_message(person)
            if isinstance(action, Text):
                self.note(action.who, f"types {action.text!r}")
                message_id = await person.send_text(action.text)
            else:
                self.note(action.who, f"sends a {action.kind}")
                message_id = await self.send_media(person, action.kind)
            await self.done(("message", person.chat_id, str(message_id)), since)
            reaction = [e for e in person.events[start:] if e.kind != "user"]
            assert reaction, self.failure(f"the bot did not react to {person.first_name}'s message")
            await self.after_message(person, action, message_id, before)
            return
        if not person.chat.bot_messages_newest_first():
            self.note(action.who, "has no message of the bot to press on")
            return
        message, data = await self.callback(person, action)
        self.note(action.who, f"presses {data!r} on message {message.message_id}")
        answer = await person.press_data(
            data, message_id=message.message_id, timeout=ACTION_TIMEOUT
        )
        self.tally["callbacks answered"] += 1
        await self.done(("callback", person.user_id, data), since)
        await self.after_press(person, data, answer)

    async def send_media(self, person: Person, kind: MediaKind) -> int:
        if kind == "calendar":
            return await person.send_document("calendar.ics", CALENDAR, mime_type="text/calendar")
        if kind == "not a calendar":
            return await person.send_document("calendar.ics", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        send = {"photo": person.send_photo, "voice": person.send_voice}
        return await send.get(kind, person.send_sticker)()

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
        return last, self.NOTHING_TO_PRESS

    async def resolve(self, person: Person, source: str, number: int) -> int:
        if source == "random":
            return number
        found = sorted(await self.ids(person, source))
        return found[number % len(found)] if found else number

    def newest_buttons(self, person: Person) -> list[str]:
        """The callback data of the newest bot message in the person's chat that has buttons."""
        for message in person.chat.bot_messages_newest_first():
            if datas := callback_datas(message):
                return datas
        return []

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

    def note(self, who: str, what: str) -> None:
        self.log.append(f"{who} {what}")

    def failure(self, reason: str) -> str:
        tails = "\n".join(
            f"--- the chat with {person.first_name}, last lines:\n"
            + "\n".join(person.transcript().splitlines()[-40:])
            for person in self.people.values()
        )
        steps = "\n".join(f"  {number}. {line}" for number, line in enumerate(self.log, 1))
        return f"{reason}\nThe actions of this example:\n{steps}\n{tails}"


async def run_properties(
    driver: Driver, actions: st.SearchStrategy[list[Action]], count: int, name: str
) -> Counter[str]:
    """Run `count` examples of `actions` through `driver` against its running bot; print and
    return the tally (examples, actions, callbacks answered and what the dialog counts)."""
    bot = driver.bot

    async def record(update: object, context: Context) -> None:
        driver.errors.append(f"{type(context.error).__name__}: {context.error}")

    bot.application.add_error_handler(record)
    loop = asyncio.get_running_loop()
    with logged_problems(("handlers", "bot", "telegram")) as problems:
        driver.problems = problems

        @settings(
            max_examples=count,
            deadline=None,
            print_blob=True,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )
        @given(actions)
        def sequences(actions: list[Action]) -> None:
            future = asyncio.run_coroutine_threadsafe(driver.run(actions), loop)
            try:
                updates = sum(a.steps if isinstance(a, Helpful) else 1 for a in actions)
                future.result(timeout=ACTION_TIMEOUT * (updates + 10))
            except TimeoutError:
                future.cancel()  # the next example must not run alongside this one
                raise

        try:
            await asyncio.to_thread(sequences)
        finally:
            print(f"\n{name} properties: {dict(driver.tally)}")
    assert not driver.errors
    return driver.tally


# --- setting up -----------------------------------------------------------------------------


@pytest.fixture
def flood_limits() -> FloodLimits:
    """No flood control in the Bot API stand-in: a fast stream of actions within the time a
    test may take (flood control is the rate limiter's business, tested elsewhere). A property
    test module takes it with `from tests.e2e.properties import flood_limits`."""
    return FloodLimits(enabled=False)


async def join(
    bot: RunningBot,
    user_id: int,
    name: str,
    role: Role,
    *,
    institution: str,
    district: str,
    kind: InstitutionKind | None = None,
) -> Person:
    """Like RunningBot.join, in a district named (a test may have several)."""
    if kind is None:
        kind = InstitutionKind.SCHOOL if institution.startswith("ZŠ") else InstitutionKind.OSPOD
    person = bot.sandbox.person(user_id, name, language_code="cs")
    await person.send_text(f"/start {await bot.invite_code(role, institution, kind, district)}")
    await person.next_message()
    await person.press("English")
    await person.next_message()
    await confirm_confidentiality(person)
    return person
