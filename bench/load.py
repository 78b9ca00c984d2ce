"""Benchmark under load: N people talk to the bot at once, over Telegram's network delay.

`python -m bench load [--people N] [--think S] [--rtt-ms R] [--updates U] [--database-url URL]`

The bot runs as its own process (`roundtable run`) against the Bot API stand-in in this process,
with the stand-in's flood limits off and every Bot API answer delayed by R ms (default 30), as
Telegram's data centres are that far away. The district has N people (default 200), each a
school's referrer, in teams of eight: each team's schools are invited to a conference whose
date poll is running and to one whose date is set. Every person:

1. reports a concern through the referral dialog (14 steps, typed and tapped),
2. answers their poll (three taps on times, then Send),
3. answers their invitation (accept, or "not sure" the next time round),

first at human pace, thinking a random time after each answer (exponential, mean S = 5 s),
then as fast as the bot answers, until U updates (default 10,000) were handled: the saturation.
Each time is taken at the stand-in, from the person's update to the bot's last answer to it.
The same two phases are then run against a bare python-telegram-bot echo bot (bench/echo.py:
the library's defaults, `concurrent_updates(64)`), the floor a typical bot gets, with people
who type 19 messages each.

Prints one JSON line per database (SQLite always, PostgreSQL when a URL is given; a fresh
database is created on that server and dropped afterwards):
p50_ms and p99_ms at human pace, updates_per_s at saturation, cpu_ms_per_update of the bot
process during saturation, idle_rss_mb after the warm-up, peak_rss_mb, rss_growth_mb between
2,000 updates into saturation and its end, lost (updates without an answer, and referrals the
bot acknowledged that are not in the database) and the echo bot's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench import BenchError, process, world
from bot.core import migrate
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import (
    ConferenceSlot,
    Referral,
    Role,
)
from bot.sandbox import BotApiSandbox, FloodLimits, Person
from bot.sandbox.models import BotMessage, CallbackAnswer
from bot.services import decisions, members, planning
from bot.services.planning import Defaults, Plan, Started

BOT_TOKEN = "7000000002:SANDBOX-token-for-the-load-bench"
ECHO_TOKEN = "7000000003:SANDBOX-token-for-the-echo-floor"
FIRST_PERSON = 200_000_000  # the people's Telegram ids (= private chat ids)
COORDINATOR = FIRST_PERSON - 1
TEAM = 8  # schools per conference
ANSWER_SECONDS = 30.0  # an update without the bot's answer within this is lost
WARM_UP_SECONDS = 180.0
GROWTH_FROM = 2_000  # saturation updates after which memory growth is measured
SETTLE_SECONDS = 3.0
CODE = re.compile(r"R-\d{4}-\d{4}")
REPOSITORY = Path(__file__).resolve().parent.parent
T = TypeVar("T")
# The referral dialog in Czech, as a teacher goes through it: ("say", text) or ("tap", label).
REFERRAL: tuple[tuple[str, str], ...] = (
    ("say", "/refer"),
    ("tap", "Ne"),
    ("say", "Testovací Žák"),  # made up: the bench prints transcripts when stuck
    ("say", "2015"),
    ("say", "5.B"),
    ("tap", "záškoláctví"),
    ("tap", "šikana a kyberšikana"),
    ("tap", "Hotovo"),
    ("say", "Od října chybí skoro každé pondělí, spolužákům říká, že mu berou svačinu."),
    ("tap", "Přeskočit"),
    ("tap", "Informováni, souhlasí"),
    ("tap", "Běžné"),
    ("tap", "Odeslat"),
)
POLL_TAPS = 3
ECHO_MESSAGES = len(REFERRAL) + POLL_TAPS + 2  # as many updates as a Round Table round
# The targets (reported on stderr, not in the JSON line).
MAX_P99_MS = 150.0
MAX_CPU_MS = 6.0
MAX_IDLE_MB = 80.0
MAX_PEAK_MB = 120.0


@dataclass(frozen=True)
class Options:
    people: int
    think: float
    rtt_ms: float
    updates: int
    database_url: str | None


def parse(arguments: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench load")
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--think", type=float, default=5.0, help="mean think time, seconds")
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    parser.add_argument("--updates", type=int, default=10_000, help="at saturation")
    parser.add_argument("--database-url", help="a PostgreSQL server to run on as well")
    parsed = parser.parse_args(arguments)
    if parsed.people < TEAM or parsed.think < 0 or parsed.rtt_ms < 0 or parsed.updates < 1:
        parser.error(f"--people needs at least {TEAM}; times and counts cannot be negative")
    return Options(parsed.people, parsed.think, parsed.rtt_ms, parsed.updates, parsed.database_url)


# The seed: a district, its coordinator, N schools with a referrer each, and per team of eight
# schools one conference polling for its date and one with its date set, made by the services.


async def seed(url: str, people: int, *, now: datetime, locale: str = "cs") -> None:
    database = Database(url)
    try:
        await migrate.upgrade(database)
        async with database.transaction() as session:
            hana = world.Coordinator(COORDINATOR, "Hana", locale)
            district_id, _ = await world.coordinator(session, hana, now=now)
            schools = await world.insert_schools(
                session, district_id, [f"ZŠ {number + 1}" for number in range(people)], now=now
            )
            await world.insert_members(
                session,
                [
                    world.member_values(
                        FIRST_PERSON + number,
                        f"Učitel {number + 1}",
                        school,
                        Role.REFERRER,
                        locale=locale,
                        now=now,
                    )
                    for number, school in enumerate(schools)
                ],
            )
        for team, first in enumerate(range(0, people, TEAM)):
            await _conferences(database, team, schools[first : first + TEAM], now=now)
    finally:
        await database.dispose()


async def _conferences(database: Database, team: int, schools: list[int], *, now: datetime) -> None:
    """The team's two conferences, as the coordinator plans them; the set one takes the first
    time its poll offered, which the coordinator's next polls then keep free."""
    # The longest window: every team's set conference needs a time the coordinator has free.
    defaults = Defaults(window=60)
    for kind in ("poll", "set"):
        async with database.transaction() as session:
            actor = await members.find_actor(session, COORDINATOR)
            assert actor is not None
            case = await world.open_case(
                session, f"LB-{kind}-{team + 1:04d}", actor.district_id, actor.member_id, now=now
            )
            plan = Plan(
                case_id=case.id, invited=dict.fromkeys(schools, True), window=defaults.window
            )
            started = await planning.start_poll(
                session, actor, plan, now=now, defaults=defaults, mail_enabled=False
            )
            if not isinstance(started, Started):
                raise BenchError(f"no time for team {team + 1}'s conference")
            if kind == "set":
                slot = await session.scalar(
                    select(ConferenceSlot.id)
                    .where(ConferenceSlot.conference_id == started.conference_id)
                    .order_by(ConferenceSlot.starts_at)
                    .limit(1)
                )
                assert slot is not None
                await decisions.confirm(session, actor, started.conference_id, slot, now=now)


