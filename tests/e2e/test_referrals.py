"""Referrals end to end: a teacher reports from her phone, the coordinators triage it."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, text

from bot.core.clock import FakeClock
from bot.core.models import (
    AuditEntry,
    Base,
    Case,
    InstitutionKind,
    Member,
    OutboxRow,
    OutboxStatus,
    Referral,
    ReferralStatus,
    Role,
)
from bot.sandbox import BotApiSandbox, BotMessage, Person
from bot.services import retention
from bot.services.privacy import Operator
from bot.services.referrals import ALERT, DECLINED, QUESTION
from bot.transport.telegram import delivery
from handlers import referral as referral_dialog
from tests.e2e.conftest import RunningBot, in_turn, text_of
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed

CHILD = "Kryštof Dvořák"


DESCRIPTION = "Since October he misses Mondays and says older boys take his money."
CODE = re.compile(r"R-2026-\d{4}")


async def protected(person: Person) -> BotMessage:
    """The person's next message, which must be protected from forwarding and saving."""
    message = await person.next_message()
    assert message.protect_content
    return message


async def team(bot: RunningBot) -> tuple[Person, Person]:
    coordinator = await bot.join(
        1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    teacher = await bot.join(2, "Jana", Role.REFERRER)
    return coordinator, teacher


async def next_sent(person: Person) -> str:
    """The next new message, past edits (such as decision buttons taken off the details)."""
    while True:
        event = await person.next_event()
        if event.kind == "sent" and event.message is not None:
            return event.message.text or ""


async def fill_in(teacher: Person, *, danger: str = "No") -> int:
    """`/refer` and the whole dialog with the defaults; returns the taps and messages it took
    after `/refer`."""
    await teacher.send_text("/refer")
    actions = 0

    async def tap(label: str) -> str:
        nonlocal actions
        actions += 1
        await teacher.press(label)
        return await text_of(teacher)

    async def type_(text: str) -> str:
        nonlocal actions
        actions += 1
        await teacher.send_text(text)
        return await text_of(teacher)

    assert "Is the child in danger right now?" in await text_of(teacher)
    assert "What is the child's name?" in await tap(danger)
    assert "In which year was the child born?" in await type_(CHILD)
    assert "School: ZŠ Hradební" in await type_("2015")
    assert "What is going on?" in await type_("5.B")
    await tap("truancy")
    await tap("bullying and cyberbullying")
    assert "Describe what is going on" in await tap("Done")
    assert "What has the school already tried?" in await type_(DESCRIPTION)
    assert "parents or guardians" in await tap("Skip")
    after_guardians = await tap("Informed, they agree")
    if danger == "No":
        assert "How urgent is it?" in after_guardians
        summary = await tap("Routine")
    else:
        summary = after_guardians
    assert "Please check the referral before sending it" in summary
    return actions


async def test_a_referral_takes_eleven_actions_and_the_coordinator_is_told_only_its_code(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    coordinator, teacher = await team(bot)
    actions = await fill_in(teacher)
    summary = teacher.last_bot_message()
    assert summary.protect_content
    assert CHILD in (summary.text or "") and "truancy, bullying and cyberbullying" in (
        summary.text or ""
    )
    await teacher.press("Send")
    actions += 1
    assert actions <= 12
    sent = await text_of(teacher)
    found = CODE.search(sent)
    assert found, sent
    code = found.group(0)
    assert "I deleted your 4 messages with the child's details from this chat." in sent
    deleted = [m for m in teacher.messages.values() if not m.from_bot and m.deleted]
    assert {m.text for m in deleted} == {CHILD, "2015", "5.B", DESCRIPTION}
    assert CHILD not in teacher.transcript().split("pressed [Send]")[-1]

    notice = await coordinator.next_message()
    assert notice.text == f"New referral {code} from ZŠ Hradební.\nUrgency: routine"
    assert notice.buttons() == [[(f"Open {code}", notice.buttons()[0][0][1])]]

    await coordinator.press(f"Open {code}")
    details = await protected(coordinator)
    assert CHILD in (details.text or "") and "born 2015" in (details.text or "")
    assert DESCRIPTION in (details.text or "")
    async with bot.runtime.database.transaction() as session:
        viewed = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "referral.viewed")
        )
        referral = await session.scalar(select(Referral))
    assert viewed is not None and viewed.details == {"code": code}
    assert referral is not None and referral.status is ReferralStatus.SUBMITTED

    await coordinator.press("Accept")
    accepted = await next_sent(coordinator)
    assert re.search(r"You accepted R-2026-0001\. Case PK-2026-0001 is open", accepted)
    told = await text_of(teacher)
    assert told.startswith(f"Your referral {code} was accepted: case PK-2026-0001.")
    async with bot.runtime.database.transaction() as session:
        case = await session.scalar(select(Case))
    assert case is not None and case.code == "PK-2026-0001"

    await teacher.send_text("/myreferrals")
    assert f"{code} · accepted: case PK-2026-0001 · " in await text_of(teacher)


