"""The real Round Table application over real HTTP against the Bot API stand-in, and the steps
a person takes in it (an answer, then the bot's reply)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from bench import world
from bot.app import RoundTableApp, build_application, serve
from bot.core.clock import FakeClock
from bot.core.config import Settings, isolated_settings
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import InstitutionKind, Role
from bot.core.runtime import Runtime
from bot.sandbox import BotApiSandbox, FloodLimits, Person
from bot.sandbox.models import BotMessage
from bot.services import members
from bot.transport.telegram import delivery

TOKEN = "7000000001:SANDBOX-token-for-tests"


@pytest.fixture
def flood_limits() -> FloodLimits:
    """Telegram's limits; a test module may override this fixture."""
    return FloodLimits()


@pytest.fixture
def rtt_ms() -> float:
    """Telegram's network delay for every Bot API answer: none by default, or
    ROUNDTABLE_TEST_RTT_MS (the whole suite passes with 30); a test module may override it."""
    return float(os.environ.get("ROUNDTABLE_TEST_RTT_MS", "0"))


@pytest.fixture
def imap_url() -> str | None:
    """The organizer's mailbox a bot with mail reads (tests/e2e/mail_world.py): none, unless a
    module overrides this with a real Dovecot's."""
    return None


@pytest.fixture
def stand_in_clock(clock: FakeClock) -> Callable[[], float]:
    """The clock that dates the stand-in's messages: the tests' fake one; a module whose tests
    start real `roundtable` processes overrides it with the real one (see test_process)."""
    return clock.timestamp


@pytest.fixture
async def sandbox(
    stand_in_clock: Callable[[], float], flood_limits: FloodLimits, rtt_ms: float
) -> AsyncIterator[BotApiSandbox]:
    server = BotApiSandbox(token=TOKEN, clock=stand_in_clock, flood=flood_limits, rtt_ms=rtt_ms)
    await server.start()
    yield server
    await server.stop()
    assert server.unimplemented == [], "the bot called Bot API methods the stand-in lacks"


def bot_settings(
    database_url: str, sandbox: BotApiSandbox, tmp_path: Path, **more: object
) -> Settings:
    """The settings of a bot talking to the stand-in, its data in the test's folder; `more`
    adds settings (mail, ...)."""
    return isolated_settings(
        token=SecretStr(TOKEN),
        database_url=database_url,
        bot_api_url=sandbox.base_url,
        bot_file_url=sandbox.base_file_url,
        data_dir=tmp_path / "data",
        sweep_seconds=3600,  # tests run the sweep themselves after moving the clock
        **more,
    )


@pytest.fixture
def settings(database_url: str, sandbox: BotApiSandbox, tmp_path: Path) -> Settings:
    return bot_settings(database_url, sandbox, tmp_path)


@pytest.fixture
def runtime(settings: Settings, database: Database, clock: FakeClock, cipher: Cipher) -> Runtime:
    return Runtime(settings=settings, database=database, clock=clock, cipher=cipher)


@dataclass
class RunningBot:
    application: RoundTableApp
    runtime: Runtime
    sandbox: BotApiSandbox

    async def sweep(self) -> None:
        """Run the reminder sweep now, as its repeating job does, and wait for it."""
        jobs = self.application.job_queue.get_jobs_by_name("sweep")  # type: ignore[union-attr]
        assert len(jobs) == 1
        await jobs[0].run(self.application)
        await self.settle()

    async def settle(self) -> None:
        """Wait until the outbox has finished what it is sending (and noted where it went)."""
        await self.application.bot_data[delivery.DISPATCHER_KEY].settle()

    async def invite_code(
        self,
        role: Role,
        institution: str = "ZŠ Hradební",
        kind: InstitutionKind = InstitutionKind.SCHOOL,
        district: str | None = None,
    ) -> str:
        """A code as `roundtable invite` would print it."""
        now = self.runtime.clock.now()
        async with self.runtime.database.transaction() as session:
            found = await members.ensure_district(session, district, now=now)
            place = await members.ensure_institution(session, found, institution, kind, now=now)
            invite = await members.create_invite(
                session,
                institution_id=place.id,
                role=role,
                creator=None,
                now=now,
                ttl=self.runtime.settings.invite_ttl,
            )
        return invite.code

    async def join(
        self,
        user_id: int,
        name: str,
        role: Role,
        *,
        institution: str = "ZŠ Hradební",
        kind: InstitutionKind = InstitutionKind.SCHOOL,
        language: str = "English",
    ) -> Person:
        """A person joins with a fresh code, picks a language and confirms confidentiality, as
        on their phone."""
        person = self.sandbox.person(user_id, name, language_code="cs")
        await person.send_text(f"/start {await self.invite_code(role, institution, kind)}")
        welcome = await person.next_message()
        assert "Round Table" in (welcome.text or "")
        await person.press(language)
        await person.next_message()
        await confirm_confidentiality(person)
        return person

    async def joined(
        self, names: dict[int, str], role: Role, institution: str = "ZŠ Hradební"
    ) -> list[Person]:
        """People (user id: name) who have joined a school, as joining leaves them (English,
        confidentiality confirmed), written straight in, each with a chat in the stand-in. For
        tests about many people at once: dozens joining through the chat at machine speed
        outrun Telegram's 30 messages a second, and a confidentiality prompt the outbox was
        answered 429 for would wait for the fake clock."""
        now = self.runtime.clock.now()
        async with self.runtime.database.transaction() as session:
            district = await members.ensure_district(session, None, now=now)
            school = await members.ensure_institution(
                session, district, institution, InstitutionKind.SCHOOL, now=now
            )
            rows = [
                world.member_values(user, name, school.id, role, locale="en", now=now)
                for user, name in names.items()
            ]
            await world.insert_members(session, rows)
        return [self.sandbox.person(user, name) for user, name in names.items()]


async def confirm_confidentiality(person: Person) -> BotMessage:
    """The confidentiality prompt that follows joining (the next message with its button), and
    the one tap on it; returns the answer, which replaces the prompt."""
    while True:
        prompt = await person.next_message()
        data = [data for row in prompt.buttons() for _label, data in row]
        if data and data[0] and data[0].startswith("cn:"):
            break
    await person.press_data(data[0], message_id=prompt.message_id)
    return await person.next_message()


@pytest.fixture
async def bot(runtime: Runtime, sandbox: BotApiSandbox) -> AsyncIterator[RunningBot]:
    application = build_application(runtime)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(application, stop))
    # Serving before the test begins: a test that plans rows and runs outbox workers of its own
    # must not race the start (which takes over, and so releases, every other worker's claims).
    async with asyncio.timeout(30):
        while not application.running:
            if task.done():
                task.result()  # why it did not start
                raise AssertionError("the bot stopped before it served")
            await asyncio.sleep(0.01)
    yield RunningBot(application, runtime, sandbox)
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def text_of(person: Person) -> str:
    """The text of the next message the person gets."""
    return (await person.next_message()).text or ""


async def in_turn(person: Person, *answers: str) -> str:
    """Each answer in turn, waiting for the bot's reply: "[label]" presses a button, anything
    else is typed. Returns the last reply."""
    reply = ""
    for answer in answers:
        if answer.startswith("[") and answer.endswith("]"):
            await person.press(answer[1:-1])
        else:
            await person.send_text(answer)
        reply = await text_of(person)
    return reply