async def stored_codes(url: str) -> set[str]:
    database = Database(url)
    try:
        async with database.transaction() as session:
            return {code for code in await session.scalars(select(Referral.code)) if code}
    finally:
        await database.dispose()


# The people.


@dataclass
class Tally:
    """What the people saw in one phase."""

    latencies: list[float] = field(default_factory=list)  # seconds, one per answered update
    lost: int = 0  # updates the bot did not answer within ANSWER_SECONDS
    codes: set[str] = field(default_factory=set)  # referral codes the bot gave

    @property
    def updates(self) -> int:
        return len(self.latencies) + self.lost


class Walker:
    """One person acting: each update's time from sending it to the bot's last answer (its
    last message event before the person's next update, or its callback answer)."""

    def __init__(self, person: Person, tally: Tally, think: Callable[[], float]) -> None:
        self.person = person
        self.tally = tally
        self.think = think
        self._open: tuple[float, int, float] | None = None  # sent at, events before, answered at

    async def say(self, text: str) -> None:
        events = await self._begin()
        sent = time.monotonic()
        await self.person.send_text(text)
        seen = await self.person.chat.changed.wait_for(
            lambda: self._bot_event_after(events), ANSWER_SECONDS
        )
        self._finish(sent, events, time.monotonic() if seen else None)

    async def tap(self, label: str) -> None:
        """Press a button of the newest bot message, once it has one labelled so."""
        events = await self._begin()
        message = await self.person.chat.changed.wait_for(
            lambda: self._newest_with(label), ANSWER_SECONDS
        )
        if message is None:
            raise BenchError(self.stuck(f"no button [{label}]"))
        await self._press(
            events, self.person.press(label, message_id=message.message_id, timeout=ANSWER_SECONDS)
        )

    async def tap_data(self, message_id: int, data: str) -> None:
        events = await self._begin()
        await self._press(
            events, self.person.press_data(data, message_id=message_id, timeout=ANSWER_SECONDS)
        )

    async def close(self) -> None:
        """Account for the last update: wait a moment for answers after its first one."""
        await asyncio.sleep(SETTLE_SECONDS)
        self._account()

    async def _begin(self) -> int:
        self._account()
        pause = self.think()
        if pause > 0:
            await asyncio.sleep(pause)
        return len(self.person.events)

    async def _press(self, events: int, press: Awaitable[CallbackAnswer]) -> None:
        sent = time.monotonic()
        try:
            answer: CallbackAnswer | None = await press
        except AssertionError as error:  # the stand-in's "did not answer the callback query"
            if "did not answer" not in str(error):
                raise
            answer = None
        self._finish(sent, events, answer.at if answer is not None else None)

    def _finish(self, sent: float, events: int, answered: float | None) -> None:
        if answered is None:
            self.tally.lost += 1
            return
        self._open = (sent, events, answered)

    def _account(self) -> None:
        if self._open is None:
            return
        sent, events, answered = self._open
        self._open = None
        last = answered
        for event in self.person.events[events:]:
            if event.kind != "user":
                last = max(last, event.at)
                found = CODE.search(event.message.text or "") if event.message else None
                if found:
                    self.tally.codes.add(found.group(0))
        self.tally.latencies.append(last - sent)

    def _bot_event_after(self, events: int) -> bool | None:
        return any(event.kind != "user" for event in self.person.events[events:]) or None

    def _newest_with(self, label: str) -> BotMessage | None:
        newest = self.person.chat.last_bot_message()
        if newest is None:
            return None
        labels = [text for row in newest.buttons() for text, _data in row]
        return newest if any(label in text for text in labels) else None

    def stuck(self, reason: str) -> str:
        return f"{self.person.first_name}: {reason}\n{self.person.transcript()[-2000:]}"


