"""Benchmark of the outbox fan-out: 3,000 reminders due at once, sent by a bot process.

One scheduled conference with 3,000 accepted invitations, one member and one private chat each,
and a reminder due now for every one of them. The bot runs as its own process (`roundtable
run`) against the Bot API stand-in in this process, with Telegram's flood limits and the real
clock. Clean run: everything is sent; we count the messages each chat got, the 429 answers, and
the pace from the first delivery to the last. Killed run: the same seed, the bot is SIGKILLed
halfway and started again; the messages in flight at the kill may arrive twice, none may be lost.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from bench import BenchError, process, world
from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import (
    Invitation,
    InvitationKind,
    OutboxRow,
    OutboxStatus,
    Role,
    Rsvp,
)
from bot.sandbox import BotApiSandbox, FloodLimits
from bot.services.invitations import REMINDER

TOKEN = "7000000001:SANDBOX-token-for-the-fanout-bench"
REMINDERS = 3000
FIRST_CHAT = 100_000_000  # the members' Telegram ids (= private chat ids), one each
PER_SECOND = 29.0
CONCURRENCY = 8
POLL_SECONDS = 0.2
STRAGGLER_SECONDS = 2.0
TIMEOUT_SECONDS = 300.0
KILL_AFTER = REMINDERS // 2
# The targets the figures are checked against (reported on stderr, not in the JSON line).
MIN_PER_SECOND = 28.0
MAX_IN_FLIGHT = 10


HANA = world.Coordinator(FIRST_CHAT - 1, "Hana", "en")


# The seed.


async def seed(url: str, *, now: datetime) -> None:
    """A fresh database with one conference whose 3,000 accepted invitations each have a
    reminder due now, planned with `outbox.plan` as the services plan them."""
    starts_at = now + timedelta(days=1, hours=12)
    async with world.fresh(url) as session:
        conference = await world.coordinators_conference(
            session, HANA, "P-2026-0001", "fanout-bench@roundtable", starts_at=starts_at, now=now
        )
        # One institution per invitee, as a conference invites institutions.
        schools = [f"ZŠ {number}" for number in range(REMINDERS)]
        institutions = await world.insert_schools(session, conference.district_id, schools, now=now)
        invitees = await world.insert_members(
            session,
            [
                world.member_values(
                    FIRST_CHAT + number,
                    f"Member {FIRST_CHAT + number}",
                    institution,
                    Role.PARTICIPANT,
                    locale="en",
                    now=now,
                )
                for number, institution in enumerate(institutions)
            ],
        )
        invitations = list(
            await session.scalars(
                insert(Invitation).returning(Invitation.id),
                [
                    {
                        "conference_id": conference.id,
                        "kind": InvitationKind.INSTITUTION,
                        "institution_id": institution,
                        "required": number < 5,
                        "rsvp": Rsvp.ACCEPTED,
                        "rsvp_by_id": member,
                        "rsvp_at": now,
                        "delegate_id": member,
                    }
                    for number, (institution, member) in enumerate(
                        zip(institutions, invitees, strict=True)
                    )
                ],
            )
        )
        prefix = f"conference:{conference.id}:s0:"
        await outbox.plan(
            session,
            [
                outbox.Planned(
                    key=f"{prefix}remind-2d:i{invitation}:m{member}",
                    kind=REMINDER,
                    subject=f"conference:{conference.id}",
                    member_id=member,
                    due_at=now,
                    expires_at=starts_at,
                    payload={
                        "conference": conference.id,
                        "invitation": invitation,
                        "sequence": 0,
                    },
                )
                for number, (invitation, member) in enumerate(
                    zip(invitations, invitees, strict=True)
                )
            ],
            now=now,
        )


async def sent_rows(url: str) -> int:
    database = Database(url)
    try:
        async with database.transaction() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.status == OutboxStatus.SENT)
            )
        return int(count or 0)
    finally:
        await database.dispose()


# The stand-in and what it saw.


def new_sandbox() -> BotApiSandbox:
    """Telegram's limits: 30 a second overall, 1 a second per chat with a burst of 10."""
    sandbox = BotApiSandbox(token=TOKEN, flood=FloodLimits())
    for number in range(REMINDERS):
        sandbox.person(FIRST_CHAT + number, f"Member {number}", language_code="en")
    # The stand-in's clock for the flood limits is the moment it handles a request: a full
    # collection over these long-lived chats (~100 ms) would hold requests back and let them
    # arrive bunched, a 429 that is this process's doing, not the bot's.
    gc.collect()
    gc.freeze()
    return sandbox


