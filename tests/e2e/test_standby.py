"""Active/standby: two `roundtable run` processes of one bot on one database.

Only one serves at a time, the other waits; killed under load, the active one is replaced within
seconds, and nothing the bot acknowledged is lost: every referral a teacher got a code for is
stored, every interrupted dialog goes on, every notification due is sent (a few in flight at the
kill may arrive twice, never none). And two outbox workers on one database never send the same
notification.

The processes run against the Bot API stand-in, the simulated people and the seed of
bench/load.py (bench/process.py starts and kills them). The checks that count (`Counts` below)
are kept apart from the driving so that they can move to the shared chaos harness.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bench import load, process
from bot.app import build_application
from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.config import Settings, isolated_settings
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import Member, OutboxRow, OutboxStatus, Referral, ReferralStatus, Role
from bot.core.runtime import Runtime
from bot.sandbox import BotApiSandbox, Person
from bot.sandbox.models import BotMessage
from bot.transport.telegram import delivery
from handlers.common import Context
from tests.conftest import POSTGRES_URL, TEST_KEY
from tests.e2e.conftest import RunningBot
from tests.rows import draft_expired_notice

WALKERS = 16  # teachers going through the referral dialog while the active process is killed
IDLE = 8  # teachers who only receive notifications
NOTICES_EACH = 4  # notifications planned for each idle teacher just before the kill
EXPIRED = "po 14 dnech beze změn smazáno"  # the Czech text of those (DRAFT_EXPIRED)
THINK_SECONDS = 0.3  # a walker's mean pause before each step
ANSWER_SECONDS = 15.0  # a step not answered within this is taken again, as a person would
ATTEMPTS = 3
TAKEOVER_LIMIT = 10.0  # seconds from the kill to the standby's first answer
OUTBOX_CONCURRENCY = 8  # the default: at most this many notifications are in the air at a kill
CODE = re.compile(r"R-\d{4}-\d{4}")


async def _until(check: Callable[[], bool], within: float, what: str) -> None:
    """Wait for a condition of another process (a log line, a database row)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


def _log(directory: Path) -> str:
    log = directory / process.LOG
    return log.read_text(errors="replace") if log.exists() else ""


@dataclass
class Pair:
    """Two `roundtable run` processes of one bot, each logging into its own directory."""

    environment: dict[str, str]
    root: Path
    processes: list[tuple[asyncio.subprocess.Process, Path]] = field(default_factory=list)

    async def start(self, name: str) -> tuple[asyncio.subprocess.Process, Path]:
        directory = self.root / name
        directory.mkdir()
        started = await process.start("bot.cli", ["run"], self.environment, directory)
        self.processes.append((started, directory))
        return started, directory

    def logs(self) -> str:
        return "\n".join(
            f"--- {directory.name}:\n{process.tail(directory, 30)}"
            for _p, directory in self.processes
        )


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[BotApiSandbox, list[Person]]]:
    """The stand-in of bench/load.py with its cast: the walkers first, then the idle ones."""
    sandbox, people = load.new_sandbox(load.BOT_TOKEN, WALKERS + IDLE, rtt_ms=0.0)
    await sandbox.start()
    yield sandbox, people
    await sandbox.stop()


@pytest.fixture
async def pair(
    database_url: str, stand_in: tuple[BotApiSandbox, list[Person]], tmp_path: Path
) -> AsyncIterator[Pair]:
    sandbox, _people = stand_in
    await load.seed(database_url, WALKERS + IDLE, now=datetime.now(UTC))
    environment = process.bot_environment(
        sandbox,
        url=database_url,
        directory=tmp_path,
        key=TEST_KEY.decode(),
        sweep_seconds=1,  # the outbox looks for rows planned by others every second
    )
    running = Pair(environment, tmp_path)
    yield running
    for started, _directory in running.processes:
        await process.stop(started)