def find(person: Person, pattern: str) -> tuple[BotMessage, list[str]] | None:
    """The newest bot message with buttons whose data match, and those data."""
    expression = re.compile(pattern)
    for message in person.chat.bot_messages_newest_first():
        data = [d for row in message.buttons() for _text, d in row if d and expression.match(d)]
        if data:
            return message, data
    return None


# What each person does, one round.


async def round_table_round(walker: Walker, rng: random.Random, accept: bool) -> None:
    """A referral, the poll answered (three taps and Send), the invitation answered."""
    for kind, value in REFERRAL:
        await (walker.say(value) if kind == "say" else walker.tap(value))
    person = walker.person
    poll = find(person, r"^pv:")
    if poll is None:
        raise BenchError(walker.stuck("no poll"))
    message, times = poll
    for _tap in range(POLL_TAPS):
        await walker.tap_data(message.message_id, rng.choice(times))
    sent = find(person, r"^ps:")
    assert sent is not None
    await walker.tap_data(sent[0].message_id, sent[1][0])
    invitation = find(person, r"^iv:\d+:\d+:[at]$")
    if invitation is None:
        raise BenchError(walker.stuck("no invitation"))
    message, answers = invitation
    wanted = "a" if accept else "t"
    await walker.tap_data(message.message_id, next(d for d in answers if d.endswith(wanted)))


