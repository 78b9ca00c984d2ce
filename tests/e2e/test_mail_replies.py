"""A calendar's answer read from the organizer's mailbox shows in the chat exactly as the chat's
own button would: the invitation's copies redrawn, the coordinator's board, a decline flagged
with its reason. The mailbox is a real Dovecot (tests/mailbox.py); the bot reads it as its
repeating job does."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.app import MAILBOX_JOB, build_application
from bot.core.clock import FakeClock
from bot.core.config import Settings
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import Conference, Member
from bot.core.runtime import Runtime
from bot.services import members
from tests.e2e.conftest import RunningBot
from tests.e2e.mail_world import mail_on, mail_server, mailbox_read, read_mailbox, settings
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import until
from tests.e2e.test_invitations import scheduled, team
from tests.mailbox import Mailbox, mailbox, needs_dovecot
from tests.replies import reply_mail

# The fixtures of a bot with mail that reads a real mailbox.
__all__ = ["mail_on", "mail_server", "mailbox", "mailbox_read", "settings"]

pytestmark = needs_dovecot
ORGANIZER = "konference@cheb.example.cz"  # the address of mail_world.SENDER


async def test_answers_from_calendars_show_in_the_chat_like_the_buttons(
    bot: RunningBot, clock: FakeClock, mailbox: Mailbox
) -> None:
    people = await team(bot)
    hana, jana, petr, pavel = people["hana"], people["jana"], people["petr"], people["pavel"]
    async with bot.runtime.database.transaction() as session:
        await members.configure_district(session, None, mailbox=ORGANIZER, now=clock.now())
        # Their confirmed work addresses (what /email would have stored).
        await session.execute(update(Member).where(Member.id == 2).values(email="jana@zs.cz"))
        await session.execute(update(Member).where(Member.id == 3).values(email="petr@policie.cz"))
    await scheduled(bot, people)
    for name in ("jana", "petr", "pavel"):
        await until(people[name], "Will you come?")
    await bot.settle()
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
    uid = conference.uid
    assert uid is not None

    async def answered(shape: str, attendee: str, **more: str) -> None:
        """The attendee's calendar answers into the mailbox, and the bot reads it."""
        await mailbox.deliver(
            reply_mail(
                shape,
                uid=uid,
                sequence=conference.sequence,
                attendee=attendee,
                organizer=ORGANIZER,
                **more,
            )
        )
        await read_mailbox(bot)

    # Petr's Outlook accepts: his and his colleague's copies say so, and Hana's board.
    await answered("outlook", "petr@policie.cz")
    await until(petr, "Answer: accepted (Petr).")
    await until(pavel, "Answer: accepted (Petr).")
    board = await until(hana, "Accepted 1 · tentative 0 · declined 0 · no answer 1")
    assert "✅ ★ Policie Cheb – Petr" in (board.text or "")

    # Jana's Google Calendar declines with a note: Hana is flagged with the reason.
    await answered("google", "jana@zs.cz", partstat="DECLINED", comment="School trip that day")
    await until(jana, "Answer: declined (Jana).")
    await until(hana, "ZŠ Hradební (Jana) declined the case conference PK-2026-0001")
    reason = await until(hana, "The reason ZŠ Hradební (Jana) gave for declining")
    assert "School trip that day" in (reason.text or "") and reason.protect_content
    assert await mailbox.seen() == {1, 2}


async def test_without_a_mailbox_nothing_reads_one(
    settings: Settings, database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    plain = settings.model_copy(update={"imap_url": None})
    application = build_application(Runtime(plain, database, clock, cipher))
    assert application.job_queue is not None
    assert not application.job_queue.get_jobs_by_name(MAILBOX_JOB)
    wired = build_application(Runtime(settings, database, clock, cipher))
    assert wired.job_queue is not None
    assert len(wired.job_queue.get_jobs_by_name(MAILBOX_JOB)) == 1
