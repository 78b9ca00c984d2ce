"""Guests not on Telegram, end to end: the coordinator adds an institution's contact address and
a named person at planning, enters their poll answers as for a guardian without Telegram, and
confirms the time; the guests are named (never by their address) on every screen."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.models import (
    AuditEntry,
    Conference,
    ConferenceStatus,
    Institution,
    InstitutionKind,
    Invitation,
    InvitationKind,
    Role,
)
from bot.sandbox import Person
from bot.sandbox.models import BotMessage
from tests.e2e.conftest import RunningBot, in_turn
from tests.e2e.mail_world import mail_on, mail_server, settings
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_addresses import failing
from tests.e2e.test_conferences import answer_poll, open_case, plan_shown, until
from tests.e2e.test_tasks import record_asked

__all__ = ["mail_on", "mail_server", "settings"]  # the fixtures of a bot with mail

PAEDIATRICS = "ordinace@pediatrie.example.cz"
EVA = "Mgr. Eva <Dvořák>"


async def add_institutions(bot: RunningBot, *names_and_addresses: tuple[str, str | None]) -> None:
    async with bot.runtime.database.transaction() as session:
        district_id = (await session.scalars(select(Institution.district_id))).first()
        for name, address in names_and_addresses:
            session.add(
                Institution(
                    district_id=district_id,
                    name=name,
                    kind=InstitutionKind.DOCTOR,
                    email=address,
                    created_at=bot.runtime.clock.now(),
                )
            )


def labels(message: BotMessage) -> list[str]:
    return [text for row in message.buttons() for text, _d in row]


async def the_plan(
    bot: RunningBot, *institutions: tuple[str, str | None]
) -> tuple[Person, Person, int]:
    """The coordinator's plan for a case, with these institutions (name, contact) in the
    district."""
    hana = await bot.join(
        1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    jana = await bot.join(2, "Jana", Role.REFERRER)
    await add_institutions(bot, *institutions)
    case_id = await open_case(bot, "Hana", "Jana", ["truancy"])
    await plan_shown(hana, "PK-2026-0001", listed="Next step")
    return hana, jana, case_id


async def add_named(hana: Person, name: str, address: str) -> str:
    await hana.press("+ Guest by e-mail")
    await hana.next_message()
    await hana.press("+ Someone else")
    assert (await hana.next_message()).text == "Type the guest's name (at most 120 characters)."
    assert await in_turn(hana, name) == f"Type the e-mail address of {name}."
    plan = await in_turn(hana, address)
    assert plan.startswith("Case conference for"), plan
    return plan


async def paediatrics_polled(hana: Person) -> BotMessage:
    """From the plan: Pediatrie Cheb (added with its address) invited as a guest by e-mail, and
    the poll sent; returns the poll's board."""
    await hana.press("+ Guest by e-mail")
    await hana.next_message()
    await hana.press("✉ Pediatrie Cheb")
    await until(hana, "Case conference for PK-2026-0001")
    await hana.press("Send the poll")
    return await until(hana, "Poll for the case conference PK-2026-0001")


def guest_buttons(plan: BotMessage, name: str) -> tuple[str, str]:
    """The callback data of a guest's ★/☆ and ✖ Remove buttons in the plan."""
    for row in plan.buttons():
        if len(row) == 2 and row[0][0].endswith(f"✉ {name}"):
            return row[0][1], row[1][1]
    raise AssertionError(f"no buttons of {name} in the plan")