async def echo_round(walker: Walker, rng: random.Random, _accept: bool) -> None:
    for _message in range(ECHO_MESSAGES):
        await walker.say(f"Ahoj {rng.randrange(10**6)}")


Round = Callable[[Walker, random.Random, bool], Awaitable[None]]


@dataclass
class Budget:
    """Saturation: rounds go on until this many updates were sent; memory is looked at once
    GROWTH_FROM of them were."""

    updates: int
    pid: int
    rss_at_growth_from: float | None = None

    def spent(self, tallies: list[Tally]) -> int:
        used = sum(tally.updates for tally in tallies)
        if self.rss_at_growth_from is None and used >= GROWTH_FROM:
            self.rss_at_growth_from = process.rss_mb(self.pid)
        return used


async def human_pace(people: list[Person], play: Round, think: float, seed: int) -> Tally:
    """Everyone does one round, thinking a random time before each update."""
    tally = Tally()
    rng = random.Random(seed)

    async def one(person: Person, number: int) -> None:
        own = random.Random(rng.random())
        walker = Walker(person, tally, lambda: own.expovariate(1 / think) if think else 0.0)
        await play(walker, own, number % 2 == 0)
        await walker.close()

    await asyncio.gather(*(one(person, number) for number, person in enumerate(people)))
    return tally


async def saturation(people: list[Person], play: Round, budget: Budget, seed: int) -> Tally:
    """Everyone acts as soon as answered, round after round, until the budget is spent."""
    tallies = [Tally() for _person in people]
    rng = random.Random(seed)

    async def one(person: Person, tally: Tally) -> None:
        own = random.Random(rng.random())
        walker = Walker(person, tally, lambda: 0.0)
        accept = False  # the human-pace round accepted or not; the other answer now
        while budget.spent(tallies) < budget.updates:
            await play(walker, own, accept)
            accept = not accept
        await walker.close()

    await asyncio.gather(
        *(one(person, tally) for person, tally in zip(people, tallies, strict=True))
    )
    merged = Tally()
    for tally in tallies:
        merged.latencies += tally.latencies
        merged.lost += tally.lost
        merged.codes |= tally.codes
    return merged


# One bot, both phases.


@dataclass(frozen=True)
class Figures:
    p50_ms: float
    p99_ms: float
    updates_per_s: float
    cpu_ms_per_update: float
    idle_rss_mb: float
    peak_rss_mb: float
    rss_growth_mb: float
    lost: int
    codes: frozenset[str]


async def measure(
    bot: asyncio.subprocess.Process,
    people: list[Person],
    play: Round,
    options: Options,
) -> Figures:
    pid = bot.pid
    await asyncio.sleep(SETTLE_SECONDS)
    idle = process.rss_mb(pid)
    progress(f"idle at {idle:.0f} MB; human pace")
    began = time.monotonic()
    calm = await _watched(bot, human_pace(people, play, options.think, seed=1))
    progress(f"human pace: {calm.updates} updates in {time.monotonic() - began:.0f} s; saturation")
    budget = Budget(options.updates, pid)
    cpu = process.cpu_seconds(pid)
    began = time.monotonic()
    busy = await _watched(bot, saturation(people, play, budget, seed=2))
    # The people's last updates were accounted after SETTLE_SECONDS of waiting, not counted.
    seconds = time.monotonic() - began - SETTLE_SECONDS
    cpu = process.cpu_seconds(pid) - cpu
    end_rss = process.rss_mb(pid)
    progress(f"saturation: {busy.updates} updates in {seconds:.1f} s")
    quantiles = statistics.quantiles(calm.latencies, n=100) if len(calm.latencies) > 1 else [0.0]
    return Figures(
        p50_ms=round(statistics.median(calm.latencies) * 1000, 1) if calm.latencies else 0.0,
        p99_ms=round(quantiles[-1] * 1000, 1),
        updates_per_s=round(busy.updates / seconds, 1),
        cpu_ms_per_update=round(cpu * 1000 / max(busy.updates, 1), 2),
        idle_rss_mb=round(idle, 1),
        peak_rss_mb=round(process.peak_rss_mb(pid), 1),
        rss_growth_mb=round(end_rss - (budget.rss_at_growth_from or end_rss), 1),
        lost=calm.lost + busy.lost,
        codes=frozenset(calm.codes | busy.codes),
    )


