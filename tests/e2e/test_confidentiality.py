"""Confidentiality (issue 23): a participant confirms with one tap, right after joining, that
what they hear about a case is confidential; until then nothing of a case reaches them (the
poll is not sent, the poll's nudge is held, a command answers with the prompt, which comes once),
and once they confirm, what waited arrives. The confirmation is audited with the text's version;
a new version asks again; a guardian gets the guardians' wording; a double tap is harmless."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.models import (
    AuditEntry,
    Conference,
    ConfidentialityConfirmation,
    InstitutionKind,
    Member,
    OutboxRow,
    OutboxStatus,
    Role,
)
from bot.sandbox import BotApiSandbox, Person
from bot.sandbox.models import BotMessage
from bot.services import confidentiality, polls
from tests.e2e.conftest import RunningBot
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import open_case, plan_shown, until
from tests.e2e.test_poll_flow import poll_sent

PROMPT = "What you hear and read here about a case"
CONFIRM = "✅ I confirm confidentiality"


def prompts(person: Person) -> list[BotMessage]:
    """The bot's messages in the chat that carry the confidentiality button, as they are now."""
    return [
        message
        for message in person.messages.values()
        if message.from_bot and any(d and d.startswith("cn:") for _l, d in _buttons(message))
    ]


def _buttons(message: BotMessage) -> list[tuple[str, str | None]]:
    return [button for row in message.buttons() for button in row]


def polls_of(person: Person) -> list[BotMessage]:
    return [
        message
        for message in person.messages.values()
        if message.from_bot and any(d and d.startswith("pv:") for _l, d in _buttons(message))
    ]


async def joins_without_confirming(
    bot: RunningBot, sandbox: BotApiSandbox
) -> tuple[Person, BotMessage]:
    """Petr of the police joins and chooses English; the prompt follows. He does not tap."""
    code = await bot.invite_code(Role.PARTICIPANT, "Policie Cheb", InstitutionKind.POLICE)
    petr = sandbox.person(3, "Petr", language_code="cs")
    await petr.send_text(f"/start {code}")
    await petr.next_message()
    await petr.press("English")
    home = await petr.next_message()
    assert "As a participant you answer date polls" in (home.text or "")
    return petr, await petr.next_message()


async def confirmations(bot: RunningBot) -> list[tuple[str, int, dict[str, object]]]:
    async with bot.runtime.database.transaction() as session:
        entries = await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == confidentiality.ACTION)
            .order_by(AuditEntry.id)
        )
        names = {member.id: member.display_name for member in await session.scalars(select(Member))}
        return [
            (names[entry.actor_id or 0], int(entry.subject_id or 0), dict(entry.details))
            for entry in entries
        ]