async def test_guests_are_invited_answered_for_and_named_everywhere(
    bot: RunningBot, clock: FakeClock
) -> None:
    hana, jana, _case_id = await the_plan(bot, ("Pediatrie Cheb", PAEDIATRICS), ("Spirála", None))

    await hana.press("+ Guest by e-mail")
    picker = await hana.next_message()
    assert (picker.text or "").startswith("Invite a guest by e-mail")
    # Only institutions with a contact address; not the coordinator's own.
    assert labels(picker) == ["✉ Pediatrie Cheb", "+ Someone else", "Back to the plan"]
    await hana.press("✉ Pediatrie Cheb")
    plan = await until(hana, "Case conference for")
    assert f"✉ Pediatrie Cheb <{PAEDIATRICS}>" in (plan.text or "")  # the coordinator sees it
    assert ("☆ ✉ Pediatrie Cheb", "✖ Remove") in [
        tuple(text for text, _d in row) for row in plan.buttons()
    ]
    # Ticked as an institution too: refused, it is invited by e-mail.
    refused = await hana.press("☐ Pediatrie Cheb")
    assert refused.show_alert
    assert refused.text == "It is invited by e-mail. Remove that guest first to invite it here."

    # A named person: too long a name, a wrong address, the same address twice.
    await hana.press("+ Guest by e-mail")
    await hana.next_message()
    await hana.press("+ Someone else")
    await hana.next_message()
    assert await in_turn(hana, "x" * 121) == (
        "Please type the name as text of at most 120 characters."
    )
    assert await in_turn(hana, EVA) == f"Type the e-mail address of {EVA}."
    assert (await in_turn(hana, "eva(at)example.org")).startswith(
        "That is not an e-mail address I can use"
    )
    assert await in_turn(hana, PAEDIATRICS.upper()) == "That address is invited already."
    await until(hana, "Case conference for")  # the plan again, unchanged
    await add_named(hana, EVA, "eva.dvorak@example.org")
    plan = hana.last_bot_message()
    assert "Invited: 3" in (plan.text or "")  # the school and two guests
    assert f"✉ {EVA} <eva.dvorak@example.org>" in (plan.text or "")

    # Removed before the poll, added again, made required.
    _required, remove = guest_buttons(plan, EVA)
    await hana.press_data(remove, message_id=plan.message_id)
    plan = await until(hana, "Case conference for")
    assert "eva.dvorak" not in (plan.text or "") and "Invited: 2" in (plan.text or "")
    await add_named(hana, EVA, "eva.dvorak@example.org")
    await hana.press(f"☆ ✉ {EVA}")
    plan = await until(hana, "Case conference for")
    assert f"★ ✉ {EVA}" in labels(plan)

    await hana.press("Send the poll")
    board = await until(hana, "Poll for the case conference PK-2026-0001")
    text = board.text or ""
    assert "Answered 0 of 3" in text
    assert "✍ ☆ ✉ Pediatrie Cheb – you enter their answers" in text
    assert f"✍ ★ ✉ {EVA} – you enter their answers" in text
    assert "@" not in text
    assert "✍ Answers of ✉ Pediatrie Cheb" in labels(board)

    poll = await until(jana, "Case conference PK-2026-0001")
    await answer_poll(jana, poll, {0: 1, 1: 1})
    for name, taps in ((EVA, {0: 1}), ("Pediatrie Cheb", {1: 1})):
        await hana.press(f"✍ Answers of ✉ {name}")
        entered = await until(hana, "invited by e-mail")
        assert f"Enter the answers of ✉ {name} (invited by e-mail)." in (entered.text or "")
        await answer_poll(hana, entered, taps)

    # The two required ones have answered (the school, and Eva for whom Hana did): the offer
    # came then, while Hana went on to enter the paediatrician's answers.
    offer = next(
        message
        for message in hana.messages.values()
        if "Every required invitee has answered the poll for PK-2026-0001" in (message.text or "")
    )
    assert "@" not in (offer.text or "")
    # The paediatrician's mail server refused the address for good meanwhile.
    await failing(bot, PAEDIATRICS, "550 5.1.1 unknown")
    confirm = next(label for label in labels(offer) if label.startswith("✅ Confirm"))
    await hana.press(confirm)
    await until(hana, "The case conference PK-2026-0001 is set for")
    attendance = await until(hana, "Set for")
    assert "⏳ ☆ ✉ Pediatrie Cheb – nobody can be reached" in (attendance.text or "")
    # Eva's yes to the confirmed time, entered by Hana, is her acceptance already.
    assert f"✅ ★ ✉ {EVA}\n" in (attendance.text or "") + "\n"
    assert "@" not in (attendance.text or "")

    # After the conference: the attendance names the guests, and one tap records who came.
    async with bot.runtime.database.transaction() as session:
        starts = (await session.scalars(select(Conference.starts_at))).one()
    assert starts is not None
    await record_asked(bot, clock, hana, starts, ended="The case conference PK-2026-0001 has ended")
    await hana.press("👥 Attendance")
    screen = await until(hana, "one tap per participant")
    # Eva accepted (her yes in the poll): she is taken to have come; the practice is not.
    assert "❌ ✉ Pediatrie Cheb" in labels(screen) and f"✅ ✉ {EVA}: —" in labels(screen)
    await hana.press("❌ ✉ Pediatrie Cheb")
    screen = await until(hana, "one tap per participant")
    assert "✅ ✉ Pediatrie Cheb: —" in labels(screen)

    # Nobody but the coordinator's plan ever showed an address of a guest.
    for message in jana.messages.values():
        assert "example.org" not in (message.text or message.caption or "")
        assert "pediatrie.example" not in (message.text or message.caption or "")
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
        guests = list(
            await session.scalars(
                select(Invitation)
                .where(Invitation.kind == InvitationKind.GUEST)
                .order_by(Invitation.id)
            )
        )
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert conference.status is ConferenceStatus.HELD
    assert [(g.email, g.guest_name, g.required, g.answered_at is not None) for g in guests] == [
        (PAEDIATRICS, None, False, True),
        ("eva.dvorak@example.org", EVA, True, True),
    ]
    assert guests[0].institution_id is not None and guests[1].institution_id is None
    assert actions.count("conference.guest_added") == 3
    assert actions.count("conference.guest_removed") == 1


