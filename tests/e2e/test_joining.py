"""Joining: strangers are turned away; an invited person joins once, picks a language."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from bot.core.clock import FakeClock
from bot.core.models import AuditEntry, Member, Role
from bot.sandbox import BotApiSandbox
from tests.e2e.conftest import RunningBot

TURNED_AWAY = (
    "This bot is only for members of the case conference team. "
    "Please ask your coordinator for a personal invite link."
)
TURNED_AWAY_CS = (
    "Tento bot slouží jen týmu případových konferencí. "
    "Požádejte prosím o osobní odkaz s pozvánkou toho, kdo vás do týmu zve."
)


async def _members(bot: RunningBot) -> int:
    async with bot.runtime.database.transaction() as session:
        return await session.scalar(select(func.count()).select_from(Member)) or 0


async def test_a_stranger_gets_one_polite_answer_to_anything_and_nothing_else(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    stranger = sandbox.person(900, "Eve", language_code="en")
    for text in ("hello", "/start", "/members", "/invite"):
        await stranger.send_text(text)
        assert (await stranger.next_message()).text == TURNED_AWAY
    answer = await stranger.press_data(
        "mem:do:1", message_id=stranger.last_bot_message().message_id
    )
    assert answer.text == TURNED_AWAY
    await stranger.send_document("calendar.ics", b"BEGIN:VCALENDAR", "text/calendar")
    assert (await stranger.next_message()).text == TURNED_AWAY
    sent = [event for event in stranger.events if event.kind != "user"]
    assert len(sent) == 5
    assert await _members(bot) == 0


async def test_strangers_are_answered_in_their_client_language(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    czech = sandbox.person(901, "Petr", language_code="cs")
    await czech.send_text("dobrý den")
    assert "pozvánk" in ((await czech.next_message()).text or "")
    ukrainian = sandbox.person(902, "Олена", language_code="uk")
    await ukrainian.send_text("добрий день")
    assert "запрошення" in ((await ukrainian.next_message()).text or "")


async def test_an_invited_teacher_joins_picks_english_and_is_told_what_she_can_do(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    code = await bot.invite_code(Role.REFERRER)
    teacher = sandbox.person(101, "Jana", last_name="Malá", language_code="cs")
    await teacher.send_text(f"/start {code}")
    welcome = await teacher.next_message()
    assert welcome.text is not None and welcome.text.startswith(
        "Vítejte v Round Table! Jméno: Jana Malá"
    )
    assert "ZŠ Hradební" in welcome.text
    assert [label for row in welcome.buttons() for label, _ in row] == [
        "Čeština",
        "English",
        "Українська",
    ]
    await teacher.press("English")
    greeting = await teacher.next_message()
    assert greeting.text is not None
    assert greeting.text.startswith("I will write to you in English.")
    assert "As a referrer you report a concern about a child" in greeting.text
    assert "/help" in greeting.text and "/invite" not in greeting.text
    menu = sandbox.my_commands(scope={"type": "chat", "chat_id": teacher.chat_id})
    assert [command["command"] for command in menu] == [
        "refer",
        "myreferrals",
        "tasks",
        "email",
        "help",
        "language",
    ]
    assert menu[0]["description"] == "Report a concern about a child"
    assert greeting.buttons() == [[("Report a concern", "ref:new")]]
    async with bot.runtime.database.transaction() as session:
        member = await session.scalar(select(Member))
        joined = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "member.joined")
        )
    assert member is not None and member.locale == "en" and member.role is Role.REFERRER
    assert member.display_name == "Jana Malá"
    assert joined is not None and joined.actor_id == member.id


async def test_a_used_code_is_refused_to_a_second_person(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    code = await bot.invite_code(Role.PARTICIPANT)
    first = sandbox.person(101, "Jana", language_code="en")
    await first.send_text(f"/start {code}")
    await first.next_message()
    second = sandbox.person(102, "Karel", language_code="en")
    await second.send_text(f"/start {code}")
    assert (await second.next_message()).text == (
        "This invite link has already been used. Each link works only once."
    )
    await second.send_text("hello")
    assert (await second.next_message()).text == TURNED_AWAY
    assert await _members(bot) == 1


async def test_an_expired_code_is_refused(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    code = await bot.invite_code(Role.PARTICIPANT)
    clock.advance(bot.runtime.settings.invite_ttl + timedelta(minutes=1))
    late = sandbox.person(101, "Jana", language_code="en")
    await late.send_text(f"/start {code}")
    assert (await late.next_message()).text == (
        "This invite link has expired. Please ask your coordinator for a new one."
    )
    assert await _members(bot) == 0


async def test_repeated_wrong_codes_are_throttled(bot: RunningBot, sandbox: BotApiSandbox) -> None:
    code = await bot.invite_code(Role.PARTICIPANT)
    guesser = sandbox.person(666, "Mallory", language_code="en")
    for attempt in range(5):
        await guesser.send_text(f"/start guess{attempt}")
        assert (await guesser.next_message()).text == (
            "This invite link is not valid. Please check it or ask your coordinator."
        )
    await guesser.send_text(f"/start {code}")
    assert (await guesser.next_message()).text == (
        "Too many attempts with wrong codes. Please try again in 60 minutes."
    )
    assert await _members(bot) == 0


async def test_text_while_choosing_a_language_gets_a_reminder(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    code = await bot.invite_code(Role.PARTICIPANT)
    person = sandbox.person(101, "Olena", language_code="uk")
    await person.send_text(f"/start {code}")
    await person.next_message()
    await person.send_text("Українська")
    reminder = await person.next_message()
    assert reminder.text == "Будь ласка, оберіть мову однією з кнопок."
    await person.press("Українська")
    greeting = await person.next_message()
    assert (greeting.text or "").startswith("Я писатиму вам українською.")


async def test_members_change_language_and_get_help(bot: RunningBot) -> None:
    admin = await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb")
    await admin.send_text("/help")
    help_text = (await admin.next_message()).text or ""
    assert "/invite – Create a one-time invite link" in help_text
    assert "/members – List and deactivate members" in help_text
    await admin.send_text("/language")
    await admin.next_message()
    await admin.press("Čeština")
    assert ((await admin.next_message()).text or "").startswith("Budeme vám psát česky.")
    menu = bot.sandbox.my_commands(scope={"type": "chat", "chat_id": admin.chat_id})
    assert [command["command"] for command in menu] == [
        "invite",
        "members",
        "contacts",
        "email",
        "help",
        "language",
    ]
    assert menu[0]["description"] == "Vytvořit jednorázový odkaz s pozvánkou"


async def test_an_old_button_is_answered_quietly(bot: RunningBot) -> None:
    admin = await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb")
    answer = await admin.press_data("inv:r:referrer")
    assert answer.text == "This button is no longer active."
    await admin.send_text("what now?")
    assert (await admin.next_message()).text == (
        "I did not understand that. /help shows what you can do here."
    )


async def test_strangers_see_a_join_menu_in_their_language(bot: RunningBot) -> None:
    await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb")  # the bot is up
    assert bot.sandbox.my_commands(language_code="") == [
        {"command": "start", "description": "Připojit se pomocí odkazu s pozvánkou"}
    ]
    assert bot.sandbox.my_commands(language_code="en") == [
        {"command": "start", "description": "Join with your invite link"}
    ]


async def test_thirty_people_joining_at_once_are_all_registered(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    people = [sandbox.person(1000 + i, f"Person {i}", language_code="en") for i in range(30)]
    codes = [await bot.invite_code(Role.PARTICIPANT) for _ in people]
    await asyncio.gather(*(p.send_text(f"/start {c}") for p, c in zip(people, codes, strict=True)))
    for person in people:
        assert ((await person.next_message()).text or "").startswith("Welcome to Round Table")
    assert await _members(bot) == 30
