"""Benchmark of the mail fan-out: 1,000 invitation mails through the outbox to a local SMTP server.

One scheduled conference and 1,000 mail rows due at once, one per invited address, planned with
`outbox.plan` as the services plan them. A sending process of its own (`python -m bench.mail
worker`: the `MailDispatcher` with the production settings' pace and connections, and a
renderer that makes a real iMIP invitation per row – the calendar by `scheduling.invites`, the
message by `bot.transport.mail.imip.invitation_mail`) sends them to aiosmtpd
(bot.sandbox.mail.MailServer) in this process. Clean run: everything is sent; we count the
mails each address got and the pace from the first arrival to the last. Killed run: the same,
the process is SIGKILLed halfway and started again; the mails in flight at the kill (received
by the server, their rows not yet marked sent) may arrive twice, none may be lost.

`python -m bench mail [--mails N] [--per-second R] [--concurrency C]` prints one JSON line;
tests/e2e/test_mail_crash.py runs a smaller killed run in the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from bench import BenchError, process, world
from bench.fanout import Span, sent_rows
from bot.core import outbox
from bot.core.clock import SystemClock
from bot.core.config import load_settings
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import (
    Case,
    Channel,
    Conference,
)
from bot.core.outbox import Letter
from bot.core.runtime import Runtime
from bot.sandbox.mail import MailServer
from bot.transport.mail.delivery import MailDispatcher, MailKind, RenderMail
from bot.transport.mail.imip import Mailbox, invitation_mail
from bot.transport.mail.smtp import SmtpSender
from scheduling import invites

MAILS = 1000
PER_SECOND = 50.0  # the settings' defaults (mail_per_second, mail_concurrency)
CONCURRENCY = 4
KIND = "bench.invitation"
MAIL_FROM = "OSPOD Cheb <konference@cheb.example.cz>"
POLL_SECONDS = 0.05
STRAGGLER_SECONDS = 1.0
TIMEOUT_SECONDS = 300.0
# The chat fan-out's pace (docs/benchmarks.md): mail must be at least as fast.
CHAT_PER_SECOND = 28.47
REPOSITORY = Path(__file__).resolve().parents[1]
ASKED = "NEEDS-ACTION"
INSTITUTIONS = ("Policie ČR Cheb", "ZŠ Hradební", "Nemocnice Cheb", "Probační služba", "Soud")


def address(number: int) -> str:
    return f"pozvany{number}@instituce{number % 40}.example.cz"


HANA = world.Coordinator(900_000, "Hana Malá", "cs")


# The seed.


async def seed(url: str, *, now: datetime, mails: int) -> None:
    """A fresh database with one scheduled conference and `mails` invitation mails due now."""
    starts_at = now + timedelta(days=2, hours=3)
    async with world.fresh(url) as session:
        conference = await world.coordinators_conference(
            session, HANA, "PK-2026-0001", "mail-bench@roundtable", starts_at=starts_at, now=now
        )
        subject = f"conference:{conference.id}"
        await outbox.plan(
            session,
            [
                outbox.Planned(
                    key=f"{subject}:s0:mail-invite:g{number}",
                    kind=KIND,
                    subject=subject,
                    member_id=None,
                    due_at=now,
                    expires_at=starts_at,
                    payload={"conference": conference.id, "guest": number},
                    channel=Channel.MAIL,
                    address=address(number),
                )
                for number in range(mails)
            ],
            now=now,
        )


# The sending process.


def invitation_renderer(runtime: Runtime, sender: Mailbox) -> RenderMail:
    """A realistic invitation per row, read from the database at send time: the conference's
    calendar for this recipient (only their own address real) in an iMIP message."""

    async def render(letter: Letter) -> EmailMessage | None:
        async with runtime.database.reading() as session:
            found = (
                await session.execute(
                    select(Conference, Case.code)
                    .join(Case, Conference.case_id == Case.id)
                    .where(Conference.id == int(letter.payload["conference"]))
                )
            ).one_or_none()
        if found is None:
            return None
        conference, code = found
        assert conference.starts_at is not None and conference.uid is not None
        others = tuple(
            invites.Attendee(
                f"invitation-{n}@roundtable.invalid", name, "REQ-PARTICIPANT", "NEEDS-ACTION"
            )
            for n, name in enumerate(INSTITUTIONS)
        )
        event = invites.Event(
            uid=conference.uid,
            sequence=conference.sequence,
            starts_at=conference.starts_at,
            minutes=conference.duration_minutes,
            summary=f"Případová konference {code}",
            description=f"Případová konference {code}. Odpovědi a změny přes Round Table.",
            location=conference.place,
            organizer_address=sender.address,
            organizer_name=sender.name,
            attendees=(
                invites.Attendee(
                    f"coordinator-{conference.coordinator_id}@roundtable.invalid",
                    "OSPOD Cheb – Hana Malá",
                    "CHAIR",
                    "ACCEPTED",
                ),
                *others,
                invites.Attendee(letter.address, "Host", "REQ-PARTICIPANT", ASKED),
            ),
            zone=runtime.settings.zone,
            stamp=runtime.clock.now(),
        )
        when = conference.starts_at.astimezone(runtime.settings.zone).strftime("%d. %m. %Y %H:%M")
        return invitation_mail(
            sender=sender,
            recipient=Mailbox(letter.address),
            subject=f"Pozvánka: případová konference {code}, {when}",
            text=f"Zveme vás na případovou konferenci {code} dne {when}, {conference.place}.",
            html=(
                f"<p>Zveme vás na případovou konferenci <b>{code}</b> dne {when}, "
                f"{conference.place}.</p>"
            ),
            calendar=invites.request(event),
            sent_at=runtime.clock.now(),
        )

    return render


async def work() -> None:
    """The sending process: take over what a killed predecessor had claimed, then send what is
    due until SIGTERM (ROUNDTABLE_DATABASE_URL, ROUNDTABLE_SMTP_URL, ROUNDTABLE_MAIL_FROM,
    ROUNDTABLE_MAIL_PER_SECOND, ROUNDTABLE_MAIL_CONCURRENCY)."""
    settings = load_settings()
    assert settings.smtp_url is not None and settings.mail_from is not None
    database = Database(settings.effective_database_url)
    runtime = Runtime(settings, database, SystemClock(), Cipher([Cipher.generate_key()]))
    name, mailbox = MAIL_FROM.split(" <")
    sender = SmtpSender(
        settings.smtp_url.get_secret_value(),
        settings.mail_from,
        connections=settings.mail_concurrency,
    )
    render = invitation_renderer(runtime, Mailbox(mailbox.rstrip(">"), name))
    dispatcher = MailDispatcher(
        runtime,
        {KIND: MailKind(render)},
        sender,
        concurrency=settings.mail_concurrency,
        per_second=settings.mail_per_second,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await dispatcher.take_over()
    while not stop.is_set():
        await dispatcher.run()
        wait = min(await dispatcher.next_wake(), 0.5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
    await dispatcher.close()
    await database.dispose()


@dataclass(frozen=True)
class Deployment:
    url: str
    directory: Path
    smtp_url: str
    per_second: float
    concurrency: int


async def start_worker(deployment: Deployment) -> asyncio.subprocess.Process:
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("ROUNDTABLE_")},
        "ROUNDTABLE_DATABASE_URL": deployment.url,
        "ROUNDTABLE_DATA_DIR": str(deployment.directory / "data"),
        "ROUNDTABLE_SMTP_URL": deployment.smtp_url,
        "ROUNDTABLE_MAIL_FROM": MAIL_FROM,
        "ROUNDTABLE_MAIL_PER_SECOND": str(deployment.per_second),
        "ROUNDTABLE_MAIL_CONCURRENCY": str(deployment.concurrency),
        # `bench` is not an installed package: the worker finds it in this checkout.
        "PYTHONPATH": str(REPOSITORY),
    }
    return await process.start("bench.mail", ["worker"], environment, deployment.directory)


# Watching the server.


def reached(server: MailServer) -> int:
    return len({mail.recipients for mail in server.mails})


async def watch(
    server: MailServer, worker: asyncio.subprocess.Process, span: Span, *, until: int
) -> None:
    """Poll until `until` addresses have a mail; fail if the worker exits or time runs out."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        now = time.monotonic()
        span.seen(len(server.mails), now)
        if reached(server) >= until:
            return
        if worker.returncode is not None:
            raise BenchError(f"the sending process exited with {worker.returncode}")
        if now > deadline:
            raise BenchError(f"only {reached(server)} of {until} addresses reached in time")
        await asyncio.sleep(POLL_SECONDS)


