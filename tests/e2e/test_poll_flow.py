"""The poll and the invitation as a participant lives them (issue 25): a time starts unmarked
and one tap says yes; the answer sent stays on the message and can still be changed; the poll
and the invitation name who invites and where; a yes to the confirmed time is already the
acceptance; a new time says plainly which is new; the board says nobody has answered rather
than "0 yes"."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.models import (
    Conference,
    Institution,
    InstitutionKind,
    Invitation,
    Member,
    OutboxRow,
    OutboxStatus,
    Role,
    Rsvp,
    SlotAnswer,
)
from bot.sandbox import Person
from bot.sandbox.models import BotMessage
from bot.services import members
from tests.e2e.conftest import RunningBot
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import answer_poll, open_case, plan_shown, slot_buttons, until

PLACE = "Městský úřad Cheb, nám. Krále Jiřího z Poděbrad 1/14"


async def team(bot: RunningBot, clock: FakeClock) -> dict[str, Person]:
    people = {
        "hana": await bot.join(
            1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
        ),
        "jana": await bot.join(2, "Jana", Role.REFERRER),
        "petr": await bot.join(
            3,
            "Petr",
            Role.PARTICIPANT,
            institution="Policie Cheb",
            kind=InstitutionKind.POLICE,
        ),
    }
    async with bot.runtime.database.transaction() as session:  # roundtable district --place
        await members.configure_district(session, None, place=PLACE, now=clock.now())
    return people


async def poll_sent(bot: RunningBot, hana: Person) -> BotMessage:
    """The case planned with the defaults and the poll sent; returns the coordinator's board."""
    await open_case(bot, "Hana", "Jana", ["crime"])
    await plan_shown(hana)
    await hana.press("Send the poll")
    return await until(hana, "Poll for the case conference PK-2026-0001")


def marks(message: BotMessage) -> list[str]:
    return [mark for mark, _time in slot_buttons(message)]


async def test_a_time_starts_unmarked_one_tap_says_yes_and_the_sent_answer_stays(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot, clock)
    hana, jana = people["hana"], people["jana"]
    board = await poll_sent(bot, hana)
    poll = await until(jana, "When can ZŠ Hradební come?")
    times = [time for _mark, time in slot_buttons(poll)]

    # The board before anyone answered: no "(0 yes)".
    text = board.text or ""
    assert f"Nobody has answered yet; the first time offered is {times[0]}." in text, text
    assert "0 yes" not in text and "Best time so far" not in text

    # Who invites, and where (the district's usual place is the conference's).
    text = poll.text or ""
    assert "Invited by Hana, OSPOD Cheb" in text
    assert f"Length 90 min · {PLACE}" in text
    assert "⬜ not marked. A time left unmarked counts as no." in text
    assert set(marks(poll)) == {"⬜"}

    # One tap is yes; then if need be, no, and unmarked again.
    seen = []
    for _tap in range(4):
        await jana.press(f"{marks(jana.messages[poll.message_id])[0]} {times[0]}")
        seen.append(marks(await jana.next_message())[0])
    assert seen == ["✅", "🤷", "❌", "⬜"]

    # Yes to the first time, if need be to the second, nothing else: Send.
    done = await answer_poll(jana, poll, {0: 1, 1: 2})
    text = done.text or ""
    sent = [f"✅ {times[0]}", f"🤷 {times[1]}"] + [f"❌ {time}" for time in times[2:]]
    assert "\n".join(sent) in text, text  # what was sent, each time with its mark
    assert "You can still change it: tap the times and Send again." in text
    assert marks(done) == ["✅", "🤷"] + ["❌"] * (len(times) - 2)  # unmarked went as no
    async with bot.runtime.database.transaction() as session:
        votes = list(await session.scalars(select(SlotAnswer.vote).order_by(SlotAnswer.slot_id)))
    assert votes == ["yes", "maybe"] + ["no"] * (len(times) - 2)

    # Still changeable until the deadline: the second time to no, sent again.
    done = await answer_poll(jana, done, {1: 1})
    text = done.text or ""
    assert f"❌ {times[1]}" in text and f"🤷 {times[1]}" not in text
    board = await until(hana, "Answered 1 of 2")
    assert f"Best time so far: {times[0]} (1 yes)" in (board.text or "")