async def test_a_participant_who_has_not_confirmed_sees_nothing_of_the_case_until_he_does(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    hana = await bot.join(
        1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    jana = await bot.join(2, "Jana", Role.REFERRER)
    petr, prompt = await joins_without_confirming(bot, sandbox)
    assert PROMPT in (prompt.text or "")
    assert "Until then we show you nothing of any case." in (prompt.text or "")
    assert prompt.buttons() == [[(CONFIRM, "cn:1")]]

    # A command that would show something of a case answers with the prompt, and only that.
    await petr.send_text("/tasks")
    again = await petr.next_message()
    assert PROMPT in (again.text or "") and again.buttons() == prompt.buttons()

    # The poll starts: the school gets it, the police officer who has not confirmed does not.
    await poll_sent(bot, hana)
    await until(jana, "Case conference PK-2026-0001")
    # A working day before the deadline the silent are nudged: his nudge is held, and he is not
    # asked a third time (the prompt goes once; the /tasks answer was a reply).
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
        nudge_at = conference.nudge_at
    assert nudge_at is not None
    clock.set(nudge_at)
    await bot.sweep()
    await until(jana, "Reminder: your answer is still missing")
    await bot.settle()
    assert polls_of(petr) == []
    assert len(prompts(petr)) == 2
    async with bot.runtime.database.transaction() as session:
        held = (
            await session.execute(
                select(OutboxRow.kind, OutboxRow.status, OutboxRow.outcome).where(
                    OutboxRow.chat_id == petr.chat_id
                )
            )
        ).all()
    assert (polls.POLL_NUDGE, OutboxStatus.SKIPPED, outbox.HELD) in held
    assert [kind for kind, _s, _o in held].count(confidentiality.PROMPT) == 1

    # One tap: confirmed, and what waited arrives (the poll, and its nudge).
    await petr.press(CONFIRM, message_id=prompt.message_id)
    thanks = await petr.next_message()
    assert thanks.text == (
        "✅ Thank you, confirmed. Whatever of a case was waiting for you comes now."
    )
    poll = await until(petr, "Case conference PK-2026-0001")
    assert any(d and d.startswith("pv:") for _l, d in _buttons(poll))
    await bot.settle()
    async with bot.runtime.database.transaction() as session:
        nudge = await session.scalar(
            select(OutboxRow.status).where(
                OutboxRow.chat_id == petr.chat_id, OutboxRow.kind == polls.POLL_NUDGE
            )
        )
    assert nudge is OutboxStatus.SENT
    # The audit entry carries the version (and Hana's and Jana's taps at joining are there).
    assert [(name, details) for name, _id, details in await confirmations(bot)] == [
        ("Hana", {"version": 1, "wording": "member"}),
        ("Jana", {"version": 1, "wording": "member"}),
        ("Petr", {"version": 1, "wording": "member"}),
    ]

    # A second tap (on the other prompt, the /tasks answer) changes nothing.
    answer = await petr.press(CONFIRM, message_id=again.message_id)
    assert answer.text == "You have already confirmed it. Thank you."
    assert len(await confirmations(bot)) == 3
    async with bot.runtime.database.transaction() as session:
        stored = (await session.scalars(select(ConfidentialityConfirmation))).all()
    assert len(stored) == 3
    # And now /tasks shows his tasks.
    await petr.send_text("/tasks")
    await until(petr, "You have no open tasks.")


async def test_a_new_version_of_the_text_asks_again(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    hana = await bot.join(
        1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    await hana.send_text("/cases")
    assert (await hana.next_message()).text == "There are no open cases."

    monkeypatch.setattr(confidentiality, "VERSION", 2)
    await hana.send_text("/cases")
    prompt = await hana.next_message()
    assert PROMPT in (prompt.text or "")
    assert prompt.buttons() == [[(CONFIRM, "cn:2")]]
    # The button of the old version (on the message that asked at joining) confirms nothing:
    # that message shows the current text to confirm instead.
    (joined,) = [m for m in hana.messages.values() if (m.text or "").startswith("✅ Thank you")]
    await hana.press_data("cn:1", message_id=joined.message_id)
    shown = await hana.next_message()
    assert PROMPT in (shown.text or "") and shown.buttons() == [[(CONFIRM, "cn:2")]]
    await hana.press(CONFIRM, message_id=shown.message_id)
    await hana.next_message()
    assert [details["version"] for _n, _i, details in await confirmations(bot)] == [1, 2]
    await hana.send_text("/cases")
    assert (await hana.next_message()).text == "There are no open cases."


async def test_a_guardian_gets_the_guardians_wording_and_then_the_poll(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    hana = await bot.join(
        1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    await bot.join(2, "Jana", Role.REFERRER)
    await open_case(bot, "Hana", "Jana", ["truancy"])
    await plan_shown(hana)
    await hana.press("+ Guardian, link")
    await until(hana, "Guardians: 1 by a one-time link")
    await hana.press("Send the poll")
    link_message = await until(hana, "Guardian 1: send them this one-time link")
    link = re.search(r"start=(\S+)", link_message.text or "")
    assert link is not None

    guardian = sandbox.person(50, "Milena", language_code="cs")
    await guardian.send_text(f"/start {link.group(1)}")
    await until(guardian, "Round Table")
    await guardian.press("English")
    await guardian.next_message()
    prompt = await guardian.next_message()
    assert (prompt.text or "").startswith("🔒 What is said at the meeting stays there")
    assert "Please keep it to yourself" in (prompt.text or "")
    assert PROMPT not in (prompt.text or "")
    assert prompt.buttons() == [[("✅ I agree", "cn:1")]]
    assert polls_of(guardian) == []
    await guardian.press("✅ I agree")
    await guardian.next_message()
    poll = await until(guardian, "When can you come?")
    assert any(d and d.startswith("pv:") for _l, d in _buttons(poll))
    assert (await confirmations(bot))[-1][2] == {"version": 1, "wording": "guardian"}
