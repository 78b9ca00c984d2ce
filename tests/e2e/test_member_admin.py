"""/members: an admin takes a leaver out; nobody else can."""

from __future__ import annotations

from sqlalchemy import select

from bot.models import AuditEntry, Member, Role
from bot.services import members
from tests.e2e.conftest import RunningBot
from tests.e2e.test_joining import TURNED_AWAY_CS


async def test_an_admin_deactivates_a_leaver_who_is_then_a_stranger(bot: RunningBot) -> None:
    admin = await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb")
    teacher = await bot.join(2, "Jana <b>", Role.REFERRER)
    await admin.send_text("/members")
    listing = await admin.next_message()
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
    await coordinator.send_text("/members")
    assert (await coordinator.next_message()).text == "Only administrators can manage members."
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
    await admin.send_text("/members")
    first = await admin.next_message()
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
    await admin.send_text("/members")
    listing = await admin.next_message()
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