async def test_every_part_can_be_edited_from_the_summary_and_back_goes_one_step_back(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    coordinator, teacher = await team(bot)
    await bot.invite_code(Role.REFERRER, institution="ZŠ Komenského")  # a second school
    assert "What is the child's name?" in await in_turn(
        teacher, "/refer", "[No]", "Wrong Name", "[Back]"
    )
    await teacher.send_text(CHILD)
    await teacher.next_message()
    await fill_rest(teacher)

    edits = [
        ("✏️ Name", "Ema Nováková", "Child: Ema Nováková, born 2015"),
        ("✏️ Year of birth", "2016", "born 2016"),
        ("✏️ Class", "3.A", "Class: 3.A, ZŠ Hradební"),
        ("✏️ Description", "She cries every morning.", "She cries every morning."),
        ("✏️ Tried", "A talk with her mother.", "Already tried: A talk with her mother."),
    ]
    for button, typed, shown in edits:
        assert shown in await in_turn(teacher, f"[{button}]", typed)

    assert "Class: 3.A, ZŠ Komenského" in await in_turn(teacher, "[✏️ School]", "[ZŠ Komenského]")
    assert "Class: 3.A, Gymnázium Cheb" in await in_turn(
        teacher, "[✏️ School]", "[Another school (type its name)]", "Gymnázium Cheb"
    )

    await teacher.press("✏️ Concerns")
    await teacher.next_message()
    await teacher.press("✅ truancy")  # off again
    await teacher.next_message()
    await teacher.press("other…")
    assert "Describe the other concern" in await text_of(teacher)
    assert "Concerns: bullying and cyberbullying, other: sleeps in class" in await in_turn(
        teacher, "sleeps in class", "[Done]"
    )

    assert "Guardians: not informed" in await in_turn(teacher, "[✏️ Guardians]", "[Not informed]")
    assert "Urgency: within a week" in await in_turn(teacher, "[✏️ Urgency]", "[Within a week]")
    summary = await in_turn(teacher, "[✏️ Danger]", "[Yes, in danger now]")
    assert "In danger right now: yes" in summary and "Urgency: urgent" in summary
    await teacher.press("✏️ Danger")
    await teacher.next_message()
    await teacher.press("No")  # urgent only because of the danger: asked again
    assert "How urgent is it?" in await text_of(teacher)
    await teacher.press("Routine")
    assert "Urgency: routine" in await text_of(teacher)

    await teacher.press("Send")
    assert "I deleted your 12 messages" in await text_of(teacher)
    await coordinator.next_message()
    await coordinator.press("Open R-2026-0001")
    details = await text_of(coordinator)
    for shown in (
        "Child: Ema Nováková, born 2016",
        "Class: 3.A, Gymnázium Cheb",
        "Concerns: bullying and cyberbullying, other: sleeps in class",
        "She cries every morning.",
        "A talk with her mother.",
        "Guardians: not informed",
        "⚠️ The guardians have not agreed to a case conference.",
    ):
        assert shown in details


async def fill_rest(teacher: Person) -> None:
    """From the year on, with the defaults, up to the summary."""
    await in_turn(
        teacher,
        *("2015", "5.B", "[truancy]", "[bullying and cyberbullying]", "[Done]", DESCRIPTION),
        *("[Skip]", "[Informed, they agree]", "[Routine]"),
    )


async def test_a_child_in_danger_gets_the_emergency_numbers_and_an_urgent_alert(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    coordinator, teacher = await team(bot)
    emergency = await in_turn(teacher, "/refer", "[Yes, in danger now]")
    for number in ("158", "155", "112", "116 111"):
        assert number in emergency
    assert "What is the child's name?" in emergency
    await teacher.send_text(CHILD)
    await teacher.next_message()
    await fill_rest_after_name_in_danger(teacher)
    summary = teacher.last_bot_message().text or ""
    assert "Urgency: urgent" in summary  # no urgency question: danger makes it urgent
    await teacher.press("Send")
    await teacher.next_message()
    alert = await text_of(coordinator)
    assert "Urgency: urgent" in alert
    assert "⚠️ The referrer reports that the child may be in danger right now." in alert
    assert CHILD not in alert and "truancy" not in alert


async def fill_rest_after_name_in_danger(teacher: Person) -> None:
    summary = await in_turn(
        teacher,
        *("2015", "5.B", "[truancy]", "[Done]", DESCRIPTION, "[Skip]", "[Informed, they agree]"),
    )
    assert "Please check the referral" in summary


async def test_wrong_input_gets_a_clear_answer_and_loses_nothing(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    _coordinator, teacher = await team(bot)
    await in_turn(teacher, "/refer", "[No]")
    await teacher.send_voice()
    assert "Please type your answer as text" in await text_of(teacher)
    await teacher.send_text(CHILD)
    await teacher.next_message()
    for wrong in ("1990", "20x5", "2024", "15"):
        await teacher.send_text(wrong)
        assert "Please type the year of birth as four digits, from 2006 to 2023." in (
            await text_of(teacher)
        )
    assert "Please answer with one of the buttons." in await in_turn(
        teacher, "2015", "5.B", "some text where buttons are"
    )
    alert = await teacher.press("Done")  # nothing chosen yet
    assert alert.text == "Choose at least one concern." and alert.show_alert
    assert "That is 3,001 characters, but at most 3,000 fit here." in await in_turn(
        teacher, "[truancy]", "[Done]", "x" * 3001
    )
    await teacher.send_photo()
    assert "I cannot use photos, voice messages, stickers or files here." in await text_of(teacher)
    await teacher.send_text("y" * 3000)  # exactly the limit is fine
    assert "What has the school already tried?" in await text_of(teacher)
    await teacher.send_sticker()
    assert "Please type your answer as text." in await text_of(teacher)
    sent = await in_turn(teacher, "[Skip]", "[Informed, not asked yet]", "[Urgent]", "[Send]")
    assert "I deleted your 13 messages with the child's details" in sent
    typed = [m for m in teacher.messages.values() if not m.from_bot and m.text != "/refer"]
    assert all(m.deleted for m in typed if not (m.text or "").startswith("/start"))
    async with bot.runtime.database.transaction() as session:
        referral = await session.scalar(select(Referral))
    assert referral is not None
    sealed = bot.runtime.cipher.decrypt_json(referral.sealed)
    assert sealed["description"] == "y" * 3000 and sealed["birth_year"] == 2015


async def test_cancel_deletes_the_draft_and_a_second_refer_offers_to_continue(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    _coordinator, teacher = await team(bot)
    await in_turn(teacher, "/refer", "[No]", CHILD)
    await teacher.send_text("/refer")
    offer = await teacher.next_message()
    assert "You have an unfinished referral" in (offer.text or "")
    await teacher.press("Continue")
    assert "In which year was the child born?" in await text_of(teacher)
    assert "Is the child in danger right now?" in await in_turn(teacher, "/refer", "[Start over]")
    cancelled = await in_turn(teacher, "[No]", CHILD, "/cancel")
    assert "Cancelled. Nothing was sent, and the draft is deleted." in cancelled
    assert "I deleted your message with the child's details from this chat." in cancelled
    async with bot.runtime.database.transaction() as session:
        assert await session.scalar(select(Referral)) is None
    await teacher.send_text("2015")  # the dialog is over
    assert "I did not understand that" in await text_of(teacher)


async def test_cancel_on_the_summary_sits_below_send_and_asks_before_deleting(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    _coordinator, teacher = await team(bot)
    await fill_in(teacher)
    rows = [[label for label, _data in row] for row in teacher.last_bot_message().buttons()]
    assert rows[-2:] == [["Send"], ["Cancel"]]  # Send alone, Cancel on a row of its own

    await teacher.press("Cancel")
    asked = await teacher.next_message()
    assert asked.text == "Delete this draft? Nothing is sent."
    assert [[label for label, _data in row] for row in asked.buttons()] == [
        ["Yes, delete"],
        ["No, keep it"],
    ]
    await teacher.press("No, keep it")
    assert "Please check the referral before sending it" in await text_of(teacher)
    async with bot.runtime.database.transaction() as session:
        assert await session.scalar(select(Referral)) is not None

    await teacher.press("Cancel")  # twice: asked twice, nothing deleted
    first = await teacher.next_message()
    await teacher.press_data("ref:x", message_id=first.message_id)
    assert teacher.messages[first.message_id].text == "Delete this draft? Nothing is sent."
    async with bot.runtime.database.transaction() as session:
        assert await session.scalar(select(Referral)) is not None

    await teacher.press("Yes, delete", message_id=first.message_id)
    cancelled = await text_of(teacher)
    assert "Cancelled. Nothing was sent, and the draft is deleted." in cancelled
    assert not [m for m in teacher.messages.values() if not m.deleted and CHILD in (m.text or "")]
    async with bot.runtime.database.transaction() as session:
        assert await session.scalar(select(Referral)) is None
    for stale in ("ref:xx", "ref:resume"):  # the confirmation's buttons, pressed late
        late = await teacher.press_data(stale)
        assert (late.text or "").startswith("There is no referral in progress")
    async with bot.runtime.database.transaction() as session:
        assert await session.scalar(select(Referral)) is None


async def test_a_stale_button_after_sending_changes_nothing(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    _coordinator, teacher = await team(bot)
    await fill_in(teacher)
    await in_turn(teacher, "[Send]")
    for stale in ("ref:urgency:week", "ref:send", "ref:x", "ref:concerns:truancy"):
        answer = await teacher.press_data(stale)
        assert answer.text is not None
        assert answer.text.startswith("There is no referral in progress: it was sent")
    async with bot.runtime.database.transaction() as session:
        referral = await session.scalar(select(Referral))
    assert referral is not None and referral.urgency is not None
    assert referral.urgency.value == "routine"


async def send_one(teacher: Person, coordinator: Person) -> str:
    """The teacher sends a referral with the defaults; returns its code (after the
    coordinator's notification)."""
    await fill_in(teacher)
    await teacher.press("Send")
    found = CODE.search(await text_of(teacher))
    assert found
    await coordinator.next_message()
    return found.group(0)


async def question_asked(bot: RunningBot) -> tuple[Person, Person, Person, str]:
    """Hana and her colleague Petr coordinate; Jana's referral comes in and Hana presses "Ask
    the referrer" on it."""
    coordinator, teacher = await team(bot)
    colleague = await bot.join(
        3, "Petr", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    code = await send_one(teacher, coordinator)
    await colleague.next_message()
    await coordinator.press(f"Open {code}")
    await coordinator.next_message()
    await coordinator.press("Ask the referrer")
    return coordinator, teacher, colleague, code


async def test_a_coordinator_asks_the_teacher_answers_and_another_declines_with_a_reason(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    coordinator, teacher, colleague, code = await question_asked(bot)
    assert f"Type your question for the referrer of {code}." in await text_of(coordinator)
    await coordinator.send_text("Does he have siblings at your school?")
    assert "was sent to the referrer" in await text_of(coordinator)

    question = await protected(teacher)
    assert question.text == (
        f"A coordinator asks about your referral {code}:\n\nDoes he have siblings at your school?"
    )
    await teacher.send_text("/myreferrals")
    assert f"{code} · question for you" in await text_of(teacher)
    await teacher.press("Answer")
    assert f"Type your answer about {code}." in await text_of(teacher)
    await teacher.send_text("Yes, a sister in 2.A.")
    thanks = await text_of(teacher)
    assert f"Your answer about {code} was sent to the coordinators." in thanks
    assert "I deleted your message with the child's details from this chat." in thanks
    assert (await text_of(coordinator)) == f"The referrer answered the question about {code}."
    assert (await text_of(colleague)) == f"The referrer answered the question about {code}."

    await colleague.press(f"Open {code}")
    details = await text_of(colleague)
    assert "Question – Hana" in details and "Does he have siblings at your school?" in details
    assert "Answer – Jana" in details and "Yes, a sister in 2.A." in details
    await colleague.press("Decline")
    assert "Why do you decline" in await text_of(colleague)
    await colleague.send_text("   ")
    assert "Please type your answer." in await text_of(colleague)
    await colleague.send_text("The family already works with OSPOD Sokolov.")
    assert "You declined" in await text_of(colleague)
    declined = await protected(teacher)
    assert declined.text == (
        f"Your referral {code} was declined. The reason:\n\n"
        "The family already works with OSPOD Sokolov."
    )
    assert (await text_of(coordinator)) == f"{code} was declined by Petr."

    await coordinator.press("Accept")  # under the details opened before the decision
    assert (await next_sent(coordinator)) == f"{code} has already been decided by Petr: declined."
    async with bot.runtime.database.transaction() as session:
        assert await session.scalar(select(Case)) is None


async def test_the_coordinators_typed_question_and_reason_leave_her_chat_once_stored(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    coordinator, teacher, colleague, code = await question_asked(bot)
    await coordinator.next_message()
    question = "Is Kryštof (9) the boy whose father was arrested?"
    typed = await coordinator.send_text(question)
    sent = await text_of(coordinator)
    assert sent == (
        f"Your question about {code} was sent to the referrer. The referral waits for the answer."
    )
    assert coordinator.messages[typed].deleted
    assert (await teacher.next_message()).text == (
        f"A coordinator asks about your referral {code}:\n\n{question}"
    )
    await in_turn(teacher, "[Answer]", "Yes.")
    await coordinator.next_message()
    await colleague.next_message()

    # Telegram failing to delete the reason: the coordinator is asked to delete it herself.
    await colleague.press(f"Open {code}")
    details = await text_of(colleague)
    assert question in details  # stored, shown to the other coordinators
    await colleague.press("Decline")
    await colleague.next_message()
    reason = "Kryštof (9) is already in care of OSPOD Sokolov."
    sandbox.fail_next("deleteMessages", 502)
    typed = await colleague.send_text(reason)
    assert (await text_of(colleague)) == (
        f"You declined {code}. The referrer has been told the reason. "
        "1 message could not be deleted just now; please delete it yourself."
    )
    assert not colleague.messages[typed].deleted
    assert (await teacher.next_message()).text == (
        f"Your referral {code} was declined. The reason:\n\n{reason}"
    )
    assert (await text_of(coordinator)) == f"{code} was declined by Petr."
    await coordinator.press(f"Open {code}")  # under her first alert
    opened = await next_sent(coordinator)
    assert "Reason for declining – Petr" in opened and reason in opened  # stored


async def test_the_decline_reason_typed_by_the_deciding_coordinator_is_deleted(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    coordinator, teacher = await team(bot)
    code = await send_one(teacher, coordinator)
    await in_turn(coordinator, f"[Open {code}]", "[Decline]")
    reason = "Kryštof (9) is already in care of OSPOD Sokolov."
    typed = await coordinator.send_text(reason)
    assert (await text_of(coordinator)) == (
        f"You declined {code}. The referrer has been told the reason."
    )
    assert coordinator.messages[typed].deleted
    assert (await teacher.next_message()).text == (
        f"Your referral {code} was declined. The reason:\n\n{reason}"
    )


async def test_two_coordinators_deciding_at_once_make_one_decision(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    coordinator, teacher = await team(bot)
    colleague = await bot.join(
        3, "Petr", Role.COORDINATOR, institution="Policie Cheb", kind=InstitutionKind.POLICE
    )
    code = await send_one(teacher, coordinator)
    await colleague.next_message()
    for person in (coordinator, colleague):
        await person.press(f"Open {code}")
        await person.next_message()

    await asyncio.gather(coordinator.press("Accept"), colleague.press("Accept"))

    async with bot.runtime.database.transaction() as session:
        referral = await session.scalar(select(Referral))
    assert referral is not None
    hana_won = referral.decided_by_id == 1
    winner, loser = (coordinator, colleague) if hana_won else (colleague, coordinator)
    assert (await next_sent(winner)).startswith(f"You accepted {code}. Case PK-2026-0001 is open")
    name = "Hana" if hana_won else "Petr"
    told = {await next_sent(loser), await next_sent(loser)}
    assert told == {
        f"{code} has already been decided by {name}: accepted.",
        f"{code} was accepted by {name}: case PK-2026-0001.",
    }
    async with bot.runtime.database.transaction() as session:
        cases = list(await session.scalars(select(Case)))
        decisions = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "referral.accepted")
            )
        )
    assert len(cases) == 1 and len(decisions) == 1
    assert (await text_of(teacher)).startswith(f"Your referral {code} was accepted: case PK-")


async def test_others_cannot_open_a_referral_and_each_refusal_is_audited(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    coordinator, teacher = await team(bot)
    code = await send_one(teacher, coordinator)
    referral_id = int((coordinator.last_bot_message().buttons()[0][0][1] or "").split(":")[-1])
    officer = await bot.join(
        4, "Tomáš", Role.PARTICIPANT, institution="Policie Cheb", kind=InstitutionKind.POLICE
    )
    colleague = await bot.join(5, "Eva", Role.REFERRER)  # same school, not her referral

    for person in (officer, colleague, teacher):
        for forged in (f"rf:o:{referral_id}", f"rf:a:{referral_id}", f"rf:d:{referral_id}"):
            if person is teacher and forged.startswith("rf:o"):
                continue  # the referrer may read her own referral
            refusal = await person.press_data(forged)
            assert refusal.text == "You are not allowed to see this referral.", (person, forged)
    await teacher.press_data(f"rf:o:{referral_id}")
    own = await teacher.next_message()
    assert own.protect_content and CHILD in (own.text or "") and own.buttons() == []
    await officer.send_text("/referrals")
    assert "Only coordinators see the referral queue." in await text_of(officer)
    await colleague.send_text("/refer")  # she may report her own concern, of course
    assert "Is the child in danger right now?" in await text_of(colleague)
    await officer.send_text("/refer")
    assert "Concerns are reported by referrers" in await text_of(officer)

    async with bot.runtime.database.transaction() as session:
        refused = list(
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("%.refused"))
            )
        )
        referral = await session.scalar(select(Referral).where(Referral.code == code))
    assert len(refused) == 10  # 9 presses and the officer's /refer
    assert refused.count("referral.view.refused") == 2
    assert referral is not None and referral.status is ReferralStatus.SUBMITTED
    transcripts = officer.transcript() + colleague.transcript()
    assert CHILD not in transcripts and DESCRIPTION not in transcripts


async def test_the_database_holds_the_childs_details_only_encrypted(
    bot: RunningBot, sandbox: BotApiSandbox, database_url: str
) -> None:
    coordinator, teacher = await team(bot)
    code = await send_one(teacher, coordinator)
    await in_turn(
        coordinator, f"[Open {code}]", "[Ask the referrer]", "Which bus does Kryštof take home?"
    )
    await teacher.next_message()
    await in_turn(teacher, "[Answer]", "Kryštof takes the 7:40 bus.")
    # A second, unfinished draft: drafts are encrypted too.
    await in_turn(teacher, "/refer", "[No]", "Alžběta Šťastná")

    dump = await raw_dump(bot)
    for secret in (
        "Kryštof",
        "Dvořák",
        "Alžběta",
        "2015",
        "5.B",
        "Mondays",
        "truancy",
        "bullying",
        "siblings",
        "7:40",
    ):
        assert secret not in dump, secret
    assert code in dump  # the plain columns are there: the check reads the right data


async def raw_dump(bot: RunningBot) -> str:
    """Every value of every table, as the database stores it (bytes decoded leniently)."""
    values: list[str] = []
    async with bot.runtime.database.transaction() as session:
        for table in Base.metadata.sorted_tables:
            rows = await session.execute(text(f"SELECT * FROM {table.name}"))
            for row in rows:
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        values.append(bytes(value).decode("utf-8", "replace"))
                    else:
                        values.append(str(value))
    return "\n".join(values)


async def test_a_draft_is_remembered_once_after_a_day_and_deleted_after_fourteen(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    _coordinator, teacher = await team(bot)
    await in_turn(teacher, "/refer", "[No]", CHILD)

    clock.advance(timedelta(hours=23))
    await bot.sweep()
    clock.advance(timedelta(hours=1))  # Tuesday 8:00 in Cheb
    await bot.sweep()
    reminder = await teacher.next_message()
    assert reminder.text == (
        "You have an unfinished referral, started Nov 23, 2026. Continue it when you can: "
        "unfinished referrals are deleted after 14 days without changes."
    )
    await teacher.press("Continue")
    assert "In which year was the child born?" in await text_of(teacher)

    clock.advance(timedelta(days=12, hours=23, minutes=59))
    await bot.sweep()  # no second reminder, and not deleted yet
    async with bot.runtime.database.transaction() as session:
        assert await session.scalar(select(Referral)) is not None
    clock.advance(timedelta(minutes=1))
    await bot.sweep()
    assert (await text_of(teacher)) == (
        "Your unfinished referral, started Nov 23, 2026, was deleted after 14 days without "
        "changes. /refer starts a new one.\n\n"
        "1 older message could not be deleted (Telegram allows it for 48 hours); please "
        "delete it yourself."
    )
    async with bot.runtime.database.transaction() as session:
        assert await session.scalar(select(Referral)) is None
    await teacher.send_text("2015")  # the dialog was still waiting for the year
    assert "There is no referral in progress" in await text_of(teacher)
    gone = await teacher.press_data("ref:resume")  # "Continue" of an old reminder
    assert gone.text is not None and "There is no referral in progress" in gone.text


async def test_an_expired_draft_deletes_the_messages_it_still_may_and_counts_the_rest(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    _coordinator, teacher = await team(bot)
    await in_turn(teacher, "/refer", "[No]")
    old_name = await teacher.send_text(CHILD)
    await teacher.next_message()
    old_photo = await teacher.send_photo()  # a photo of the child, refused but noted
    await teacher.next_message()

    clock.advance(timedelta(days=13))
    await teacher.send_text("/refer")  # she comes back: the draft is touched again
    await teacher.next_message()
    await teacher.press("Continue")
    await teacher.next_message()
    recent = await teacher.send_text("2015")
    await teacher.next_message()
    # Nothing more for 14 days: Telegram no longer lets the bot delete any of it.
    clock.advance(timedelta(days=14))
    await bot.sweep()
    notice = await text_of(teacher)
    assert notice.startswith("Your unfinished referral, started Nov 23, 2026, was deleted")
    assert notice.endswith(
        "3 older messages could not be deleted (Telegram allows it for 48 hours); please "
        "delete them yourself."
    )
    for message_id in (old_name, old_photo, recent):
        assert not teacher.messages[message_id].deleted  # the stand-in refused, as Telegram

    # A draft's messages still within the 48 hours (the draft dated back, as after a clock
    # correction) are deleted, and the notice says so.
    await in_turn(teacher, "/refer", "[No]")
    fresh_name = await teacher.send_text(CHILD)
    await teacher.next_message()
    async with bot.runtime.database.transaction() as session:
        draft = await session.scalar(select(Referral))
        assert draft is not None
        draft.updated_at = clock.now() - timedelta(days=15)
    await bot.sweep()
    notice = await text_of(teacher)
    assert notice.endswith("I deleted your message with the child's details from this chat.")
    assert teacher.messages[fresh_name].deleted
    async with bot.runtime.database.transaction() as session:
        assert await session.scalar(select(Referral)) is None


async def test_waiting_referrals_nudge_the_coordinators_once_per_working_day_until_decided(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    coordinator, teacher = await team(bot)
    clock.set(datetime(2026, 11, 27, 14, 0, tzinfo=UTC))  # Friday 15:00 in Cheb
    code = await send_one(teacher, coordinator)

    clock.set(datetime(2026, 11, 30, 13, 59, tzinfo=UTC))  # Monday 14:59: not yet a full day
    await bot.sweep()
    clock.set(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    await bot.sweep()
    nudge = await coordinator.next_message()
    assert nudge.text == (
        "This referral has waited more than a working day for a decision:\n"
        f"{code} · routine · Nov 27, 2026, 3:00\u202fPM"
    )
    clock.advance(timedelta(hours=1))
    await bot.sweep()  # the same day: no second nudge
    clock.set(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))  # Tuesday 8:00
    await bot.sweep()
    assert (await text_of(coordinator)).startswith("This referral has waited more")

    await coordinator.press(code)
    await coordinator.next_message()
    await coordinator.press("Accept")
    await next_sent(coordinator)
    clock.set(datetime(2026, 12, 2, 7, 0, tzinfo=UTC))
    await bot.sweep()
    await coordinator.send_text("/referrals")
    assert (await text_of(coordinator)) == "No referrals are waiting for a decision."


async def test_the_queue_shows_urgent_first_then_oldest_and_cases_their_next_step(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    coordinator, teacher = await team(bot)
    first = await send_one(teacher, coordinator)  # routine
    clock.advance(timedelta(minutes=5))
    await in_turn(teacher, "/refer", "[Yes, in danger now]", CHILD)
    await fill_rest_after_name_in_danger(teacher)
    await teacher.press("Send")
    second = CODE.search(await text_of(teacher))
    assert second is not None
    await coordinator.next_message()

    await coordinator.send_text("/referrals")
    queue = await coordinator.next_message()
    lines = (queue.text or "").splitlines()
    assert lines[0] == "Referrals waiting for a decision (2), urgent and oldest first:"
    assert lines[1].startswith(f"⚠️ {second.group(0)} · urgent · ZŠ Hradební")
    assert lines[2].startswith(f"{first} · routine · ZŠ Hradební")
    assert [label for row in queue.buttons() for label, _ in row] == [second.group(0), first]

    await coordinator.press(first)
    await coordinator.next_message()
    await coordinator.press("Accept")
    await next_sent(coordinator)
    await coordinator.send_text("/cases")
    assert (await text_of(coordinator)) == (
        "Open cases (1):\n"
        "PK-2026-0001 · opened Nov 23, 2026 · case manager Hana\n"
        "   Next step: plan a case conference."
    )


async def test_a_coordinator_between_a_decline_and_her_own_draft_types_into_the_right_one(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    coordinator, teacher = await team(bot)
    code = await send_one(teacher, coordinator)
    await coordinator.send_text("/refer")  # she reports a concern of her own meanwhile
    await coordinator.next_message()
    await coordinator.press("No")
    name_prompt = await coordinator.next_message()
    assert "Why do you decline" in await in_turn(coordinator, f"[Open {code}]", "[Decline]")
    # Back to her draft by its Back button: the decline is left, the draft goes on.
    await coordinator.press("Back", message_id=name_prompt.message_id)
    assert "Is the child in danger right now?" in await text_of(coordinator)
    assert "In which year was the child born?" in await in_turn(coordinator, "[No]", "Ema Nováková")
    async with bot.runtime.database.transaction() as session:
        referral = await session.scalar(select(Referral).where(Referral.code == code))
    assert referral is not None and referral.status is ReferralStatus.SUBMITTED


async def test_danger_from_the_summary_shows_the_numbers_and_keeps_it_urgent(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    _coordinator, teacher = await team(bot)
    await fill_in(teacher)
    await teacher.press("✏️ Danger")
    await teacher.next_message()
    await teacher.press("Yes, in danger now")
    summary = await teacher.next_message()
    assert "116 111" in (summary.text or "") and "Urgency: urgent" in (summary.text or "")
    labels = [label for row in summary.buttons() for label, _ in row]
    assert "✏️ Urgency" not in labels
    forged = await teacher.press_data("ref:urgency:routine")  # an old button, or forged
    assert forged.text == "This button is no longer active."
    async with bot.runtime.database.transaction() as session:
        referral = await session.scalar(select(Referral))
    assert referral is not None and referral.urgency is not None
    assert referral.urgency.value == "urgent"


async def test_cancelling_or_starting_over_also_deletes_the_bots_messages_with_the_details(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    _coordinator, teacher = await team(bot)
    await fill_in(teacher)
    with_details = [m for m in teacher.messages.values() if m.from_bot and CHILD in (m.text or "")]
    assert with_details and all(m.protect_content for m in with_details)
    fresh = await in_turn(teacher, "/refer", "[Start over]")
    assert "I deleted your 4 messages with the child's details" in fresh
    assert all(teacher.messages[m.message_id].deleted for m in with_details)
    ticked = [m for m in teacher.messages.values() if not m.deleted and "✅" in str(m.buttons())]
    assert ticked == []  # the ticked concerns went with Done (an edit of a protected message)


async def test_a_crash_right_after_send_loses_no_alert_and_the_sweep_sends_none_again(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The coordinators' alert is an outbox row committed with the sent referral. The handler
    dying right after the commit, the outbox not running either (as when the process is killed
    there), loses nothing: the outbox's next run sends the alert, once; a minute later the sweep
    deletes the referrer's messages and alerts no one again."""
    coordinator, teacher = await team(bot)
    await fill_in(teacher)
    dispatcher = bot.application.bot_data[delivery.DISPATCHER_KEY]

    async def paused(context: object) -> delivery.Counts:
        return delivery.Counts()

    async def died(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the process died here")

    monkeypatch.setattr(dispatcher, "run", paused)
    monkeypatch.setattr(referral_dialog, "delete_messages", died)
    await teacher.press("Send")
    assert (await text_of(teacher)).startswith("Sorry, something went wrong on our side.")
    async with bot.runtime.database.transaction() as session:
        referral = await session.scalar(select(Referral))
        rows = list(await session.scalars(select(OutboxRow).where(OutboxRow.kind == ALERT)))
        hana = await session.scalar(select(Member).where(Member.display_name == "Hana"))
    assert referral is not None and referral.status is ReferralStatus.SUBMITTED
    assert hana is not None
    assert not any("New referral" in (m.text or "") for m in coordinator.messages.values())
    assert [(row.key, row.status, row.created_at, row.payload) for row in rows] == [
        (
            f"referral:{referral.id}:alert:m{hana.id}",
            OutboxStatus.PENDING,
            referral.submitted_at,
            {"referral": referral.id},
        )
    ]

    monkeypatch.undo()
    await bot.sweep()  # the outbox runs again (no follow-up is due yet)
    alert = await coordinator.next_message()
    assert alert.text == f"New referral {referral.code} from ZŠ Hradební.\nUrgency: routine"
    clock.advance(timedelta(minutes=1))
    await bot.sweep()
    typed = [m for m in teacher.messages.values() if not m.from_bot and m.text == CHILD]
    assert typed and typed[0].deleted
    await bot.sweep()
    await coordinator.send_text("/referrals")  # the next message: no second alert before it
    assert (await text_of(coordinator)).startswith("Referrals waiting for a decision (1)")


async def test_a_question_and_a_decline_reason_are_told_from_the_database_never_the_outbox(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    """What a coordinator types is stored encrypted as a note of the referral; the outbox's rows
    that tell the referrer hold its id, and the text is read when the row is sent."""
    coordinator, teacher = await team(bot)
    code = await send_one(teacher, coordinator)
    await in_turn(coordinator, f"[Open {code}]", "[Ask the referrer]")
    question = "Is Kryštof (9) the boy whose father was arrested?"
    await coordinator.send_text(question)
    await coordinator.next_message()
    assert (await text_of(teacher)).endswith(question)
    await coordinator.press("Decline")
    await coordinator.next_message()
    reason = "Kryštof (9) is already in care of OSPOD Sokolov."
    await coordinator.send_text(reason)
    await coordinator.next_message()
    assert (await text_of(teacher)).endswith(reason)
    async with bot.runtime.database.transaction() as session:
        rows = list(await session.scalars(select(OutboxRow)))
    assert {QUESTION, DECLINED} <= {row.kind for row in rows}
    for row in rows:
        payload = json.dumps(row.payload, ensure_ascii=False)
        assert reason not in payload and question not in payload and "Kryštof" not in payload
        if row.subject.startswith("referral:"):
            assert all(isinstance(value, int) for value in row.payload.values()), row.payload


async def test_messages_telegram_would_not_delete_at_once_are_deleted_by_the_sweep(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    coordinator, teacher = await team(bot)
    await fill_in(teacher)
    sandbox.fail_next("deleteMessages", 502)
    await teacher.press("Send")
    sent = await text_of(teacher)
    assert "4 messages could not be deleted just now; I will try again shortly." in sent
    assert "Telegram allows it for 48 hours" not in sent
    typed = [m for m in teacher.messages.values() if not m.from_bot and m.text == CHILD]
    assert typed and not typed[0].deleted
    assert (await text_of(coordinator)).startswith("New referral")  # alerted all the same

    clock.advance(timedelta(minutes=1))
    await bot.sweep()
    assert teacher.messages[typed[0].message_id].deleted
    summaries = [m for m in teacher.messages.values() if m.from_bot and CHILD in (m.text or "")]
    assert summaries and all(m.deleted for m in summaries)


async def test_a_referral_sent_before_alerts_went_through_the_outbox_is_alerted_once(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    """A referral an older version sent, whose process died before its direct alert (no alert
    row, alerted_at empty): the sweep plans the alert, once."""
    coordinator, teacher = await team(bot)
    code = await send_one(teacher, coordinator)
    async with bot.runtime.database.transaction() as session:
        referral = await session.scalar(select(Referral))
        assert referral is not None
        referral.alerted_at = None  # as the older version left it
        await session.execute(delete(OutboxRow).where(OutboxRow.kind == ALERT))
    await bot.sweep()  # too early: the sending handler of that version may still be at work
    async with bot.runtime.database.reading() as session:
        assert await session.scalar(select(OutboxRow.id).where(OutboxRow.kind == ALERT)) is None
    clock.advance(timedelta(minutes=1))
    await bot.sweep()
    assert (await text_of(coordinator)).startswith(f"New referral {code} from ZŠ Hradební.")
    await bot.sweep()
    await coordinator.send_text("/referrals")  # the next message: no second alert before it
    assert (await text_of(coordinator)).startswith("Referrals waiting for a decision (1)")


async def shows_her_referral(bot: RunningBot, teacher: Person, message: BotMessage) -> str:
    """Show on `message`: her referral's details, protected, and the read audited."""
    async with bot.runtime.database.transaction() as session:
        before = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "referral.viewed")
        )
    await teacher.press("🔎 Show", message_id=message.message_id)
    details = await teacher.next_message()
    assert details.protect_content and CHILD in (details.text or ""), details.text
    assert details.buttons() == []  # nothing to decide for her
    async with bot.runtime.database.transaction() as session:
        after = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "referral.viewed")
        )
    assert after == (before or 0) + 1
    return details.text or ""


async def test_every_message_about_her_referral_shows_it_in_one_tap_and_names_its_case(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    coordinator, teacher, _colleague, code = await question_asked(bot)
    sent = next(m for m in teacher.messages.values() if (m.text or "").startswith("Sent."))
    assert sent.buttons()[0][0][0] == "🔎 Show"
    await shows_her_referral(bot, teacher, sent)

    await coordinator.next_message()
    await coordinator.send_text("Does he have siblings at your school?")
    await coordinator.next_message()
    question = await teacher.next_message()
    assert [label for label, _data in question.buttons()[0]] == ["Answer", "🔎 Show"]
    shown = await shows_her_referral(bot, teacher, question)
    assert "Does he have siblings at your school?" in shown
    await in_turn(teacher, "[Answer]", "Yes, a sister in 2.A.")
    thanks = teacher.last_bot_message()
    assert f"Your answer about {code} was sent" in (thanks.text or "")
    assert "Yes, a sister in 2.A." in await shows_her_referral(bot, teacher, thanks)

    await coordinator.press(f"Open {code}")
    await coordinator.next_message()
    await coordinator.press("Accept")
    accepted = await teacher.next_message()
    assert accepted.text == (
        f"Your referral {code} was accepted: case PK-2026-0001. The coordinators will prepare "
        "a case conference."
    )
    assert "accepted · PK-2026-0001" in await shows_her_referral(bot, teacher, accepted)
    await teacher.send_text("/myreferrals")
    listed = await teacher.next_message()
    assert f"{code} · accepted: case PK-2026-0001 · " in (listed.text or "")
    assert [row[0][0] for row in listed.buttons()] == [f"🔎 Show: {code}"]
    assert CHILD not in "".join(
        m.text or "" for m in teacher.messages.values() if m.from_bot and not m.protect_content
    )


async def test_show_after_the_details_are_deleted_says_they_are_no_longer_kept(
    bot: RunningBot, sandbox: BotApiSandbox, clock: FakeClock
) -> None:
    coordinator, teacher = await team(bot)
    code = await send_one(teacher, coordinator)
    await coordinator.press(f"Open {code}")
    await coordinator.next_message()
    await coordinator.press("Decline")
    await coordinator.next_message()
    await coordinator.send_text("The family already works with OSPOD Sokolov.")
    await coordinator.next_message()
    declined = await teacher.next_message()
    assert declined.protect_content and declined.buttons()[0][0][0] == "🔎 Show"
    await shows_her_referral(bot, teacher, declined)

    async with bot.runtime.database.transaction() as session:
        purged = await retention.purge(
            session,
            bot.runtime.cipher,
            Operator("test"),
            now=clock.now() + timedelta(days=6 * 366),
            years=5,
        )
    assert len(purged) == 1
    await teacher.press("🔎 Show", message_id=declined.message_id)
    gone = await teacher.next_message()
    assert gone.text == (
        f"The details of {code} are no longer kept: they were deleted after the retention period."
    )
    assert not gone.protect_content
    await teacher.send_text("/myreferrals")
    listed = await teacher.next_message()
    assert f"{code} · declined · " in (listed.text or "") and listed.buttons() == []
