"""/invite: admins and coordinators hand out one-time links that then let exactly one person in."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from bot.core.models import AuditEntry, Institution, InstitutionKind, InviteCode, Member, Role
from bot.sandbox import BotApiSandbox, Person
from tests.e2e.conftest import RunningBot
from tests.e2e.test_member_admin import a_guardian_joins

LINK = re.compile(r"https://t\.me/roundtable_sandbox_bot\?start=([A-Za-z0-9_-]+)")


def _code(text: str | None) -> str:
    found = LINK.search(text or "")
    assert found, text
    return found.group(1)


async def _ask_for_a_new_institution(admin: Person) -> None:
    """/invite, then "➕ New institution": the bot now waits for the name."""
    await admin.send_text("/invite")
    await admin.next_message()
    await admin.press("➕ New institution")
    await admin.next_message()


async def _labels(person: Person) -> list[str]:
    message = await person.next_message()
    return [label for row in message.buttons() for label, _ in row]


async def test_an_admin_registers_the_police_and_invites_its_coordinator(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    admin = await bot.join(
        1,
        "Alena",
        Role.ADMIN,
        institution="Městský úřad Cheb",
        kind=InstitutionKind.SOCIAL_DEPARTMENT,
    )
    await admin.send_text("/invite")
    assert await _labels(admin) == ["Městský úřad Cheb", "➕ New institution", "Cancel"]
    await admin.press("➕ New institution")
    assert (await admin.next_message()).text == "Type the name of the new institution."
    await admin.send_text("x" * 121)
    assert (await admin.next_message()).text == (
        "The name must have 1 to 120 characters. Please type it again."
    )
    await admin.send_text("Policie ČR  Cheb <youth>")
    kinds = await _labels(admin)
    assert kinds[:3] == ["Police", "Child protection (OSPOD)", "Social department"]
    assert admin.last_bot_message().text == "What kind of institution is Policie ČR Cheb <youth>?"
    await admin.press("Police")
    assert await _labels(admin) == [
        "administrator",
        "coordinator",
        "referrer",
        "participant",
        "Back",
        "Cancel",
    ]
    await admin.press("coordinator")
    link_message = await admin.next_message()
    assert "Invite link for a coordinator of Policie ČR Cheb <youth>" in (link_message.text or "")
    assert "Nov 30, 2026" in (link_message.text or "")  # valid for 7 days

    officer = sandbox.person(2, "Tomáš", language_code="en")
    await officer.send_text(f"/start {_code(link_message.text)}")
    assert "You have joined Policie ČR Cheb <youth> as coordinator." in (
        (await officer.next_message()).text or ""
    )
    async with bot.runtime.database.transaction() as session:
        police = await session.scalar(
            select(Institution).where(Institution.kind == InstitutionKind.POLICE)
        )
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert police is not None and police.name == "Policie ČR Cheb <youth>"
    assert "institution.created" in actions and actions.count("invite.created") >= 2


async def test_a_coordinator_invites_a_participant_of_an_existing_institution(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    await bot.invite_code(Role.REFERRER, institution="PPP Cheb", kind=InstitutionKind.PPP)
    coordinator = await bot.join(
        1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    await coordinator.send_text("/invite")
    assert await _labels(coordinator) == ["OSPOD Cheb", "PPP Cheb", "Cancel"]
    await coordinator.press("PPP Cheb")
    assert await _labels(coordinator) == ["referrer", "participant", "Back", "Cancel"]
    await coordinator.press("Back")
    await coordinator.next_message()
    await coordinator.press("PPP Cheb")
    await coordinator.next_message()
    await coordinator.press("participant")
    code = _code((await coordinator.next_message()).text)
    psychologist = sandbox.person(2, "Ivana", language_code="en")
    await psychologist.send_text(f"/start {code}")
    await psychologist.next_message()
    async with bot.runtime.database.transaction() as session:
        member = await session.scalar(select(Member).where(Member.telegram_user_id == 2))
    assert member is not None and member.role is Role.PARTICIPANT


async def test_a_forged_role_button_cannot_make_an_admin(bot: RunningBot) -> None:
    coordinator = await bot.join(1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb")
    await coordinator.send_text("/invite")
    await coordinator.next_message()
    await coordinator.press("OSPOD Cheb")
    await coordinator.next_message()
    await coordinator.press_data("inv:r:admin")
    assert (await coordinator.next_message()).text == "You are not allowed to do that."
    async with bot.runtime.database.transaction() as session:
        refused = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "invite.refused")
        )
    assert refused is not None and refused.details == {"role": "admin"}


async def test_referrers_cannot_invite_and_cancel_leaves_nothing(bot: RunningBot) -> None:
    teacher = await bot.join(1, "Jana", Role.REFERRER)
    await teacher.send_text("/invite")
    assert (await teacher.next_message()).text == (
        "Only administrators and coordinators can create invite links."
    )
    admin = await bot.join(2, "Alena", Role.ADMIN, institution="Městský úřad Cheb")
    await _ask_for_a_new_institution(admin)
    await admin.send_text("/cancel")
    assert (await admin.next_message()).text == "Cancelled. No invite link was created."
    await admin.send_text("Policie")
    assert (await admin.next_message()).text == (
        "I did not understand that. /help shows what you can do here."
    )


async def test_an_admin_who_skipped_the_language_buttons_can_still_type_a_name(
    bot: RunningBot, sandbox: BotApiSandbox
) -> None:
    admin = sandbox.person(1, "Alena", language_code="en")
    await admin.send_text(f"/start {await bot.invite_code(Role.ADMIN, 'Městský úřad Cheb')}")
    await admin.next_message()  # the language buttons, left unpressed
    await _ask_for_a_new_institution(admin)
    await admin.send_text("Policie Cheb")
    assert (await admin.next_message()).text == "What kind of institution is Policie Cheb?"


async def test_another_command_ends_a_dialog_so_later_text_is_not_taken_for_it(
    bot: RunningBot,
) -> None:
    admin = await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb")
    await _ask_for_a_new_institution(admin)
    await admin.send_text("/language")
    await admin.next_message()
    await admin.press("English")
    await admin.next_message()
    await admin.send_text("hello there")
    assert (await admin.next_message()).text == (
        "I did not understand that. /help shows what you can do here."
    )
    await _ask_for_a_new_institution(admin)
    await admin.send_photo()
    assert (await admin.next_message()).text == (
        "Please answer the question above, or send /cancel."
    )


async def test_the_institution_list_pages_forward_and_back(bot: RunningBot) -> None:
    # "◀" to the first page carried page 0, which the id parser refused: the dialog ended.
    for number in range(10):
        await bot.invite_code(Role.REFERRER, institution=f"ZŠ {number:02}")
    coordinator = await bot.join(
        1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    await coordinator.send_text("/invite")
    first = await _labels(coordinator)
    assert first[:2] == ["OSPOD Cheb", "ZŠ 00"] and "▶" in first
    await coordinator.press("▶")
    second = await _labels(coordinator)
    assert "ZŠ 09" in second and "◀" in second
    await coordinator.press("◀")
    assert await _labels(coordinator) == first
    await coordinator.press("ZŠ 00")
    assert await _labels(coordinator) == ["referrer", "participant", "Back", "Cancel"]


async def test_the_guardians_register_is_no_institution_to_invite_to(bot: RunningBot) -> None:
    """Guardians join only by a conference's link: /invite neither offers their register nor
    lets forged data or its typed name lead there."""
    people = await a_guardian_joins(bot)
    admin, hana = people["admin"], people["hana"]
    async with bot.runtime.database.transaction() as session:
        register = await session.scalar(
            select(Institution).where(Institution.kind == InstitutionKind.GUARDIANS)
        )
        codes = await session.scalar(select(func.count()).select_from(InviteCode))
    assert register is not None and register.name == "Guardians"

    staff = ["Městský úřad Cheb", "OSPOD Cheb", "ZŠ Hradební"]
    await hana.send_text("/invite")
    assert await _labels(hana) == [*staff, "Cancel"]
    await admin.send_text("/invite")
    assert await _labels(admin) == [*staff, "➕ New institution", "Cancel"]
    # Forged data picks the register: refused when the link would be made.
    await admin.press_data(f"inv:i:{register.id}")
    await admin.next_message()
    await admin.press_data("inv:r:participant")
    assert (await admin.next_message()).text == "You are not allowed to do that."
    # Its name typed as a new institution's: refused too, not reused.
    await _ask_for_a_new_institution(admin)
    await admin.send_text("Guardians")
    await admin.next_message()
    await admin.press("Other")
    assert (await admin.next_message()).text == "You are not allowed to do that."

    async with bot.runtime.database.transaction() as session:
        refusals = list(
            await session.execute(
                select(AuditEntry.action, AuditEntry.subject_id).where(
                    AuditEntry.action.like("%.refused")
                )
            )
        )
        assert await session.scalar(select(func.count()).select_from(InviteCode)) == codes
        kinds = list(await session.scalars(select(Institution.kind).order_by(Institution.id)))
    assert refusals == [
        ("invite.refused", str(register.id)),
        ("institution.create.refused", str(register.id)),
    ]
    assert kinds.count(InstitutionKind.GUARDIANS) == 1 and len(kinds) == 4