async def linger(server: MailServer, span: Span) -> None:
    """Keep polling a little: late or repeated mails still count."""
    deadline = time.monotonic() + STRAGGLER_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        span.seen(len(server.mails), time.monotonic())


@dataclass(frozen=True)
class Outcome:
    mails_per_s: float
    duplicates: int
    lost: int
    in_flight: int = 0  # at the kill


def outcome(server: MailServer, mails: int, count: int, seconds: float) -> Outcome:
    per_address = Counter(mail.recipients for mail in server.mails)
    for mail in server.mails:
        if len(mail.recipients) != 1:
            raise BenchError("a mail went to more than one address")
    return Outcome(
        mails_per_s=round(count / seconds, 2) if seconds > 0 else 0.0,
        duplicates=sum(n - 1 for n in per_address.values()),
        lost=mails - len(per_address),
    )


async def prepared(
    directory: Path, server: MailServer, mails: int, per_second: float, concurrency: int
) -> Deployment:
    url = f"sqlite+aiosqlite:///{directory / 'roundtable.sqlite3'}"
    await seed(url, now=datetime.now(UTC), mails=mails)
    return Deployment(url, directory, server.url, per_second, concurrency)


async def to_the_end(deployment: Deployment, server: MailServer, span: Span, mails: int) -> None:
    """A worker that runs until the server has all `mails` and the stragglers had their time;
    then it stops."""
    worker = await start_worker(deployment)
    try:
        await watch(server, worker, span, until=mails)
        await linger(server, span)
    finally:
        await process.stop(worker)


