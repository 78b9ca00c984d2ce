"""/members: an admin takes a leaver out; nobody else can. Guardians are not staff: an admin
neither sees nor deactivates them."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.core.models import AuditEntry, InstitutionKind, Member, Role
from bot.sandbox import BotMessage, Person
from bot.services import members
from tests.e2e.conftest import RunningBot, confirm_confidentiality
from tests.e2e.test_conferences import answer_poll, open_case, plan_shown, until
from tests.e2e.test_joining import TURNED_AWAY_CS


async def members_list(person: Person) -> BotMessage:
    """What /members answers the person."""
    await person.send_text("/members")
    return await person.next_message()


async def test_an_admin_deactivates_a_leaver_who_is_then_a_stranger(bot: RunningBot) -> None:
    admin = await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb")
    teacher = await bot.join(2, "Jana <b>", Role.REFERRER)
    listing = await members_list(admin)
    assert listing.text == (
        "Members (2), page 1 of 1:\n"
        "• Alena, Městský úřad Cheb, administrator\n"
        "• Jana <b>, ZŠ Hradební, referrer"
    )
    assert [label for row in listing.buttons() for label, _ in row] == ["Deactivate Jana <b>"]
    await admin.press("Deactivate Jana <b>")
    assert (await admin.next_message()).text == (
        "Deactivate Jana <b>? They will no longer be able to use the bot."
    )
    await admin.press("Yes, deactivate")
    assert (await admin.next_message()).text == "Jana <b> has been deactivated."
    assert bot.sandbox.my_commands(scope={"type": "chat", "chat_id": teacher.chat_id}) == []

    await teacher.send_text("/help")
    assert (await teacher.next_message()).text == TURNED_AWAY_CS
    async with bot.runtime.database.transaction() as session:
        member = await session.scalar(select(Member).where(Member.telegram_user_id == 2))
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "member.deactivated")
        )
    assert member is not None and not member.active
    assert entry is not None and entry.subject_id == str(member.id)


async def test_a_coordinator_cannot_list_or_deactivate_even_with_forged_buttons(
    bot: RunningBot,
) -> None:
    await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb")
    coordinator = await bot.join(2, "Hana", Role.COORDINATOR, institution="OSPOD Cheb")
    assert (await members_list(coordinator)).text == "Only administrators can manage members."
    await coordinator.press_data("mem:do:1", message_id=coordinator.last_bot_message().message_id)
    assert (await coordinator.next_message()).text == "You are not allowed to do that."
    async with bot.runtime.database.transaction() as session:
        admin = await session.scalar(select(Member).where(Member.telegram_user_id == 1))
        refusals = list(
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("%.refused"))
            )
        )
    assert admin is not None and admin.active
    assert refusals == ["members.list.refused", "member.deactivate.refused"]


async def test_a_long_member_list_pages_and_a_stale_page_button_shows_the_last_page(
    bot: RunningBot,
) -> None:
    admin = await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb")
    runtime = bot.runtime
    for number in range(2, 14):
        async with runtime.database.transaction() as session:
            joined = await members.redeem_invite(
                session,
                code=await bot.invite_code(Role.PARTICIPANT),
                telegram_user_id=number,
                chat_id=number,
                display_name=f"Member {number:02d}",
                locale="cs",
                now=runtime.clock.now(),
                attempts_per_hour=5,
            )
        assert isinstance(joined, members.Joined)
    first = await members_list(admin)
    assert (first.text or "").startswith("Members (13), page 1 of 2:")
    assert (first.text or "").count("\n•") == 10
    assert first.buttons()[-1] == [("▶", "mem:p:1")]
    await admin.press("▶")
    second = await admin.next_message()
    assert (second.text or "").startswith("Members (13), page 2 of 2:")
    assert "• Member 13, ZŠ Hradební, participant" in (second.text or "")
    assert second.buttons()[-1] == [("◀", "mem:p:0")]
    await admin.press("◀")
    assert "page 1 of 2" in ((await admin.next_message()).text or "")
    await admin.press_data("mem:p:99")
    assert "page 2 of 2" in ((await admin.next_message()).text or "")


async def test_a_late_press_on_a_deleted_message_gets_a_new_message(bot: RunningBot) -> None:
    admin = await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb")
    listing = await members_list(admin)
    person = {"id": 1, "is_bot": False, "first_name": "Alena"}
    # A press Telegram delivered late (its query can no longer be answered) on a message that
    # is gone (it can no longer be edited): the answer comes as a new message, not an error.
    await bot.sandbox.push_update(
        {
            "callback_query": {
                "id": "expired-query",
                "from": person,
                "chat_instance": "1",
                "data": "mem:p:0",
                "message": {
                    "message_id": 999_999,
                    "date": 0,
                    "chat": {"id": 1, "type": "private", "first_name": "Alena"},
                    "from": bot.sandbox.bot_user,
                    "text": "an old list",
                },
            }
        }
    )
    again = await admin.next_message()
    assert again.message_id != listing.message_id
    assert again.text == listing.text


async def a_guardian_joins(bot: RunningBot) -> dict[str, Person]:
    """An admin, a coordinator and a teacher; the coordinator invites a child's guardian to a
    case conference, and the guardian joins by the one-time link and gets the poll."""
    people = {
        "admin": await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb"),
        "hana": await bot.join(
            2, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
        ),
        "jana": await bot.join(3, "Jana", Role.REFERRER),
    }
    hana = people["hana"]
    await open_case(bot, "Hana", "Jana", ["truancy"])
    await plan_shown(hana)
    await hana.press("+ Guardian, link")
    await until(hana, "Guardians: 1 by a one-time link")
    await hana.press("Send the poll")
    link = re.search(
        r"start=(\S+)", (await until(hana, "Guardian 1: send them this one-time link")).text or ""
    )
    assert link is not None
    await until(hana, "Poll for the case conference PK-2026-0001")
    guardian = bot.sandbox.person(50, "Petra Nováková", language_code="cs")
    await guardian.send_text(f"/start {link.group(1)}")
    await until(guardian, "Round Table")
    await guardian.press("English")
    await confirm_confidentiality(guardian)
    people["guardian"] = guardian
    return people


async def test_a_guardian_is_not_in_the_admins_list_nor_theirs_to_deactivate(
    bot: RunningBot,
) -> None:
    people = await a_guardian_joins(bot)
    admin, hana, guardian = people["admin"], people["hana"], people["guardian"]
    poll = await until(guardian, "When can you come?")
    async with bot.runtime.database.transaction() as session:
        petra = await session.scalar(select(Member).where(Member.telegram_user_id == 50))
    assert petra is not None and petra.active

    # Admins manage staff: the family is neither listed nor counted.
    listing = await members_list(admin)
    assert listing.text == (
        "Members (3), page 1 of 1:\n"
        "• Alena, Městský úřad Cheb, administrator\n"
        "• Hana, OSPOD Cheb, coordinator\n"
        "• Jana, ZŠ Hradební, referrer"
    )
    assert "Petra" not in str(listing.buttons())

    # Forged buttons for the guardian are refused like any member outside the admin's reach.
    for data in (f"mem:ask:{petra.id}", f"mem:do:{petra.id}"):
        shown = await members_list(admin)
        await admin.press_data(data, message_id=shown.message_id)
        assert (await admin.next_message()).text == "You are not allowed to do that."
    async with bot.runtime.database.transaction() as session:
        still = await session.get_one(Member, petra.id)
        refusals = list(
            await session.execute(
                select(AuditEntry.action, AuditEntry.subject_id).where(
                    AuditEntry.action.like("%.refused")
                )
            )
        )
    assert still.active
    assert refusals == [("member.deactivate.refused", str(petra.id))] * 2

    # The coordinator of the case still sees the guardian, as before: on the poll's board.
    await answer_poll(guardian, poll, {0: 1})
    board = await until(hana, "Answered 1 of 2")
    assert "Guardian 1" in (board.text or ""), board.text
