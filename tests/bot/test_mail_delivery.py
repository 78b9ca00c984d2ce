"""The outbox's mail rows sent over SMTP to a real server (aiosmtpd, bot.sandbox.mail) from a real
database: one mail per row with exactly what the renderer made, to the row's address alone; a
4xx and a dropped connection are tried again later, a 5xx fails the row, marks the address and
tells the coordinator; leavers and failing addresses get nothing; the login comes from the URL;
two dispatchers on one database never send the same row."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from bot.core import outbox
from bot.core.clock import FakeClock
from bot.core.config import isolated_settings
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.mail_tables import MailAddress
from bot.core.models import Channel, Member, OutboxRow, OutboxStatus
from bot.core.outbox import Letter
from bot.core.runtime import Runtime
from bot.sandbox.mail import MailServer
from bot.services import mailing
from bot.transport.mail.delivery import MailDispatcher, MailKind
from bot.transport.mail.smtp import LoginFailed, Refused, Server, SmtpSender
from tests.bot.mail_seed import KIND, World, letter_text, mail_row, seed_world

FROM = "Round Table <konference@mesto.example.cz>"


async def _render(letter: Letter) -> EmailMessage | None:
    message = EmailMessage()
    message["From"] = FROM
    message["To"] = letter.address
    message["Subject"] = f"Pozvánka {letter.key}"
    message.set_content(letter_text(letter))
    return message


KINDS = {KIND: MailKind(_render)}


@pytest.fixture
async def server() -> AsyncIterator[MailServer]:
    async with MailServer.running() as running:
        yield running


def _runtime(database: Database, clock: FakeClock, cipher: Cipher) -> Runtime:
    settings = isolated_settings(database_url=database.url)
    return Runtime(settings=settings, database=database, clock=clock, cipher=cipher)


def _dispatcher(runtime: Runtime, url: str, **options: object) -> MailDispatcher:
    sender = SmtpSender(url, FROM, connections=4)
    return MailDispatcher(runtime, KINDS, sender, per_second=1000.0, **options)  # type: ignore[arg-type]


async def _plan_mails(database: Database, clock: FakeClock, *mails: outbox.Planned) -> None:
    async with database.transaction() as session:
        await outbox.plan(session, list(mails), now=clock.now())


async def _plan(world: World, database: Database, clock: FakeClock, *addresses: str) -> None:
    await _plan_mails(
        database,
        clock,
        *(
            mail_row(
                world,
                clock,
                f"mail:{number}",
                address,
                member_id=world.member_id if address == world.member_address else None,
                payload={"conference": world.conference_id, "n": number},
            )
            for number, address in enumerate(addresses)
        ),
    )


async def _rows(database: Database) -> dict[str, tuple[OutboxStatus, str | None, int]]:
    async with database.transaction() as session:
        rows = await session.execute(
            select(
                OutboxRow.address, OutboxRow.status, OutboxRow.outcome, OutboxRow.attempts
            ).where(OutboxRow.channel == Channel.MAIL)
        )
        return {
            str(address): (status, outcome, attempts) for address, status, outcome, attempts in rows
        }


async def test_each_row_is_one_mail_with_exactly_what_was_rendered(
    database: Database, clock: FakeClock, cipher: Cipher, server: MailServer
) -> None:
    world = await seed_world(database, clock)
    addresses = [f"skola{number}@zs.example.cz" for number in range(12)]
    await _plan(world, database, clock, *addresses)
    dispatcher = _dispatcher(_runtime(database, clock, cipher), server.url)
    counts = await dispatcher.run()

    assert counts.sent == 12
    assert sorted(mail.recipients for mail in server.mails) == sorted((a,) for a in addresses)
    for mail in server.mails:
        (address,) = mail.recipients
        assert mail.sender == "konference@mesto.example.cz"
        row = int(mail.message["Subject"].rsplit(":", 1)[1])
        assert mail.message["To"] == address
        assert mail.message.get_content().strip() == f"Invitation {row} to {address}"
    assert {value[0] for value in (await _rows(database)).values()} == {OutboxStatus.SENT}
    # The connections were kept open and reused: never more than the four allowed.
    assert dispatcher.sender.connects <= 4  # type: ignore[attr-defined]
    # Sending again sends nothing more.
    assert (await dispatcher.run()).sent == 0
    await dispatcher.close()
    assert len(server.mails) == 12


async def test_a_4xx_and_a_dropped_connection_are_tried_again_later(
    database: Database, clock: FakeClock, cipher: Cipher, server: MailServer
) -> None:
    world = await seed_world(database, clock)
    server.behaviour.deferred["busy@zs.example.cz"] = 1
    server.behaviour.drop_next = 1
    await _plan(world, database, clock, "busy@zs.example.cz")
    dispatcher = _dispatcher(_runtime(database, clock, cipher), server.url)

    await dispatcher.run()  # 451 to RCPT
    assert (await _rows(database))["busy@zs.example.cz"] == (OutboxStatus.PENDING, None, 1)
    assert await dispatcher.next_wake() == 5.0
    await dispatcher.run()  # not yet due: nothing
    assert server.mails == []

    clock.advance(timedelta(seconds=5))
    await dispatcher.run()  # the connection is cut before the server answers DATA
    assert server.mails == []
    assert (await _rows(database))["busy@zs.example.cz"] == (OutboxStatus.PENDING, None, 2)
    assert await dispatcher.next_wake() == 10.0

    clock.advance(timedelta(seconds=10))
    await dispatcher.run()
    await dispatcher.close()
    assert [mail.recipients for mail in server.mails] == [("busy@zs.example.cz",)]
    assert (await _rows(database))["busy@zs.example.cz"] == (OutboxStatus.SENT, "sent", 2)


async def test_a_row_tried_too_often_is_given_up(
    database: Database, clock: FakeClock, cipher: Cipher, server: MailServer
) -> None:
    world = await seed_world(database, clock)
    server.behaviour.deferred["busy@zs.example.cz"] = 10
    await _plan(world, database, clock, "busy@zs.example.cz")
    dispatcher = _dispatcher(_runtime(database, clock, cipher), server.url, max_attempts=3)
    for _ in range(3):
        await dispatcher.run()
        clock.advance(timedelta(minutes=1))
    await dispatcher.close()
    assert (await _rows(database))["busy@zs.example.cz"] == (OutboxStatus.FAILED, "gave up", 2)


async def test_a_5xx_fails_the_row_marks_the_address_and_plans_the_coordinators_notice(
    database: Database, clock: FakeClock, cipher: Cipher, server: MailServer
) -> None:
    world = await seed_world(database, clock)
    server.behaviour.refused["Gone@Nemocnice.example.cz".lower()] = (
        "550 5.1.1 <gone@nemocnice.example.cz>: Recipient address rejected"
    )
    await _plan(world, database, clock, "Gone@Nemocnice.example.cz", "ok@zs.example.cz")
    woken: list[bool] = []
    dispatcher = _dispatcher(_runtime(database, clock, cipher), server.url)
    dispatcher.on_planned = lambda: woken.append(True)
    counts = await dispatcher.run()

    assert (counts.sent, counts.failed) == (1, 1)
    rows = await _rows(database)
    assert rows["Gone@Nemocnice.example.cz"] == (OutboxStatus.FAILED, "refused", 0)
    async with database.transaction() as session:
        failing = list(await session.scalars(select(MailAddress)))
        notices = list(
            await session.scalars(select(OutboxRow).where(OutboxRow.kind == mailing.REFUSED))
        )
        failed_id = await session.scalar(
            select(OutboxRow.id).where(OutboxRow.address == "Gone@Nemocnice.example.cz")
        )
    assert [(a.address, a.reply, a.failing_since) for a in failing] == [
        ("gone@nemocnice.example.cz", "550 5.1.1", clock.now())
    ]
    # One chat notice, to the conference's coordinator, ids only; under a subject of its own
    # (a new time of the conference, which cancels the conference's rows, leaves it be).
    assert [(n.channel, n.member_id, n.subject, n.payload) for n in notices] == [
        (
            Channel.TELEGRAM,
            world.coordinator_id,
            f"mail.refused:conference:{world.conference_id}",
            {"mail": failed_id, "conference": world.conference_id},
        )
    ]
    assert woken == [True]
    async with database.reading() as session:
        view = await mailing.refusal_view(session, notices[0].payload, world.coordinator_id)
    assert view == mailing.RefusalView(
        address="Gone@Nemocnice.example.cz",
        reply="550 5.1.1",
        case_code="PK-2026-0042",
        own=False,
    )

    # Later rows to that address are skipped without trying, whatever its case.
    later = mail_row(world, clock, "mail:later", "gone@nemocnice.example.cz", payload={"n": 99})
    await _plan_mails(database, clock, later)
    server.behaviour.refused.clear()
    await dispatcher.run()
    assert (await _rows(database))["gone@nemocnice.example.cz"] == (
        OutboxStatus.SKIPPED,
        "failing address",
        0,
    )
    assert len(server.mails) == 1

    # Given anew, the address is used again and the notice is moot.
    async with database.transaction() as session:
        assert await mailing.clear(session, "GONE@nemocnice.example.cz")
        assert not await mailing.failing(session, "gone@nemocnice.example.cz")
    async with database.reading() as session:
        assert await mailing.refusal_view(session, notices[0].payload, world.coordinator_id) is None
    await dispatcher.close()


async def test_a_members_refused_address_outside_a_conference_is_told_to_the_member(
    database: Database, clock: FakeClock, cipher: Cipher, server: MailServer
) -> None:
    world = await seed_world(database, clock)
    server.behaviour.refused[world.member_address] = "553 5.1.3 Bad address syntax"
    # About a conference: still the member's own address, told to them alone (the coordinator
    # has no business with a participant's private address).
    invite = mail_row(
        world, clock, "invite:1", world.member_address, member_id=world.member_id, payload={"n": 1}
    )
    await _plan_mails(database, clock, invite)
    dispatcher = _dispatcher(_runtime(database, clock, cipher), server.url)
    await dispatcher.run()
    await dispatcher.close()
    async with database.transaction() as session:
        notice = await session.scalar(select(OutboxRow).where(OutboxRow.kind == mailing.REFUSED))
    assert notice is not None and notice.member_id == world.member_id
    async with database.reading() as session:
        view = await mailing.refusal_view(session, notice.payload, world.member_id)
    assert view is not None and view.own and view.reply == "553 5.1.3"


async def test_a_leavers_row_and_an_expired_row_are_skipped(
    database: Database, clock: FakeClock, cipher: Cipher, server: MailServer
) -> None:
    world = await seed_world(database, clock)
    await _plan(world, database, clock, world.member_address)
    async with database.transaction() as session:
        late = mail_row(
            world,
            clock,
            "mail:late",
            "late@zs.example.cz",
            subject="conference:1",
            due_at=clock.now() - timedelta(hours=3),
            expires_at=clock.now() - timedelta(hours=1),
        )
        await outbox.plan(session, [late], now=clock.now())
        # Left after the row was planned, without its rows being cancelled (a race).
        member = await session.get(Member, world.member_id)
        assert member is not None
        member.active = False
    dispatcher = _dispatcher(_runtime(database, clock, cipher), server.url)
    await dispatcher.run()
    await dispatcher.close()
    rows = await _rows(database)
    assert rows[world.member_address][:2] == (OutboxStatus.SKIPPED, "left")
    assert rows["late@zs.example.cz"][:2] == (OutboxStatus.SKIPPED, "too late")
    assert server.mails == []


async def test_the_login_comes_from_the_url_and_a_wrong_password_is_a_clear_failure(
    database: Database,
    clock: FakeClock,
    cipher: Cipher,
    server: MailServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = await seed_world(database, clock)
    server.behaviour.login = ("roundtable@mesto.example.cz", "tajné:heslo/1")
    url = f"smtp://roundtable%40mesto.example.cz:wrong@127.0.0.1:{server.port}"
    await _plan(world, database, clock, "a@zs.example.cz")
    runtime = _runtime(database, clock, cipher)

    wrong = _dispatcher(runtime, url)
    with caplog.at_level(logging.INFO):
        await wrong.run()
    await wrong.close()
    assert server.mails == []
    # Kept, without using up an attempt: a wrong password is a setting to fix, not the mail's.
    assert (await _rows(database))["a@zs.example.cz"] == (OutboxStatus.PENDING, None, 0)
    assert "refused the login (535" in caplog.text
    assert "ROUNDTABLE_SMTP_URL" in caplog.text
    assert "wrong" not in caplog.text and "a@zs" not in caplog.text
    with pytest.raises(LoginFailed):
        await SmtpSender(url, FROM).check()

    right = f"smtp://roundtable%40mesto.example.cz:tajn%C3%A9%3Aheslo%2F1@127.0.0.1:{server.port}"
    assert Server.from_url(right).password == "tajné:heslo/1"
    clock.advance(timedelta(seconds=60))
    dispatcher = _dispatcher(runtime, right)
    await dispatcher.run()
    await dispatcher.close()
    assert [mail.recipients for mail in server.mails] == [("a@zs.example.cz",)]


async def test_starttls_required_refuses_a_server_without_it(
    database: Database,
    clock: FakeClock,
    cipher: Cipher,
    server: MailServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = await seed_world(database, clock)
    await _plan(world, database, clock, "a@zs.example.cz")
    url = f"smtp://127.0.0.1:{server.port}?starttls=require"
    assert Server.from_url(url).start_tls is True
    assert Server.from_url("smtps://mail.example.cz").use_tls
    assert Server.from_url("smtp://mail.example.cz:587").start_tls is None
    with pytest.raises(ValueError, match="starttls"):
        Server.from_url("smtp://mail.example.cz?starttls=maybe")
    dispatcher = _dispatcher(_runtime(database, clock, cipher), url)
    with caplog.at_level(logging.INFO):
        await dispatcher.run()
    await dispatcher.close()
    assert server.mails == []
    assert (await _rows(database))["a@zs.example.cz"] == (OutboxStatus.PENDING, None, 0)
    assert "cannot be used as configured" in caplog.text


async def test_a_dead_dispatchers_claims_are_sent_by_the_next_and_two_never_share_a_row(
    database: Database, clock: FakeClock, cipher: Cipher, server: MailServer
) -> None:
    world = await seed_world(database, clock)
    addresses = [f"p{number}@zs.example.cz" for number in range(80)]
    await _plan(world, database, clock, *addresses)
    runtime = _runtime(database, clock, cipher)
    # A process that claimed three rows and died before sending them.
    async with database.transaction() as session:
        dead = await outbox.claim_mail(session, now=clock.now(), worker="dead", limit=3)
    first = _dispatcher(runtime, server.url, batch=7)
    second = _dispatcher(runtime, server.url, batch=7)
    await first.take_over()
    await asyncio.gather(first.run(), second.run())
    await asyncio.gather(first.close(), second.close())

    received = sorted(mail.recipients[0] for mail in server.mails)
    assert received == sorted(addresses)  # every row once, none twice
    assert {letter.address for letter in dead} <= set(received)
    async with database.transaction() as session:
        statuses = set(await session.scalars(select(OutboxRow.status)))
    assert statuses == {OutboxStatus.SENT}


async def test_a_render_that_fails_is_tried_again_and_a_moot_one_is_skipped(
    database: Database, clock: FakeClock, cipher: Cipher, server: MailServer
) -> None:
    world = await seed_world(database, clock)
    await _plan(world, database, clock, "flaky@zs.example.cz", "moot@zs.example.cz")
    failures = [RuntimeError("the database went away")]

    async def render(letter: Letter) -> EmailMessage | None:
        if letter.address.startswith("moot"):
            return None
        if failures:
            raise failures.pop()
        return await _render(letter)

    runtime = _runtime(database, clock, cipher)
    dispatcher = MailDispatcher(
        runtime, {KIND: MailKind(render)}, SmtpSender(server.url, FROM), per_second=1000.0
    )
    await dispatcher.run()
    rows = await _rows(database)
    assert rows["flaky@zs.example.cz"] == (OutboxStatus.PENDING, None, 1)
    assert rows["moot@zs.example.cz"][:2] == (OutboxStatus.SKIPPED, "moot")
    clock.advance(timedelta(seconds=5))
    await dispatcher.run()
    await dispatcher.close()
    assert [mail.recipients for mail in server.mails] == [("flaky@zs.example.cz",)]


async def test_an_address_the_server_cannot_take_is_refused_and_the_connection_kept(
    server: MailServer,
) -> None:
    # aiosmtpd, like many servers, offers no SMTPUTF8: a local part with "ř" cannot be sent.
    sender = SmtpSender(server.url, FROM, connections=1)
    message = EmailMessage()
    message["Subject"] = "Pozvánka"
    message.set_content("Pozvánka na případovou konferenci.")
    with pytest.raises(Refused) as refused:
        await sender.send(message, "jiří@zs.example.cz")
    assert refused.value.reply == "553 5.6.7"
    await sender.send(message, "jiri@zs.example.cz")
    await sender.close()
    assert [mail.recipients for mail in server.mails] == [("jiri@zs.example.cz",)]
    assert sender.connects == 1


async def test_a_long_outage_or_a_refusal_of_the_sender_loses_nothing_and_marks_nobody(
    database: Database, clock: FakeClock, cipher: Cipher, server: MailServer
) -> None:
    """The server is away for an hour (far longer than a mail's 8 attempts would last), then
    refuses to relay for us (5.7.1: a setting of the server's): every mail waits, no address is
    marked failing, and all go once the server takes them."""
    world = await seed_world(database, clock)
    await _plan(world, database, clock, "a@zs.example.cz", "b@policie.example.cz")
    runtime = _runtime(database, clock, cipher)
    port = server.port
    await server.stop()
    for _minute in range(60):
        dispatcher = _dispatcher(runtime, f"smtp://127.0.0.1:{port}")
        await dispatcher.run()
        await dispatcher.close()
        clock.advance(timedelta(minutes=1))
    rows = await _rows(database)
    assert rows["a@zs.example.cz"] == (OutboxStatus.PENDING, None, 0)
    await server.start(port)
    server.behaviour.refused["a@zs.example.cz"] = "554 5.7.1 Relay access denied"
    dispatcher = _dispatcher(runtime, server.url)
    await dispatcher.run()
    await dispatcher.close()
    rows = await _rows(database)
    assert rows["a@zs.example.cz"] == (OutboxStatus.PENDING, None, 0)
    async with database.transaction() as session:
        assert list(await session.scalars(select(MailAddress))) == []
    del server.behaviour.refused["a@zs.example.cz"]
    clock.advance(timedelta(minutes=1))
    dispatcher = _dispatcher(runtime, server.url)
    await dispatcher.run()
    await dispatcher.close()
    assert sorted(r for mail in server.mails for r in mail.recipients) == [
        "a@zs.example.cz",
        "b@policie.example.cz",
    ]


async def test_an_address_at_a_czech_domain_goes_to_its_ascii_form(
    database: Database, clock: FakeClock, cipher: Cipher, server: MailServer
) -> None:
    """A server without SMTPUTF8 takes `info@škola.cz` as `info@xn--kola-f6a.cz`, as every
    mail client sends it; the address is not marked failing."""
    world = await seed_world(database, clock)
    await _plan(world, database, clock, "reditel@základní-škola.example.cz")
    dispatcher = _dispatcher(_runtime(database, clock, cipher), server.url)
    await dispatcher.run()
    await dispatcher.close()
    assert [mail.recipients for mail in server.mails] == [
        ("reditel@xn--zkladn-kola-k7a5nr1e.example.cz",)
    ]