async def _watched(bot: asyncio.subprocess.Process, work: Awaitable[T]) -> T:
    """The work, unless the bot process ends first."""
    task = asyncio.ensure_future(work)
    ended = asyncio.ensure_future(bot.wait())
    await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
        raise BenchError(f"the bot exited with {bot.returncode} during the run")
    ended.cancel()
    return task.result()


def new_sandbox(token: str, people: int, rtt_ms: float) -> tuple[BotApiSandbox, list[Person]]:
    sandbox = BotApiSandbox(token=token, flood=FloodLimits(enabled=False), rtt_ms=rtt_ms)
    cast = [
        sandbox.person(FIRST_PERSON + number, f"Učitel {number + 1}", language_code="cs")
        for number in range(people)
    ]
    sandbox.person(COORDINATOR, "Hana", language_code="cs")
    return sandbox, cast


async def warm_up(people: list[Person]) -> None:
    """Everyone picks Czech (/language) and so gets their poll; the invitations come from the
    outbox on their own."""

    async def one(person: Person) -> None:
        await person.send_text("/language")
        ready = await person.chat.changed.wait_for(
            lambda: find(person, r"^lang:cs$"), WARM_UP_SECONDS
        )
        if ready is None:
            raise BenchError(f"{person.first_name} got no language buttons")
        await person.press_data("lang:cs", message_id=ready[0].message_id, timeout=ANSWER_SECONDS)
        both = await person.chat.changed.wait_for(
            lambda: (find(person, r"^pv:") and find(person, r"^iv:")) or None, WARM_UP_SECONDS
        )
        if both is None:
            raise BenchError(f"{person.first_name} got no poll or no invitation")

    await asyncio.gather(*(one(person) for person in people))


async def round_table(options: Options, url: str, directory: Path) -> Figures:
    began = time.monotonic()
    await seed(url, options.people, now=datetime.now(UTC))
    progress(f"seeded {options.people} people in {time.monotonic() - began:.1f} s")
    sandbox, people = new_sandbox(BOT_TOKEN, options.people, options.rtt_ms)
    await sandbox.start()
    try:
        environment = process.bot_environment(
            sandbox, url=url, directory=directory, key=Cipher.generate_key().decode()
        )
        bot = await process.start("bot.cli", ["run"], environment, directory)
        try:
            await _watched(bot, warm_up(people))
            figures = await measure(bot, people, round_table_round, options)
        finally:
            await process.stop(bot)
    finally:
        await sandbox.stop()
    stored = await stored_codes(url)
    missing = len(figures.codes - stored)
    if missing:
        progress(f"{missing} referrals acknowledged are not in the database")
    return replace(figures, lost=figures.lost + missing)


async def echo(options: Options, directory: Path) -> Figures:
    sandbox, people = new_sandbox(ECHO_TOKEN, options.people, options.rtt_ms)
    await sandbox.start()
    try:
        environment = {
            **process.bot_environment(sandbox, url="", directory=directory, key=""),
            "ECHO_TOKEN": ECHO_TOKEN,
            "ECHO_API_URL": sandbox.base_url,
            # bench/ is not installed: the echo bot is found from the repository.
            "PYTHONPATH": str(REPOSITORY),
        }
        bot = await process.start("bench.echo", [], environment, directory)
        try:
            try:
                await sandbox.wait_for_long_poll(timeout=60)
            except AssertionError as error:
                raise BenchError("the echo bot did not start polling") from error
            return await measure(bot, people, echo_round, options)
        finally:
            await process.stop(bot)
    finally:
        await sandbox.stop()


