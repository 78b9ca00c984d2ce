"""The organizer's mailbox read over IMAP (bot.transport.mail.imap) from a real Dovecot
(tests/mailbox.py) into which real clients' replies are delivered."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Iterator

import pytest
from sqlalchemy import func, select

from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.mail_tables import InboundMail
from bot.core.models import AuditEntry, Rsvp
from bot.services import calendar_replies
from bot.services.calendar_replies import Applied
from bot.transport.mail.imap import Account, MailboxReader, Round
from tests.bot.test_calendar_replies import GUEST, TEACHER, _invitation, _world
from tests.bot.test_outage import _away
from tests.mailbox import PASSWORD, Mailbox, mailbox, needs_dovecot
from tests.replies import ORGANIZER

__all__ = ["mailbox"]  # the fixture of a real mailbox

pytestmark = needs_dovecot


def _reader(
    mailbox: Mailbox,
    database: Database,
    clock: FakeClock,
    cipher: Cipher,
    *,
    url: str | None = None,
    seen: list[Applied] | None = None,
) -> MailboxReader:
    def on_applied(applied: Applied) -> Callable[[], Awaitable[None]]:
        async def after() -> None:
            if seen is not None:
                seen.append(applied)

        return after

    return MailboxReader(
        url or mailbox.url,
        database,
        clock=clock,
        cipher=cipher,
        organizer=ORGANIZER,
        on_applied=on_applied,
        timeout=5,
    )


async def _answered(database: Database) -> int:
    async with database.transaction() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "invitation.answered")
            )
            or 0
        )


async def test_delivered_replies_are_applied_once_also_by_a_new_reader(
    mailbox: Mailbox, database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await _world(database, clock)
    await mailbox.deliver(
        world.reply("outlook", TEACHER),
        world.reply("google", GUEST, partstat="DECLINED", comment="Ordinace je zavřená"),
        world.reply("apple", "cizi@example.com"),  # not anyone invited
    )
    seen: list[Applied] = []
    first = await _reader(mailbox, database, clock, cipher, seen=seen).read()
    assert first == Round(applied=2, ignored=1)
    assert {a.invitation_id for a in seen} == {world.school, world.guest}
    assert (await _invitation(database, world.school)).rsvp is Rsvp.ACCEPTED
    guest = await _invitation(database, world.guest)
    assert guest.rsvp is Rsvp.DECLINED and guest.decline_reason is not None
    assert await mailbox.seen() == {1, 2, 3}

    # A mail the bot applied but could not flag (a crash between the commit and the flag):
    # delivered again unread, a new reader after a restart applies nothing twice.
    again = world.reply("outlook", TEACHER, message_id="crash@client.example")
    await mailbox.deliver(again)
    assert (await _reader(mailbox, database, clock, cipher).read()).applied == 1
    await mailbox.deliver(again)
    restarted = await _reader(mailbox, database, clock, cipher, seen=seen).read()
    assert restarted == Round(applied=0, ignored=1)
    assert await _answered(database) == 3
    assert await mailbox.seen() == {1, 2, 3, 4, 5}


async def test_a_mail_already_read_is_not_fetched_again(
    mailbox: Mailbox, database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await _world(database, clock)
    raw = world.reply("thunderbird", TEACHER)
    await mailbox.deliver(raw, flags=r"(\Seen)")
    assert await _reader(mailbox, database, clock, cipher).read() == Round()
    assert (await _invitation(database, world.school)).rsvp is Rsvp.PENDING
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(InboundMail)) == 0


async def test_a_huge_mail_is_ignored_without_being_downloaded(
    mailbox: Mailbox, database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await _world(database, clock)
    raw = world.reply("sabre", TEACHER)
    huge = raw.replace(b"One has accepted.", b"x" * (calendar_replies.MAX_BYTES + 10))
    await mailbox.deliver(huge)
    assert await _reader(mailbox, database, clock, cipher).read() == Round(ignored=1)
    async with database.transaction() as session:
        row = await session.scalar(select(InboundMail))
    assert row is not None and row.outcome == "too large"
    assert await mailbox.seen() == {1}


async def test_a_wrong_password_or_a_server_that_is_down_is_logged_and_tried_again(
    mailbox: Mailbox,
    database: Database,
    clock: FakeClock,
    cipher: Cipher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = await _world(database, clock)
    await mailbox.deliver(world.reply("rfc6047", TEACHER))
    caplog.set_level(logging.INFO)
    wrong = _reader(mailbox, database, clock, cipher, url=mailbox.url_with(password="spatne"))
    assert await wrong.read() == Round(failed=True)
    assert "the login was refused" in caplog.text
    assert "spatne" not in caplog.text and PASSWORD not in caplog.text

    reader = _reader(mailbox, database, clock, cipher)
    mailbox.stop()
    caplog.clear()
    assert await reader.read() == Round(failed=True)
    assert "could not be read" in caplog.text and PASSWORD not in caplog.text
    assert (await _invitation(database, world.school)).rsvp is Rsvp.PENDING
    mailbox.start()
    assert await reader.read() == Round(applied=1)
    assert (await _invitation(database, world.school)).rsvp is Rsvp.ACCEPTED


def test_the_account_never_shows_its_password() -> None:
    account = Account.of("imaps://konference%40mesto.cz:tajne%2Fheslo@mail.mesto.cz/Odpovedi")
    assert (account.user, account.password) == ("konference@mesto.cz", "tajne/heslo")
    assert (account.tls, account.port, account.folder) == (True, 993, "Odpovedi")
    assert "tajne" not in repr(account)
    assert Account.of("imap://u:p@127.0.0.1").folder == "INBOX"


@pytest.fixture
def secure_mailbox() -> Iterator[Mailbox]:
    with Mailbox.running(tls=True) as running:
        yield running


async def test_imap_upgrades_with_starttls_and_imaps_is_tls_and_the_certificate_counts(
    secure_mailbox: Mailbox,
    database: Database,
    clock: FakeClock,
    cipher: Cipher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = await _world(database, clock)
    mailbox = secure_mailbox

    def reader(url: str, context: ssl.SSLContext | None) -> MailboxReader:
        return MailboxReader(
            url,
            database,
            clock=clock,
            cipher=cipher,
            organizer=ORGANIZER,
            timeout=5,
            ssl_context=context,
        )

    # A certificate the reader does not trust: nothing is read, nothing sent in the clear.
    await mailbox.deliver(world.reply("apple", TEACHER))
    caplog.set_level(logging.WARNING)

    def logins() -> list[str]:
        text = mailbox.log.read_text()
        return [line for line in text.splitlines() if "Login: user=<konference>" in line]

    before = len(logins())
    assert await reader(mailbox.url, None).read() == Round(failed=True)
    assert await reader(mailbox.imaps_url, None).read() == Round(failed=True)
    assert "SSLCertVerificationError" in caplog.text and PASSWORD not in caplog.text
    assert len(logins()) == before  # the password never went

    assert await reader(mailbox.url, mailbox.ssl_context()).read() == Round(applied=1)
    assert ", TLS," in logins()[-1]  # Dovecot: the login came over the upgraded connection
    await mailbox.deliver(world.reply("thunderbird", GUEST, partstat="TENTATIVE"))
    assert await reader(mailbox.imaps_url, mailbox.ssl_context()).read() == Round(applied=1)
    assert (await _invitation(database, world.guest)).rsvp is Rsvp.TENTATIVE


async def test_a_database_away_for_a_moment_is_waited_for(
    mailbox: Mailbox, database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    world = await _world(database, clock)
    await mailbox.deliver(world.reply("sabre", TEACHER))
    failed = _away(database, 2)
    assert await _reader(mailbox, database, clock, cipher).read() == Round(applied=1)
    assert len(failed) == 2
    assert (await _invitation(database, world.school)).rsvp is Rsvp.ACCEPTED
    assert await mailbox.seen() == {1}
