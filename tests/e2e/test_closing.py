"""Closing a case is not silent: every participant of its conferences hears that it is closed
and how, the referrer that her referral's case is closed; each once, leavers not at all."""

from __future__ import annotations

from sqlalchemy import select

from bot.core.models import OutboxRow
from bot.sandbox import Person
from bot.services import cases
from tests.e2e.conftest import RunningBot
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import until
from tests.e2e.test_invitations import each, scheduled
from tests.e2e.test_leavers import _deactivate, team_and_admin

CLOSED = "The case PK-2026-0001 is closed. Outcome: Handed to another authority."
REFERRER = (
    "The case PK-2026-0001 of your referral R-2026-0001 is closed. Outcome: Handed to another "
    "authority. Thank you for reporting it."
)


def told(person: Person, fragment: str) -> int:
    return sum(fragment in (m.text or m.caption or "") for m in person.messages.values())


async def test_closing_tells_the_participants_and_the_referrer_the_outcome_once(
    bot: RunningBot,
) -> None:
    people, admin = await team_and_admin(bot)
    hana, jana, petr, pavel = people["hana"], people["jana"], people["petr"], people["pavel"]
    await scheduled(bot, people)
    await each(petr, "You are invited")
    await each(pavel, "You are invited")
    await _deactivate(admin, "Pavel")  # a leaver hears nothing more

    await hana.send_text("/cases")
    await until(hana, "Open cases")
    await hana.press("✖️ Close: PK-2026-0001")
    asked = await until(hana, "Close the case?")
    outcome = next(data for row in asked.buttons() for label, data in row if "Handed" in label)
    await hana.press("Handed to another authority")
    await until(hana, "The case PK-2026-0001 is closed: Handed to another authority.")
    # The participant hears of the closing besides the conference's cancellation.
    closed, _cancelled = await each(petr, CLOSED, "is cancelled")
    assert closed.text == (f"{CLOSED} No more case conferences or tasks are planned for it.")
    # The referrer (who also took part, for her school) gets her own notice, with Show.
    mine = await until(jana, REFERRER)
    assert mine.text == REFERRER
    assert [[label for label, _data in row] for row in mine.buttons()] == [["🔎 Show"]]

    # Pressing the outcome again (a stale button) tells nobody twice.
    await hana.press_data(outcome or "", message_id=asked.message_id)
    await bot.settle()
    assert (told(petr, CLOSED), told(jana, CLOSED), told(jana, REFERRER)) == (1, 0, 1)
    assert told(pavel, "is closed") == 0 and told(hana, "Outcome:") == 0
    assert "Child" not in petr.transcript() + jana.transcript()
    async with bot.runtime.database.transaction() as session:
        kinds = sorted(
            await session.scalars(
                select(OutboxRow.kind).where(
                    OutboxRow.kind.in_([cases.CLOSED, cases.CLOSED_REFERRER])
                )
            )
        )
    assert kinds == [cases.CLOSED, cases.CLOSED_REFERRER]