async def test_a_yes_to_the_confirmed_time_is_the_acceptance_and_a_new_time_asks_again(
    bot: RunningBot, clock: FakeClock
) -> None:
    people = await team(bot, clock)
    hana, jana, petr = people["hana"], people["jana"], people["petr"]
    pavel = await bot.join(
        4,
        "Pavel",
        Role.PARTICIPANT,
        institution="Policie Cheb",
        kind=InstitutionKind.POLICE,
        language="Čeština",
    )
    await poll_sent(bot, hana)
    school = await until(jana, "When can ZŠ Hradební come?")
    police = await until(petr, "When can Policie Cheb come?")
    first = slot_buttons(school)[0][1]
    await answer_poll(jana, school, {0: 1, 1: 1})  # yes
    await answer_poll(petr, police, {0: 2})  # if need be
    await until(hana, "Every required invitee has answered")
    await hana.press(f"Confirm {first}")
    await until(hana, "The case conference PK-2026-0001 is set for")

    # Jana said yes: she is marked as coming, and can still change it.
    invited = await until(jana, "You said yes to this time in the poll")
    caption = invited.caption or ""
    assert "so you are marked as coming; you can still change it." in caption
    assert "Will you come?" not in caption
    assert "Invited by Hana, OSPOD Cheb" in caption and f"Place: {PLACE}" in caption
    labels = [text for row in invited.buttons() for text, _d in row]
    assert labels == ["• ✅ Accept •", "🤔 Tentative", "❌ Decline"]
    # The police said "if need be": both its members are asked, as before (in Czech for Pavel).
    await until(petr, "Will you come?")
    asked = await until(pavel, "Přijdete?")
    assert "Svolává: Hana, OSPOD Cheb" in (asked.caption or "")
    attendance = await until(hana, "Accepted 1 · tentative 0 · declined 0 · no answer 1")
    assert "✅ ★ ZŠ Hradební" in (attendance.text or "")
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
        jana_id = await session.scalar(select(Member.id).where(Member.display_name == "Jana"))
        school_id = await session.scalar(
            select(Institution.id).where(Institution.name == "ZŠ Hradební")
        )
        mine = (
            await session.scalars(select(Invitation).where(Invitation.institution_id == school_id))
        ).one()
        planned = list(
            await session.scalars(
                select(OutboxRow.kind).where(
                    OutboxRow.member_id == jana_id, OutboxRow.status == OutboxStatus.PENDING
                )
            )
        )
    assert mine.rsvp is Rsvp.ACCEPTED and mine.rsvp_by_id == jana_id  # who answered the poll
    # Reminders as for an acceptance; no nudge to answer.
    assert sorted(planned) == ["conference.reminder", "conference.reminder"], planned
    assert conference.starts_at is not None
    old = conference.starts_at

    # The reminder comes two days before, as for anyone who accepted.
    clock.set(old - timedelta(days=2))
    await bot.sweep()
    await until(jana, "⏰")

    # She changes it with the same buttons.
    await bot.settle()
    await jana.press("🤔 Tentative", message_id=invited.message_id)
    board = await until(hana, "Accepted 0 · tentative 1")

    # A new time chosen directly: nobody voted for it, so everyone is asked, and the message
    # says which time is new.
    await hana.press("🗓 New date", message_id=board.message_id)
    choice = await until(hana, "Times when everyone invited is free")
    await hana.press(choice.buttons()[0][0][0])
    await until(hana, "The case conference PK-2026-0001 moves to")
    async with bot.runtime.database.transaction() as session:
        new = (await session.scalars(select(Conference.starts_at))).one()
    assert new is not None and new != old
    en, cs = bot.runtime.translator("en"), bot.runtime.translator("cs")
    again = await until(jana, "The time has changed")
    caption = again.caption or ""
    assert (
        f"The time has changed: now {en.datetime(new)}, before {en.datetime(old)}. "
        "Your answer is needed again."
    ) in caption
    assert "Will you come?" in caption and "You said yes" not in caption
    again = await until(pavel, "Termín se změnil")
    assert f"Termín se změnil: nově {cs.datetime(new)}, původně {cs.datetime(old)}." in (
        again.caption or ""
    )
    await until(hana, "Accepted 0 · tentative 0 · declined 0 · no answer 2")