# The walkers: the referral dialog of bench/load.py, gone through as a person would when the bot
# falls silent for a moment: say or tap again what got no answer, answer the question the bot
# asks now (it may be a later one: an answer was taken but its reply lost in the kill), and if
# lost, /refer and Continue for the current question, as the dialog itself tells them to.


class Stuck(AssertionError):
    """The bot did not answer, or does not ask what the person expected."""


@dataclass
class Progress:
    steps: int = 0  # steps answered, all walkers together
    at: dict[int, int] = field(default_factory=dict)  # walker -> the step they are at
    finished: int = 0


def _answer_after(person: Person, events: int) -> Callable[[], bool | None]:
    return lambda: any(event.kind != "user" for event in person.events[events:]) or None


async def _say(person: Person, words: str) -> None:
    for _attempt in range(ATTEMPTS):
        answered = _answer_after(person, len(person.events))
        await person.send_text(words)
        if await person.chat.changed.wait_for(answered, ANSWER_SECONDS):
            return
    raise Stuck(f"no answer to {words!r}\n{person.transcript()[-3000:]}")


def _newest_with(person: Person, label: str) -> BotMessage | None:
    """The bot's newest message, if it has a button labelled so (a person taps what they see)."""
    newest = person.chat.last_bot_message()
    if newest is None:
        return None
    labels = [words for row in newest.buttons() for words, _data in row]
    return newest if any(label in words for words in labels) else None


async def _tap(person: Person, label: str) -> None:
    for _attempt in range(ATTEMPTS):
        message = await person.chat.changed.wait_for(
            lambda: _newest_with(person, label), ANSWER_SECONDS
        )
        if message is None:
            break
        try:
            await person.press(label, message_id=message.message_id, timeout=ANSWER_SECONDS)
            return
        except AssertionError as error:
            if "did not answer" not in str(error):
                raise
    raise Stuck(f"no [{label}] to tap\n{person.transcript()[-3000:]}")


def _asked_now(person: Person, step: int) -> int:
    """The step of the script the bot asks for now: this one, or a later one whose button
    the referral dialog shows."""
    newest = person.chat.last_bot_message()
    data = [d for row in newest.buttons() for _words, d in row] if newest else []
    if step == 0 or not any(d and d.startswith("ref:") for d in data):
        return step
    for later in range(step, len(load.REFERRAL)):
        kind, value = load.REFERRAL[later]
        if kind == "tap" and _newest_with(person, value):
            return later
    return step


async def _refer(person: Person, rng: random.Random, progress: Progress) -> None:
    script = load.REFERRAL
    step = resumed = 0
    while step < len(script):
        progress.at[person.user_id] = step
        await asyncio.sleep(rng.expovariate(1 / THINK_SECONDS))  # the person thinks
        step = _asked_now(person, step)
        kind, value = script[step]
        try:
            await (_say(person, value) if kind == "say" else _tap(person, value))
        except Stuck:
            if step == len(script) - 1:
                break  # the summary with Send is gone: it was sent (the database will say)
            if resumed == ATTEMPTS:
                raise
            resumed += 1
            await _say(person, "/refer")
            await _tap(person, "Pokračovat")  # "Continue": the question the draft is at
            continue
        step += 1
        progress.steps += 1
    progress.at[person.user_id] = step
    progress.finished += 1


# What must hold after the kill, counted.


@dataclass(frozen=True)
class Counts:
    acknowledged: frozenset[str]  # referral codes the bot gave the walkers
    stored: frozenset[str]  # referral codes in the database
    submitted: int  # referrals in the database, sent
    notices: dict[int, int]  # idle teacher -> notifications received
    notices_unsent: int  # planned notifications not marked sent

    def lost_referrals(self) -> set[str]:
        return set(self.acknowledged - self.stored)

    def lost_notices(self) -> int:
        return sum(max(NOTICES_EACH - seen, 0) for seen in self.notices.values())

    def repeated_notices(self) -> int:
        return sum(max(seen - NOTICES_EACH, 0) for seen in self.notices.values())


