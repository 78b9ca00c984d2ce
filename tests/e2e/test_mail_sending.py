"""The running bot with mail set up: planned mail rows go to the real SMTP server once the
commit wakes the outbox, and an address the server refuses for good is told to the coordinator
in the chat, in their language, with the address and the server's code."""

from __future__ import annotations

from email.message import EmailMessage

from bot.app import build_application
from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.config import Settings
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.outbox import Letter
from bot.core.runtime import Runtime
from bot.sandbox.mail import MailServer
from bot.transport.mail.delivery import MailDispatcher, MailKind
from bot.transport.telegram import delivery
from tests.bot.mail_seed import KIND, letter_text, mail_row, seed_world
from tests.e2e.conftest import RunningBot
from tests.e2e.mail_world import SENDER, mail_on, mail_server, settings

__all__ = ["mail_on", "mail_server", "settings"]  # the fixtures of a bot with mail


async def _render(letter: Letter) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = letter.address
    message["Subject"] = "Pozvánka"
    message.set_content(letter_text(letter))
    return message


async def test_mail_is_sent_after_the_commit_and_a_refused_address_is_told_to_the_coordinator(
    bot: RunningBot, mail_server: MailServer
) -> None:
    runtime = bot.runtime
    world = await seed_world(runtime.database, runtime.clock)  # type: ignore[arg-type]
    coordinator = bot.sandbox.person(501, "Hana", language_code="en")
    mail: MailDispatcher = bot.application.bot_data[delivery.MAIL_KEY]
    # The invitations' renderers are another part's; this test's kind stands in for them.
    mail.kinds = {KIND: MailKind(_render)}
    mail_server.behaviour.refused["doktor@nemocnice.example.cz"] = "550 5.1.1 No such user"
    now = runtime.clock.now()
    async with runtime.database.transaction() as session:
        await outbox.plan(
            session,
            [
                mail_row(world, runtime.clock, f"invite:{number}", address, payload={"n": number})
                for number, address in enumerate(
                    ["policie@pcr.example.cz", "doktor@nemocnice.example.cz"]
                )
            ],
            now=now,
        )
    delivery.wake(bot.application)

    (arrived,) = await mail_server.wait_for(1)
    assert arrived.recipients == ("policie@pcr.example.cz",)
    assert arrived.message.get_content().strip() == "Invitation 0 to policie@pcr.example.cz"
    notice = await coordinator.next_message()
    assert notice.text == (
        "✉️ A mail about the case conference PK-2026-0042 could not be delivered: the mail "
        "server refused the address doktor@nemocnice.example.cz (550 5.1.1). Nothing more is "
        "sent to it until the address is given again."
    )
    assert len(mail_server.mails) == 1


async def test_a_wake_up_runs_however_late_the_busy_bot_gets_to_it(
    settings: Settings, database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    """APScheduler drops a one-off job that runs more than a second late; a dispatcher's wake-up
    dropped under load would leave its rows until the next wake-up. Both are kept."""
    application = build_application(Runtime(settings, database, clock, cipher))
    delivery.wake(application)
    assert application.job_queue is not None
    jobs = [
        job
        for name in (delivery.JOB_NAME, delivery.MAIL_JOB_NAME)
        for job in application.job_queue.get_jobs_by_name(name)
    ]
    assert len(jobs) == 2
    assert all(job.job.misfire_grace_time is None for job in jobs)