async def test_a_guests_remove_pressed_twice_removes_that_guest_only(bot: RunningBot) -> None:
    """The guests' buttons name each guest, not its place in the list: a double tap on the
    first guest's Remove (or its ★ on that old message) cannot reach the guest who moved up."""
    hana, _jana, _case_id = await the_plan(bot, ("Pediatrie Cheb", PAEDIATRICS))
    await hana.press("+ Guest by e-mail")
    await hana.next_message()
    await hana.press("✉ Pediatrie Cheb")
    await until(hana, "Case conference for")
    await add_named(hana, EVA, "eva.dvorak@example.org")
    plan = hana.last_bot_message()
    required, remove = guest_buttons(plan, "Pediatrie Cheb")
    for data in (required, remove, *guest_buttons(plan, EVA)):
        assert "pediatrie" not in data and "eva" not in data  # never the address
        assert len(data.encode()) <= 64

    await hana.press_data(remove, message_id=plan.message_id)
    after = await until(hana, "Case conference for")
    assert PAEDIATRICS not in (after.text or "")
    assert "eva.dvorak@example.org" in (after.text or "")
    # The same button again, on the same old message: stale, Eva stays.
    again = await hana.press_data(remove, message_id=plan.message_id)
    assert again.text == "This button is no longer active."
    star = await hana.press_data(required, message_id=plan.message_id)
    assert star.text == "This button is no longer active."

    await hana.press("Send the poll")
    await until(hana, "Poll for the case conference PK-2026-0001")
    async with bot.runtime.database.transaction() as session:
        invited = list(
            await session.execute(
                select(Invitation.email, Invitation.required).where(
                    Invitation.kind == InvitationKind.GUEST
                )
            )
        )
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert [tuple(row) for row in invited] == [("eva.dvorak@example.org", False)]
    assert actions.count("conference.guest_removed") == 1


async def test_the_guest_picker_pages_through_150_institutions(bot: RunningBot) -> None:
    many = [(f"Ordinace {n:03d}", f"ordinace{n:03d}@example.cz") for n in range(150)]
    hana, _jana, _case_id = await the_plan(bot, *many)
    await hana.press("+ Guest by e-mail")
    picker = await hana.next_message()
    assert "(page 1 of 15)" in (picker.text or "")
    assert labels(picker)[:2] == ["✉ Ordinace 000", "✉ Ordinace 001"]
    for _ in range(14):
        await hana.press("▶")
        picker = await hana.next_message()
    assert "(page 15 of 15)" in (picker.text or "")
    assert "▶" not in labels(picker)
    await hana.press("✉ Ordinace 149")
    plan = await until(hana, "Case conference for")
    assert "✉ Ordinace 149 <ordinace149@example.cz>" in (plan.text or "")
    assert len(plan.text or "") < 4096


@pytest.mark.parametrize("mail_on", [False])
async def test_without_mail_settings_guests_cannot_be_added(bot: RunningBot) -> None:
    hana, _jana, case_id = await the_plan(bot, ("Pediatrie Cheb", PAEDIATRICS))
    why = (
        "Guests cannot be invited by e-mail: this Round Table sends no e-mail yet (ask the "
        "administrator)."
    )
    pressed = await hana.press("+ Guest by e-mail")
    assert (pressed.text, pressed.show_alert) == (why, True)
    plan = hana.last_bot_message()
    for forged in ("en", "ei:1"):
        pressed = await hana.press_data(f"pl:{case_id}:{forged}", message_id=plan.message_id)
        assert pressed.text == why
    async with bot.runtime.database.transaction() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "conference.guest_added" not in actions