async def plan_notices(
    database: Database, people: list[Person], each: int, *, prefix: str, now: datetime
) -> None:
    """Each person gets `each` notifications due now (their expired draft, told), keyed by
    prefix: planned by another process, as far as the bot can tell."""
    async with database.transaction() as session:
        rows = await session.execute(
            select(Member.chat_id, Member.id).where(Member.chat_id.in_([p.chat_id for p in people]))
        )
        ids = {chat_id: member_id for chat_id, member_id in rows}
        await outbox.plan(
            session,
            [
                draft_expired_notice(
                    f"{prefix}:{person.chat_id}:{number}", ids[person.chat_id], now
                )
                for person in people
                for number in range(each)
            ],
            now=now,
        )


def _notices(person: Person) -> int:
    return sum(
        1
        for event in person.events
        if event.kind == "sent" and event.message and EXPIRED in (event.message.text or "")
    )


async def _count(url: str, walkers: list[Person], idle: list[Person]) -> Counts:
    database = Database(url)
    try:
        async with database.reading() as session:
            codes = frozenset(code for code in await session.scalars(select(Referral.code)) if code)
            submitted = await session.scalar(
                select(func.count())
                .select_from(Referral)
                .where(Referral.status == ReferralStatus.SUBMITTED)
            )
            unsent = await session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.key.startswith("standby:"), OutboxRow.status != OutboxStatus.SENT)
            )
    finally:
        await database.dispose()
    acknowledged = frozenset(
        found.group(0)
        for person in walkers
        for message in person.messages.values()
        if message.from_bot and (found := CODE.search(message.text or ""))
    )
    return Counts(
        acknowledged=acknowledged,
        stored=codes,
        submitted=int(submitted or 0),
        notices={person.chat_id: _notices(person) for person in idle},
        notices_unsent=int(unsent or 0),
    )


def _first_answer_after(people: list[Person], moment: float) -> float | None:
    times = [
        event.at
        for person in people
        for event in reversed(person.events)
        if event.kind != "user" and event.at > moment
    ]
    return min(times) if times else None


async def test_the_standby_takes_over_within_seconds_when_the_active_process_is_killed_under_load(
    pair: Pair, stand_in: tuple[BotApiSandbox, list[Person]], database_url: str
) -> None:
    sandbox, people = stand_in
    walkers, idle = people[:WALKERS], people[WALKERS:]
    active, active_dir = await pair.start("active")
    await sandbox.wait_for_long_poll(timeout=60)
    _standby, standby_dir = await pair.start("standby")
    await _until(lambda: "standby: another process serves" in _log(standby_dir), 60, "standby")
    assert "holds the active lock" in _log(active_dir)
    await load.warm_up(walkers)

    progress = Progress()
    rng = random.Random(7)
    walking = [
        asyncio.create_task(_refer(p, random.Random(rng.random()), progress)) for p in walkers
    ]
    try:
        # A third of the way through the dialogs, a burst of notifications; once the active
        # process is sending them, it is killed.
        total = WALKERS * len(load.REFERRAL)
        await _until(lambda: progress.steps >= total // 3, 120, "a third of the steps")
        database = Database(database_url)
        try:
            await plan_notices(
                database, idle, NOTICES_EACH, prefix="standby", now=datetime.now(UTC)
            )
        finally:
            await database.dispose()
        await _until(lambda: sum(map(_notices, idle)) >= IDLE, 60, "notifications being sent")
        pollers_in_conflict = sandbox.stats.http_errors[409]
        mid_dialog = sum(0 < step < len(load.REFERRAL) for step in progress.at.values())
        await process.kill(active)
        killed_at = time.monotonic()
        await _until(lambda: _first_answer_after(people, killed_at) is not None, 60, "takeover")
        answered_at = _first_answer_after(people, killed_at)
        assert answered_at is not None
        takeover = answered_at - killed_at
        await asyncio.gather(*walking)
    except BaseException:
        for task in walking:
            task.cancel()
        print(pair.logs())
        raise

    # Only one process took updates: two pollers would have had Telegram's 409 all along.
    assert pollers_in_conflict == 0
    assert "Conflict" not in _log(active_dir) + _log(standby_dir)
    assert "holds the active lock" in _log(standby_dir)
    assert takeover < TAKEOVER_LIMIT
    assert mid_dialog > 0  # people were in the middle of their dialogs at the kill
    assert progress.finished == WALKERS  # every dialog went on to the end

    async def settled() -> Counts:
        deadline = time.monotonic() + 60
        while True:
            counts = await _count(database_url, walkers, idle)
            if counts.notices_unsent == 0 and not counts.lost_notices():
                return counts
            if time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.2)

    counts = await settled()
    assert counts.lost_referrals() == set()
    assert counts.submitted == WALKERS
    assert counts.notices_unsent == 0
    assert counts.lost_notices() == 0
    assert counts.repeated_notices() <= OUTBOX_CONCURRENCY
    print(
        f"takeover {takeover:.2f} s from SIGKILL to the standby's first answer; "
        f"{mid_dialog} of {WALKERS} mid-dialog at the kill; "
        f"{counts.repeated_notices()} of {IDLE * NOTICES_EACH} notifications sent twice"
    )