async def clean_run(directory: Path, mails: int, per_second: float, concurrency: int) -> Outcome:
    async with MailServer.running() as server:
        deployment = await prepared(directory, server, mails, per_second, concurrency)
        span = Span()
        await to_the_end(deployment, server, span, mails)
        progress(f"clean run: {span.count} mails in {span.seconds:.1f} s")
        return outcome(server, mails, mails, span.seconds)


async def killed_run(directory: Path, mails: int, per_second: float, concurrency: int) -> Outcome:
    """SIGKILL once half the addresses have their mail, then start again."""
    async with MailServer.running() as server:
        deployment = await prepared(directory, server, mails, per_second, concurrency)
        worker = await start_worker(deployment)
        before = Span()
        try:
            await watch(server, worker, before, until=mails // 2)
        finally:
            await process.kill(worker)
        await asyncio.sleep(0.2)  # a mail whose DATA the server was reading still lands
        before.seen(len(server.mails), time.monotonic())
        got = reached(server)
        marked = await sent_rows(deployment.url)
        progress(f"killed after {got} addresses; {marked} rows were marked sent")
        after = Span(count=before.count)
        await to_the_end(deployment, server, after, mails)
        progress(
            f"killed run: {before.count} mails in {before.seconds:.1f} s, then "
            f"{after.count - before.count} in {after.seconds:.1f} s after the restart"
        )
        # The pace while sending (duplicates included), the restart itself left out.
        result = outcome(server, mails, after.count, before.seconds + after.seconds)
        return Outcome(result.mails_per_s, result.duplicates, result.lost, got - marked)


def progress(text: str) -> None:
    print(f"mail: {text}", file=sys.stderr, flush=True)


def verdicts(clean: Outcome, killed: Outcome, concurrency: int) -> list[str]:
    """The targets that were missed, in words."""
    missed = []
    for name, run in (("clean", clean), ("killed", killed)):
        if run.mails_per_s < CHAT_PER_SECOND:
            missed.append(f"{name} run: {run.mails_per_s} mails/s < the chat's {CHAT_PER_SECOND}")
        if run.lost:
            missed.append(f"{name} run: {run.lost} lost")
    if clean.duplicates:
        missed.append(f"clean run: {clean.duplicates} duplicates")
    if not killed.duplicates <= killed.in_flight <= concurrency:
        missed.append(f"killed run: {killed.duplicates} duplicates, {killed.in_flight} in flight")
    return missed


async def run(
    directory: Path, *, mails: int, per_second: float, concurrency: int
) -> dict[str, object]:
    began = time.monotonic()
    (directory / "clean").mkdir()
    (directory / "killed").mkdir()
    clean = await clean_run(directory / "clean", mails, per_second, concurrency)
    killed = await killed_run(directory / "killed", mails, per_second, concurrency)
    progress(f"took {time.monotonic() - began:.0f} s")
    for text in verdicts(clean, killed, concurrency):
        progress(f"target missed: {text}")
    return {
        "bench": "mail",
        "mails": mails,
        "per_second_setting": per_second,
        "concurrency": concurrency,
        "mails_per_s": clean.mails_per_s,
        "duplicates": clean.duplicates,
        "lost": clean.lost,
        "killed_mails_per_s": killed.mails_per_s,
        "killed_duplicates": killed.duplicates,
        "killed_lost": killed.lost,
        "killed_in_flight": killed.in_flight,
    }


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench mail")
    parser.add_argument("--mails", type=int, default=MAILS)
    parser.add_argument("--per-second", type=float, default=PER_SECOND)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    options = parser.parse_args(arguments)
    with tempfile.TemporaryDirectory(prefix="roundtable-mail-") as temporary:
        directory = Path(temporary)
        try:
            figures = asyncio.run(
                run(
                    directory,
                    mails=options.mails,
                    per_second=options.per_second,
                    concurrency=options.concurrency,
                )
            )
        except BenchError as error:
            progress(str(error))
            for run_directory in (directory / "clean", directory / "killed"):
                progress(f"the end of {run_directory.name}/{process.LOG}:")
                print(process.tail(run_directory), file=sys.stderr)
            return 1
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        asyncio.run(work())
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
