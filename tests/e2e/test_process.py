"""The `roundtable` command as an operator runs it: invite from the shell, SIGKILL and restart."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bench import process
from bot.core.clock import FakeClock
from bot.core.db import Database
from bot.core.models import Member, Referral, ReferralStatus
from bot.sandbox import BotApiSandbox, Person
from tests.conftest import TEST_KEY
from tests.e2e.conftest import TOKEN, confirm_confidentiality, in_turn
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_joining import TURNED_AWAY
from tests.e2e.test_webhook import SECRET, free_port

# Killed while handling an update, by long polling and by webhook: Telegram keeps the update.
BOTH_DELIVERIES = pytest.mark.parametrize("delivery", ["polling", "webhook"], indirect=True)

Start = Callable[[], Coroutine[Any, Any, asyncio.subprocess.Process]]


@pytest.fixture
def delivery(request: pytest.FixtureRequest) -> str:
    """How updates reach the bot: "polling" unless a test is parametrized with "webhook"."""
    return str(getattr(request, "param", "polling"))


@pytest.fixture
def stand_in_clock() -> Callable[[], float]:
    """Real time, the clock of the `roundtable` processes these tests start (`bot_environment`
    refuses a stand-in on the tests' fake clock)."""
    return time.time


@pytest.fixture
def environment(
    database_url: str, sandbox: BotApiSandbox, tmp_path: Path, delivery: str
) -> dict[str, str]:
    webhook = {}
    if delivery == "webhook":
        port = free_port()
        webhook = {
            "webhook_url": f"http://127.0.0.1:{port}/telegram",
            "webhook_secret": SECRET,
            "webhook_port": port,
        }
    return process.bot_environment(
        sandbox, url=database_url, directory=tmp_path, key=TEST_KEY.decode(), **webhook
    )


def test_a_real_process_is_never_given_a_stand_in_on_the_fake_clock(
    clock: FakeClock, tmp_path: Path
) -> None:
    """The guard against tests that pass only until the real date passes the fake one."""
    on_fake_time = BotApiSandbox(token=TOKEN, clock=clock.timestamp)
    with pytest.raises(ValueError, match="real time"):
        process.bot_environment(on_fake_time, url="sqlite://", directory=tmp_path, key="k")


async def _run(environment: dict[str, str], *args: str) -> tuple[int | None, str, str]:
    """`roundtable ARGS...` in its own process: its exit code, what it printed and its errors."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        env=environment,
        cwd=tempfile.gettempdir(),  # not the repository: no developer's .env is read
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, out.decode(), err.decode()


async def _command(environment: dict[str, str], *args: str) -> str:
    code, out, err = await _run(environment, *args)
    assert code == 0, err
    assert err == ""  # a command that worked says nothing more (no library's log lines)
    return out


async def _invite(
    environment: dict[str, str], institution: str, kind: str, role: str, *more: str
) -> str:
    """`roundtable invite` for a new member of the institution; what it printed."""
    return await _command(
        environment, "invite", "--institution", institution, "--kind", kind, "--role", role, *more
    )


@pytest.fixture
async def start_bot(environment: dict[str, str]) -> AsyncIterator[Start]:
    processes: list[asyncio.subprocess.Process] = []

    async def start() -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            env=environment,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        processes.append(process)
        return process

    yield start
    for started in processes:
        if started.returncode is None:
            started.send_signal(signal.SIGTERM)
            await asyncio.wait_for(started.wait(), timeout=30)


async def test_a_half_finished_language_choice_survives_sigkill_and_a_code_works_once(
    sandbox: BotApiSandbox, environment: dict[str, str], start_bot: Start, database: Database
) -> None:
    printed = json.loads(await _invite(environment, "ZŠ Hradební", "school", "referrer", "--json"))
    assert set(printed) == {"code", "link", "expires_at"}
    assert printed["link"] == f"https://t.me/roundtable_sandbox_bot?start={printed['code']}"

    bot = await start_bot()
    stranger = sandbox.person(900, "Eve", language_code="en")
    await stranger.send_text("hello")
    assert (await stranger.next_message(timeout=60)).text == TURNED_AWAY

    teacher = sandbox.person(101, "Jana", language_code="en")
    await teacher.send_text(f"/start {printed['code']}")
    assert "Which language shall I use?" in ((await teacher.next_message()).text or "")
    await teacher.send_text("hmm")  # handled only after the /start state was saved
    assert (
        await teacher.next_message()
    ).text == "Please choose a language with one of the buttons."
    # Killed between two updates: "hmm" is done with (the bot confirmed it to Telegram).
    assert teacher.last_update_id is not None
    await sandbox.wait_until_acknowledged(teacher.last_update_id)

    bot.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(bot.wait(), timeout=30) == -signal.SIGKILL
    await teacher.send_text("still here")
    await start_bot()
    assert (await teacher.next_message(timeout=60)).text == (
        "Please choose a language with one of the buttons."
    )
    await teacher.press("English")
    assert ((await teacher.next_message()).text or "").startswith("I will write to you in English.")
    await confirm_confidentiality(teacher)

    second = sandbox.person(102, "Karel", language_code="en")
    await second.send_text(f"/start {printed['code']}")
    assert (await second.next_message()).text == (
        "This invite link has already been used. Each link works only once."
    )
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Member)) == 1

    listed = json.loads(await _command(environment, "members", "list", "--json"))
    assert [(entry["display_name"], entry["role"], entry["active"]) for entry in listed] == [
        ("Jana", "referrer", True)
    ]
    assert "Deactivated" in await _command(
        environment, "members", "deactivate", str(listed[0]["member_id"])
    )
    await teacher.send_text("/help")
    assert (await teacher.next_message()).text == TURNED_AWAY


async def test_the_operator_sets_the_conference_place_and_working_hours(
    environment: dict[str, str],
) -> None:
    await _invite(environment, "ZŠ Hradební", "school", "referrer", "--district", "Cheb")
    shown = await _command(
        environment,
        "district",
        "--place",
        "MěÚ Cheb, zasedačka 2",
        "--hours",
        "07:30-15:30",
        "--mailbox",
        "konference@cheb.example.cz",
    )
    assert shown.splitlines() == [
        "Cheb: conferences at MěÚ Cheb, zasedačka 2",
        "working hours 07:30-15:30",
        "invitations from konference@cheb.example.cz",
    ]
    shown = await _command(
        environment, "district", "--institution", "ZŠ Hradební", "--hours", "12:00-15:00"
    )
    assert shown.splitlines()[-1] == "  ZŠ Hradební: 12:00-15:00"
    code, _out, err = await _run(environment, "district", "--mailbox", "not an address")
    assert code == 2
    assert err == "roundtable: 'not an address' is not an e-mail address\n"
    shown = await _command(environment, "district", "--institution", "ZŠ Hradební", "--reset")
    assert "ZŠ Hradební" not in shown
    code, _out, err = await _run(environment, "district", "--hours", "16:00-08:00")
    assert code == 2
    assert err == "roundtable: working hours must end after they start\n"


async def _join(
    environment: dict[str, str], person: Person, institution: str, kind: str, role: str
) -> None:
    printed = json.loads(await _invite(environment, institution, kind, role, "--json"))
    await person.send_text(f"/start {printed['code']}")
    await person.next_message(timeout=60)
    await person.press("English")
    await person.next_message()
    await confirm_confidentiality(person)


async def _referral_begun(
    sandbox: BotApiSandbox, environment: dict[str, str]
) -> tuple[Person, Person]:
    """A coordinator and a teacher join; the teacher starts a referral (no danger now)."""
    coordinator = sandbox.person(201, "Hana", language_code="en")
    teacher = sandbox.person(202, "Jana", language_code="en")
    await _join(environment, coordinator, "OSPOD Cheb", "ospod", "coordinator")
    await _join(environment, teacher, "ZŠ Hradební", "school", "referrer")
    await in_turn(teacher, "/refer", "[No]")
    return coordinator, teacher


async def test_a_referral_dialog_killed_in_the_middle_resumes_where_it_was(
    sandbox: BotApiSandbox, environment: dict[str, str], start_bot: Start, database: Database
) -> None:
    bot = await start_bot()
    coordinator, teacher = await _referral_begun(sandbox, environment)
    assert "Which class" in await in_turn(teacher, "Kryštof Dvořák", "2015")
    # Killed between updates: killed after its answer but before it is done with, "2015" would
    # come again and, its answer not known to have gone out, be answered again.
    await sandbox.wait_until_acknowledged(teacher.last_update_id, timeout=30)

    bot.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(bot.wait(), timeout=30) == -signal.SIGKILL
    await teacher.send_text("5.B")  # typed while the bot is down
    await start_bot()
    assert "What is going on?" in ((await teacher.next_message(timeout=60)).text or "")
    summary = await in_turn(
        teacher,
        *("[truancy]", "[Done]", "He misses Mondays.", "[Skip]", "[Informed, they agree]"),
        "[Routine]",
    )
    assert "Child: Kryštof Dvořák, born 2015" in summary and "Class: 5.B, ZŠ Hradební" in summary
    await teacher.press("Send")
    sent = (await teacher.next_message()).text or ""
    assert "Your referral code is R-" in sent and "I deleted your 4 messages" in sent
    assert ((await coordinator.next_message()).text or "").startswith("New referral R-")
    async with database.transaction() as session:
        referral = await session.scalar(select(Referral))
    assert referral is not None and referral.status is ReferralStatus.SUBMITTED


async def _killed(bot: asyncio.subprocess.Process) -> None:
    bot.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(bot.wait(), timeout=30) == -signal.SIGKILL


@BOTH_DELIVERIES
async def test_an_update_in_hand_when_the_bot_is_killed_is_answered_after_the_restart(
    sandbox: BotApiSandbox, environment: dict[str, str], start_bot: Start
) -> None:
    """Telegram hears that an update was handled only once it has been (getUpdates' offset, or
    the webhook POST's 200): one the process was still answering when it died comes again and
    is answered, once."""
    printed = json.loads(await _invite(environment, "ZŠ Hradební", "school", "referrer", "--json"))
    bot = await start_bot()
    teacher = sandbox.person(101, "Jana", language_code="en")
    await teacher.send_text(f"/start {printed['code']}")
    assert "Which language shall I use?" in ((await teacher.next_message(timeout=60)).text or "")
    sandbox.hold_next("sendMessage")
    await teacher.send_text("hmm")
    hmm = teacher.last_update_id
    assert hmm is not None
    assert await sandbox.wait_for_calls(lambda: sandbox.held == 1, timeout=30)  # answering it
    await _killed(bot)
    assert sandbox.journal[hmm].acknowledged_at is None  # Telegram still has it

    await start_bot()
    assert (await teacher.next_message(timeout=60)).text == (
        "Please choose a language with one of the buttons."
    )
    await sandbox.wait_until_acknowledged(hmm)
    answers = [event.message.text for event in teacher.events if event.message]
    assert answers.count("Please choose a language with one of the buttons.") == 1


@BOTH_DELIVERIES
async def test_an_update_handled_but_not_yet_confirmed_is_not_handled_twice(
    sandbox: BotApiSandbox, environment: dict[str, str], start_bot: Start, database: Database
) -> None:
    """The description is stored and the process dies while answering it: Telegram delivers it
    again after the restart, and it must not also become "what the school tried"; its answer
    never went out, so the teacher is shown where the referral is now."""
    bot = await start_bot()
    _coordinator, teacher = await _referral_begun(sandbox, environment)
    assert "Describe what is going on" in await in_turn(
        teacher, "Kryštof Dvořák", "2015", "5.B", "[truancy]", "[Done]"
    )

    sandbox.hold_next("sendMessage")
    await teacher.send_text("He misses Mondays.")
    description = teacher.last_update_id
    assert description is not None
    assert await sandbox.wait_for_calls(lambda: sandbox.held == 1, timeout=30)
    await _killed(bot)
    assert sandbox.journal[description].acknowledged_at is None

    await start_bot()
    # Not done again, and not left unanswered: told it was saved, and the question it is at.
    shown = (await teacher.next_message(timeout=60)).text or ""
    assert shown.startswith("Your last step was saved, but my answer to it got lost")
    assert "What has the school already tried?" in shown
    await sandbox.wait_until_acknowledged(description, timeout=60)
    summary = await in_turn(teacher, "[Skip]", "[Informed, they agree]", "[Routine]")
    assert "What is going on:\nHe misses Mondays.\nAlready tried: –" in summary
    async with database.transaction() as session:
        steps = list(await session.scalars(select(Referral.step)))
    assert steps == ["summary"]
