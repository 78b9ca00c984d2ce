"""How many taps each role needs, counted as a person makes them (docs/coordinator.md, "How
many taps"): never more than before issue 25 (a teacher's report 11, a participant from the poll
to an accepted invitation 5, a coordinator from the referral to a confirmed date 13)."""

from __future__ import annotations

from bot.sandbox import Person
from bot.sandbox.models import BotMessage
from tests.e2e.conftest import RunningBot
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import coordinator_teacher_officer, slot_buttons, until
from tests.e2e.test_referrals import fill_in


class Counted:
    """A person whose taps and typed messages are counted."""

    def __init__(self, person: Person) -> None:
        self.person = person
        self.actions = 0

    async def press(self, label: str, message: BotMessage | None = None) -> None:
        self.actions += 1
        await self.person.press(label, message_id=message.message_id if message else None)


async def test_each_role_needs_no_more_taps_than_before(bot: RunningBot) -> None:
    hana, jana, petr = await coordinator_teacher_officer(bot)

    # The teacher: the whole report to its summary, then Send.
    report = await fill_in(jana)
    teacher = Counted(jana)
    await teacher.press("Send")
    await until(jana, "R-2026-0001")
    assert report + teacher.actions <= 11 + 1

    # The coordinator: from the referral's alert to a confirmed date, with the defaults (the
    # concern pre-ticks the school; she adds the police).
    coordinator = Counted(hana)
    alert = await until(hana, "New referral R-2026-0001")
    await coordinator.press("Open R-2026-0001", alert)
    await until(hana, "Referral R-2026-0001")
    await coordinator.press("Accept")
    accepted = await until(hana, "You accepted R-2026-0001")
    await coordinator.press("📅 Plan a conference", accepted)
    await until(hana, "Case conference for PK-2026-0001")
    await coordinator.press("☐ Policie Cheb")
    await until(hana, "Case conference for PK-2026-0001")
    await coordinator.press("▶ Send the poll")
    await until(hana, "Poll for the case conference PK-2026-0001")

    # The participants: a yes to the time that is confirmed is the acceptance itself; an
    # "if need be" takes one Accept more.
    school, police = Counted(jana), Counted(petr)
    for counted in (school, police):
        poll = await until(counted.person, "When can")
        first = slot_buttons(poll)[0]
        await counted.press(f"{first[0]} {first[1]}", poll)
        poll = await counted.person.next_message()
        if counted is police:  # a second tap: if need be
            first = slot_buttons(poll)[0]
            await counted.press(f"{first[0]} {first[1]}", poll)
            await counted.person.next_message()
        await counted.press("📨 Send", poll)
    offer = await until(hana, "Every required invitee has answered")
    confirm = next(t for row in offer.buttons() for t, _d in row if "Confirm" in t)
    await coordinator.press(confirm, offer)
    await until(hana, "The case conference PK-2026-0001 is set for")
    assert coordinator.actions <= 13

    said_yes = await until(jana, "marked as coming")
    assert school.actions <= 5 and said_yes.buttons()  # and it can still be changed
    invitation = await until(petr, "Will you come?")
    await police.press("✅ Accept", invitation)
    await until(petr, "Answer: accepted")
    assert police.actions <= 5
    # What the guide says, as counted here.
    assert (report + teacher.actions, school.actions, police.actions, coordinator.actions) == (
        12,
        2,
        4,
        6,
    )