# The databases.


async def fresh_postgres(url: str) -> str:
    """A new, empty database on the server of url; its URL."""
    name = f"roundtable_bench_{int(time.time())}"
    await _on_server(url, f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def drop_postgres(url: str, bench_url: str) -> None:
    name = make_url(bench_url).database
    await _on_server(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _on_server(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def run(options: Options, directory: Path) -> list[dict[str, object]]:
    floor = await echo(options, directory / "echo")
    progress(f"echo bot: {floor}")
    lines = []
    databases: list[tuple[str, str]] = [
        ("sqlite", f"sqlite+aiosqlite:///{directory / 'sqlite' / 'roundtable.sqlite3'}")
    ]
    if options.database_url:
        databases.append(("postgresql", await fresh_postgres(options.database_url)))
    try:
        for name, url in databases:
            progress(f"Round Table on {name}")
            figures = await round_table(options, url, directory / name)
            lines.append(_line(options, name, figures, floor))
    finally:
        if options.database_url:
            await drop_postgres(options.database_url, databases[-1][1])
    return lines


def _line(options: Options, db: str, figures: Figures, floor: Figures) -> dict[str, object]:
    for text_ in verdicts(figures, floor):
        progress(f"{db}: target missed: {text_}")
    return {
        "bench": "load",
        "people": options.people,
        "rtt_ms": options.rtt_ms,
        "db": db,
        "p50_ms": figures.p50_ms,
        "p99_ms": figures.p99_ms,
        "updates_per_s": figures.updates_per_s,
        "cpu_ms_per_update": figures.cpu_ms_per_update,
        "echo_p50_ms": floor.p50_ms,
        "echo_p99_ms": floor.p99_ms,
        "echo_updates_per_s": floor.updates_per_s,
        "echo_cpu_ms_per_update": floor.cpu_ms_per_update,
        "idle_rss_mb": figures.idle_rss_mb,
        "peak_rss_mb": figures.peak_rss_mb,
        "rss_growth_mb": figures.rss_growth_mb,
        "lost": figures.lost,
    }


def verdicts(figures: Figures, floor: Figures) -> list[str]:
    missed = []
    if figures.p99_ms >= MAX_P99_MS:
        missed.append(f"p99 {figures.p99_ms} ms >= {MAX_P99_MS}")
    if figures.updates_per_s < floor.updates_per_s:
        missed.append(f"{figures.updates_per_s} updates/s < the echo bot's {floor.updates_per_s}")
    if figures.cpu_ms_per_update > MAX_CPU_MS:
        missed.append(f"{figures.cpu_ms_per_update} ms CPU per update > {MAX_CPU_MS}")
    if figures.idle_rss_mb >= MAX_IDLE_MB or figures.peak_rss_mb >= MAX_PEAK_MB:
        missed.append(f"memory idle {figures.idle_rss_mb} MB, peak {figures.peak_rss_mb} MB")
    if figures.lost:
        missed.append(f"{figures.lost} lost")
    return missed


def progress(text_: str) -> None:
    print(f"load: {text_}", file=sys.stderr, flush=True)


def main(arguments: list[str]) -> int:
    options = parse(arguments)
    with tempfile.TemporaryDirectory(prefix="roundtable-load-") as temporary:
        directory = Path(temporary)
        for name in ("echo", "sqlite", "postgresql"):
            (directory / name).mkdir()
        try:
            lines = asyncio.run(run(options, directory))
        except BenchError as error:
            progress(str(error))
            for name in ("echo", "sqlite", "postgresql"):
                progress(f"the end of {name}/{process.LOG}:")
                print(process.tail(directory / name), file=sys.stderr)
            return 1
    for line in lines:
        print(json.dumps(line))
    return 0