def per_chat(sandbox: BotApiSandbox) -> list[int]:
    """How many messages the bot sent each of the 3,000 chats."""
    return [
        sum(
            1
            for message in sandbox.people[FIRST_CHAT + number].messages.values()
            if message.from_bot
        )
        for number in range(REMINDERS)
    ]


@dataclass
class Span:
    """When a count (the stand-in's sent messages, the mail server's mails) first and last went
    up, by polling.

    Both ends are seen up to one poll late, so their difference is off by less than a poll."""

    first: float | None = None
    last: float | None = None
    count: int = 0

    def seen(self, count: int, at: float) -> None:
        if count > self.count:
            if self.first is None:
                self.first = at
            self.last = at
            self.count = count

    @property
    def seconds(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return self.last - self.first


async def watch(
    sandbox: BotApiSandbox,
    bot: asyncio.subprocess.Process,
    span: Span,
    *,
    until_chats: int,
    within: float,
) -> None:
    """Poll until `until_chats` chats have a message; fail if the bot exits or time runs out."""
    deadline = time.monotonic() + within
    polls = 0
    while True:
        now = time.monotonic()
        span.seen(sandbox.stats.messages_sent, now)
        polls += 1
        if polls % 50 == 0:
            progress(f"{span.count} messages, {sandbox.stats.http_429} answers 429")
        if span.count >= until_chats and _reached(sandbox) >= until_chats:
            return
        if bot.returncode is not None:
            raise BenchError(f"the bot exited with {bot.returncode} before the end")
        if now > deadline:
            raise BenchError(
                f"only {_reached(sandbox)} of {until_chats} chats reached within {within:.0f} s"
            )
        await asyncio.sleep(POLL_SECONDS)


async def linger(sandbox: BotApiSandbox, span: Span, seconds: float) -> None:
    """Keep polling a little: late or repeated messages still count."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        span.seen(sandbox.stats.messages_sent, time.monotonic())


def _reached(sandbox: BotApiSandbox) -> int:
    return sum(1 for number in range(REMINDERS) if sandbox.people[FIRST_CHAT + number].messages)


# The bot process.


@dataclass(frozen=True)
class Deployment:
    url: str
    directory: Path
    key: str


async def start_bot(deployment: Deployment, sandbox: BotApiSandbox) -> asyncio.subprocess.Process:
    environment = process.bot_environment(
        sandbox,
        url=deployment.url,
        directory=deployment.directory,
        key=deployment.key,
        outbox_per_second=PER_SECOND,
        outbox_concurrency=CONCURRENCY,
    )
    return await process.start("bot.cli", ["run"], environment, deployment.directory)


# The two runs.


@dataclass(frozen=True)
class Outcome:
    msgs_per_s: float
    http_429: int
    duplicates: int
    lost: int


def outcome(sandbox: BotApiSandbox, messages: int, seconds: float) -> Outcome:
    counts = per_chat(sandbox)
    return Outcome(
        msgs_per_s=round(messages / seconds, 2) if seconds > 0 else 0.0,
        http_429=sandbox.stats.http_429,
        duplicates=sum(count - 1 for count in counts if count > 1),
        lost=sum(1 for count in counts if count == 0),
    )


async def prepared(directory: Path) -> Deployment:
    url = f"sqlite+aiosqlite:///{directory / 'roundtable.sqlite3'}"
    began = time.monotonic()
    await seed(url, now=datetime.now(UTC))
    progress(f"seeded {directory.name} in {time.monotonic() - began:.1f} s")
    return Deployment(url, directory, Cipher.generate_key().decode())


async def to_the_end(deployment: Deployment, sandbox: BotApiSandbox, span: Span) -> None:
    """A bot that runs until every reminder is out and the stragglers had their time; then it
    stops."""
    bot = await start_bot(deployment, sandbox)
    try:
        await watch(sandbox, bot, span, until_chats=REMINDERS, within=TIMEOUT_SECONDS)
        await linger(sandbox, span, STRAGGLER_SECONDS)
    finally:
        await process.stop(bot)


async def clean_run(directory: Path) -> Outcome:
    deployment = await prepared(directory)
    sandbox = new_sandbox()
    await sandbox.start()
    try:
        span = Span()
        await to_the_end(deployment, sandbox, span)
        progress(f"clean run: {span.count} messages in {span.seconds:.1f} s")
        # The pace over the 3,000 reminders, from the first delivery to the last.
        return outcome(sandbox, REMINDERS, span.seconds)
    finally:
        await sandbox.stop()


@dataclass(frozen=True)
class Killed:
    outcome: Outcome
    in_flight: int


async def killed_run(directory: Path) -> Killed:
    deployment = await prepared(directory)
    sandbox = new_sandbox()
    await sandbox.start()
    try:
        bot = await start_bot(deployment, sandbox)
        before = Span()
        try:
            await watch(sandbox, bot, before, until_chats=KILL_AFTER, within=TIMEOUT_SECONDS)
        finally:
            await process.kill(bot)
        await asyncio.sleep(POLL_SECONDS)  # a request already read is still answered
        before.seen(sandbox.stats.messages_sent, time.monotonic())
        reached = _reached(sandbox)
        marked = await sent_rows(deployment.url)
        progress(f"killed after {reached} chats; {marked} rows were marked sent")

        after = Span(count=before.count)
        await to_the_end(deployment, sandbox, after)
        progress(
            f"killed run: {before.count} messages in {before.seconds:.1f} s, then "
            f"{after.count - before.count} in {after.seconds:.1f} s after the restart"
        )
        # The pace while sending: every message the stand-in took, duplicates included, over
        # the time from first to last delivery before the kill plus the same after the
        # restart; the restart itself (process start, migrations check) is left out.
        return Killed(
            outcome(sandbox, after.count, before.seconds + after.seconds),
            in_flight=reached - marked,
        )
    finally:
        await sandbox.stop()


def progress(text: str) -> None:
    print(f"fanout: {text}", file=sys.stderr, flush=True)


def verdicts(clean: Outcome, killed: Killed) -> list[str]:
    """The targets that were missed, in words."""
    missed = []
    for name, run in (("clean", clean), ("killed", killed.outcome)):
        if run.msgs_per_s < MIN_PER_SECOND:
            missed.append(f"{name} run: {run.msgs_per_s} msgs/s < {MIN_PER_SECOND}")
        if run.http_429:
            missed.append(f"{name} run: {run.http_429} answers 429")
    if clean.duplicates or clean.lost:
        missed.append(f"clean run: {clean.duplicates} duplicates, {clean.lost} lost")
    if killed.outcome.lost:
        missed.append(f"killed run: {killed.outcome.lost} lost")
    if not killed.outcome.duplicates <= killed.in_flight <= MAX_IN_FLIGHT:
        missed.append(
            f"killed run: {killed.outcome.duplicates} duplicates, {killed.in_flight} in flight"
        )
    return missed


async def run(clean_directory: Path, killed_directory: Path) -> dict[str, object]:
    began = time.monotonic()
    clean = await clean_run(clean_directory)
    killed = await killed_run(killed_directory)
    progress(f"took {time.monotonic() - began:.0f} s")
    for text in verdicts(clean, killed):
        progress(f"target missed: {text}")
    return {
        "bench": "fanout",
        "reminders": REMINDERS,
        "msgs_per_s": clean.msgs_per_s,
        "http_429": clean.http_429,
        "duplicates": clean.duplicates,
        "lost": clean.lost,
        "killed_msgs_per_s": killed.outcome.msgs_per_s,
        "killed_http_429": killed.outcome.http_429,
        "killed_duplicates": killed.outcome.duplicates,
        "killed_lost": killed.outcome.lost,
        "killed_in_flight": killed.in_flight,
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="roundtable-fanout-") as temporary:
        clean, killed = Path(temporary) / "clean", Path(temporary) / "killed"
        clean.mkdir()
        killed.mkdir()
        try:
            figures = asyncio.run(run(clean, killed))
        except BenchError as error:
            progress(str(error))
            for directory in (clean, killed):
                progress(f"the end of {directory.name}/{process.LOG}:")
                print(process.tail(directory), file=sys.stderr)
            return 1
    print(json.dumps(figures))
    return 0