# The lock itself (PostgreSQL): its connection dies, the active process stops serving.


async def _terminate_lock_connection(url: str) -> int:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            ended = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'roundtable active lock' "
                    "AND datname = current_database() AND pid IN "
                    "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
                )
            )
    finally:
        await database.dispose()
    return int(ended or 0)


def _terms(directory: Path) -> int:
    """How often the process in directory began serving."""
    return _log(directory).count("holds the active lock")


@pytest.mark.skipif(POSTGRES_URL is None, reason="the advisory lock is PostgreSQL's")
async def test_a_process_that_loses_its_lock_connection_stops_serving_and_stands_by(
    pair: Pair, stand_in: tuple[BotApiSandbox, list[Person]], database_url: str
) -> None:
    sandbox, people = stand_in
    teacher = people[0]
    first, first_dir = await pair.start("first")
    await sandbox.wait_for_long_poll(timeout=60)
    second, second_dir = await pair.start("second")
    await _until(lambda: "standby: another process serves" in _log(second_dir), 60, "standby")

    assert await _terminate_lock_connection(database_url) == 1  # as a database restart would
    await _until(lambda: "this process is a standby now" in _log(first_dir), 30, "first stops")
    # Either may win the lock now: the one that lost it competes again like the other.
    await _until(lambda: _terms(first_dir) + _terms(second_dir) == 2, 30, "a new term")
    await _say(teacher, "/help")
    assert first.returncode is None and second.returncode is None  # one serves, one waits

    active, standby = (first, second_dir) if _terms(first_dir) == 2 else (second, first_dir)
    terms = _terms(standby)
    await process.kill(active)
    await _until(lambda: _terms(standby) == terms + 1, 30, "the standby takes over")
    await _say(teacher, "/help")
    helps = [m for m in teacher.messages.values() if m.from_bot and "/language" in (m.text or "")]
    assert len(helps) == 2  # each /help answered once, by whichever process was active
    # Never two pollers at once: the one superseded would have had Telegram's 409 Conflict.
    assert "Conflict" not in _log(first_dir) + _log(second_dir)


# Two outbox workers on one database (two processes' worth: each its own engine and pool).


@pytest.fixture
def two_runtimes(
    bot: RunningBot, settings: Settings, clock: FakeClock, cipher: Cipher
) -> list[Runtime]:
    """Together below the stand-in's 30 messages a second: no 429 to wait out in fake time.
    The running bot's own outbox worker stops: these two are the only ones sending."""
    bot.application.bot_data[delivery.DISPATCHER_KEY].stop()
    return [
        Runtime(
            settings=isolated_settings(**{**settings.model_dump(), "outbox_per_second": 12}),
            database=Database(settings.effective_database_url),
            clock=clock,
            cipher=cipher,
        )
        for _worker in range(2)
    ]


async def _recipients(bot: RunningBot, count: int) -> list[Person]:
    return await bot.joined({300 + n: f"Učitel {n}" for n in range(count)}, Role.REFERRER)


def _received(person: Person) -> int:
    return sum(
        1
        for event in person.events
        if event.kind == "sent"
        and event.message
        and "was deleted after 14 days" in (event.message.text or "")
    )


async def _statuses(runtime: Runtime) -> dict[OutboxStatus, int]:
    async with runtime.database.reading() as session:
        rows = await session.execute(
            select(OutboxRow.status, func.count())
            .where(OutboxRow.key.startswith("two:"))
            .group_by(OutboxRow.status)
        )
        return {status: int(count) for status, count in rows}


async def test_two_outbox_workers_on_one_database_send_every_notification_exactly_once(
    bot: RunningBot, two_runtimes: list[Runtime], clock: FakeClock
) -> None:
    people = await _recipients(bot, 30)
    first, second = (build_application(runtime) for runtime in two_runtimes)
    workers: list[delivery.Dispatcher] = [
        app.bot_data[delivery.DISPATCHER_KEY] for app in (first, second)
    ]
    await plan_notices(
        bot.runtime.database, people, 4, prefix="two", now=clock.now()
    )  # 120 due at once: more than one batch of 100
    try:
        async with workers[0].bot, workers[1].bot:
            running = asyncio.create_task(workers[0].run(Context(first)))
            # The second starts while the first is sending its batch.
            await _until(lambda: sum(map(_received, people)) >= 10, 30, "the first sends")
            assert not running.done()
            await asyncio.gather(running, workers[1].run(Context(second)))
            # Together they send faster than Telegram's 30 a second: what it answered 429 is
            # due again after its retry_after, and both workers go on.
            for _ in range(10):
                if await _statuses(bot.runtime) == {OutboxStatus.SENT: 120}:
                    break
                clock.advance(timedelta(minutes=1))
                await asyncio.gather(
                    *(w.run(Context(a)) for w, a in zip(workers, (first, second), strict=True))
                )
    finally:
        for runtime in two_runtimes:
            await runtime.database.dispose()
    assert [_received(person) for person in people] == [4] * 30
    assert await _statuses(bot.runtime) == {OutboxStatus.SENT: 120}


async def test_a_claim_past_its_lease_is_left_to_the_worker_that_took_it_over(
    bot: RunningBot, two_runtimes: list[Runtime], clock: FakeClock
) -> None:
    """A worker held up longer than the lease (a long 429 wait, a frozen host) finds its rows
    taken over by another worker and does not send them as well."""
    people = await _recipients(bot, 10)
    first, second = (build_application(runtime) for runtime in two_runtimes)
    slow: delivery.Dispatcher = first.bot_data[delivery.DISPATCHER_KEY]
    other: delivery.Dispatcher = second.bot_data[delivery.DISPATCHER_KEY]
    held = asyncio.Event()
    waiting = 0
    overall = slow.pacer.overall

    async def held_up() -> None:
        nonlocal waiting
        waiting += 1
        await held.wait()
        await overall()

    slow.pacer.overall = held_up  # type: ignore[method-assign]
    await plan_notices(bot.runtime.database, people, 2, prefix="two", now=clock.now())
    try:
        async with slow.bot, other.bot:
            running = asyncio.create_task(slow.run(Context(first)))
            await _until(lambda: waiting == slow.concurrency, 30, "the slow worker has claimed")
            clock.advance(slow.lease + timedelta(seconds=1))
            await other.run(Context(second))
            assert [_received(person) for person in people] == [2] * 10
            held.set()
            await running
    finally:
        for runtime in two_runtimes:
            await runtime.database.dispose()
    assert [_received(person) for person in people] == [2] * 10
    assert await _statuses(bot.runtime) == {OutboxStatus.SENT: 20}
