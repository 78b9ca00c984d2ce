"""E-mail addresses end to end: a member's own address confirmed by the code mailed to it
(/email), an institution's contact address set by an admin (/contacts) and by the operator
(`roundtable district --institution NAME --email ADDRESS`), and a Round Table without mail.

The code's mail is rendered by its renderer (bot.transport.mail.code_mail) from the row the
dialog planned, sent with aiosmtplib to a real SMTP server on 127.0.0.1 and read back from
there, as the mail dispatcher would send it."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.mail_tables import EmailConfirmation, MailAddress
from bot.core.models import (
    AuditEntry,
    Channel,
    Institution,
    InstitutionKind,
    Member,
    OutboxRow,
    Role,
)
from bot.core.outbox import Letter
from bot.sandbox import Person
from bot.sandbox.mail import MailServer
from bot.transport.mail.code_mail import code_kinds
from tests.conftest import TEST_KEY
from tests.e2e.conftest import TOKEN, RunningBot, in_turn, text_of
from tests.e2e.mail_world import SENDER, mail_on, mail_server, settings

__all__ = ["mail_on", "mail_server", "settings"]  # the fixtures of a bot with mail

CODE = re.compile(r"^(\d{6})\r?$", re.MULTILINE)


async def code_rows(bot: RunningBot) -> list[OutboxRow]:
    async with bot.runtime.database.transaction() as session:
        return list(
            await session.scalars(
                select(OutboxRow).where(OutboxRow.kind == "mail.code").order_by(OutboxRow.id)
            )
        )


async def rendered(bot: RunningBot, row: OutboxRow) -> EmailMessage | None:
    """The row as the mail dispatcher would render it at this moment."""
    assert row.channel is Channel.MAIL and row.address is not None
    letter = Letter(
        row.id, row.key, row.kind, row.subject, row.member_id, row.address, row.payload,
        row.due_at, row.attempts,
    )  # fmt: skip
    return await code_kinds(bot.runtime)["mail.code"].render(letter)


async def mailed_code(
    bot: RunningBot, server: MailServer, row: OutboxRow
) -> tuple[str, EmailMessage]:
    """The code as it arrives at the address: rendered, sent over SMTP, parsed."""
    message = await rendered(bot, row)
    assert message is not None
    await aiosmtplib.send(message, hostname="127.0.0.1", port=server.port)
    # By its Message-ID: the bot's dispatcher may deliver the same row's mail meanwhile, and two
    # members' codes may go to one address.
    received = await server.wait_for_id(message["Message-ID"])
    assert received.recipients == (row.address,)
    parsed = received.message
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and html is not None
    found = CODE.search(text.get_content())
    assert found is not None, text.get_content()
    assert found.group(1) in html.get_content()
    return found.group(1), parsed


async def give_address(person: Person, address: str) -> str:
    """/email, then Give an address (or Change), then the address typed."""
    await person.send_text("/email")
    shown = await person.next_message()
    labels = [text for row in shown.buttons() for text, _d in row]
    await person.press("Give an address" if "Give an address" in labels else "Change")
    await person.next_message()
    return await in_turn(person, address)


async def member(bot: RunningBot, user_id: int) -> Member:
    async with bot.runtime.database.transaction() as session:
        found = await session.scalar(select(Member).where(Member.telegram_user_id == user_id))
        assert found is not None
        return found


async def failing(bot: RunningBot, address: str, reply: str) -> None:
    """The address marked failing now, with the mail server's reply (as a refusal leaves it)."""
    async with bot.runtime.database.transaction() as session:
        session.add(
            MailAddress(address=address, failing_since=bot.runtime.clock.now(), reply=reply)
        )


async def actions(bot: RunningBot) -> list[str]:
    async with bot.runtime.database.transaction() as session:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


async def test_a_member_confirms_an_address_with_the_code_mailed_to_it(
    bot: RunningBot, mail_server: MailServer
) -> None:
    jana = await bot.join(2, "Jana", Role.REFERRER)
    # The address failed once (a full mailbox taken for a missing one): giving it clears it.
    await failing(bot, "jana.novak@skola.example.cz", "550 5.1.1 no such user")
    await jana.send_text("/email")
    assert await text_of(jana) == (
        "You have not given a work e-mail address. Invitations come only here."
    )
    await jana.press("Give an address")
    assert (await text_of(jana)).startswith("Type your work e-mail address.")
    invalid = (
        "That is not an e-mail address I can use (at most 254 characters, like name@example.cz). "
        "Please type it again."
    )
    assert await in_turn(jana, "jana at skola") == invalid
    assert await in_turn(jana, "j" * 250 + "@skola.example.cz") == invalid
    assert await in_turn(jana, "jana@@skola.cz") == invalid
    sent = await in_turn(jana, "  jana.novak@SKOLA.example.cz ")
    assert sent.startswith("I have mailed a code to jana.novak@skola.example.cz.")
    assert "valid until" in sent

    [row] = await code_rows(bot)
    assert row.address == "jana.novak@skola.example.cz"
    assert row.payload == {"confirmation": row.payload["confirmation"]}  # ids only
    code, mail = await mailed_code(bot, mail_server, row)
    assert mail["Subject"] == "Round Table: your confirmation code"
    assert mail["From"] == SENDER and mail["To"] == "jana.novak@skola.example.cz"
    async with bot.runtime.database.transaction() as session:
        pending = (await session.scalars(select(EmailConfirmation))).one()
    assert code not in pending.code_hash and code.encode() not in pending.code  # hashed, sealed

    assert await in_turn(jana, "jana.novak@skola.example.cz") == (
        "Please type the six digits of the code I mailed you."
    )  # not counted as a try
    wrong = "000000" if code != "000000" else "111111"
    assert await in_turn(jana, wrong) == "That is not the code. 4 tries left."
    assert (await member(bot, 2)).email is None  # not before the code
    assert await in_turn(jana, f" {code[:3]} {code[3:]} ") == (
        "Done: jana.novak@skola.example.cz is your work e-mail address now."
    )
    assert (await member(bot, 2)).email == "jana.novak@skola.example.cz"
    async with bot.runtime.database.transaction() as session:
        assert (await session.scalars(select(MailAddress))).all() == []
    assert "member.email_confirmed" in await actions(bot)
    assert await rendered(bot, row) is None  # confirmed: the code's mail is moot now

    await jana.send_text("/email")
    shown = await jana.next_message()
    assert (shown.text or "").startswith("Your work e-mail address: jana.novak@skola.example.cz")
    assert [text for r in shown.buttons() for text, _d in r] == ["Change", "Remove"]
    # The same address again: nothing to confirm, no code mailed.
    await jana.press("Change")
    await jana.next_message()
    assert await in_turn(jana, "Jana.Novak@skola.example.cz") == (
        "That is your address already; nothing changes."
    )
    assert len(await code_rows(bot)) == 1

    await jana.send_text("/email")
    await jana.next_message()
    await jana.press("Remove")
    assert await text_of(jana) == "Your e-mail address was removed. Invitations come only here."
    assert (await member(bot, 2)).email is None
    assert (await actions(bot))[-1] == "member.email_removed"
    await jana.press_data("em:r", message_id=jana.last_bot_message().message_id)
    assert await text_of(jana) == "You have no e-mail address to remove."


async def test_an_address_another_member_uses_is_refused(
    bot: RunningBot, mail_server: MailServer
) -> None:
    """A calendar's answer from an address two members share could not be told apart."""
    jana = await bot.join(2, "Jana", Role.REFERRER)
    petr = await bot.join(3, "Petr", Role.PARTICIPANT)
    taken = (
        "Another member of Round Table uses that address already. Please give your own work "
        "address."
    )
    # Both ask for a code for the office's mailbox; Jana confirms first.
    await give_address(jana, "kancelar@skola.example.cz")
    assert (await give_address(petr, "kancelar@skola.example.cz")).startswith("I have mailed")
    rows = await code_rows(bot)
    jana_code, _mail = await mailed_code(bot, mail_server, rows[0])
    petr_code, _mail = await mailed_code(bot, mail_server, rows[1])
    assert (await in_turn(jana, jana_code)).startswith("Done:")
    assert await in_turn(petr, petr_code) == taken
    assert (await member(bot, 3)).email is None
    # Asked anew, it is refused at once, and the dialog waits for another address.
    assert await give_address(petr, "KANCELAR@skola.example.cz") == taken
    assert (await in_turn(petr, "petr@skola.example.cz")).startswith("I have mailed")


async def test_expired_replaced_and_used_up_codes_do_not_work(
    bot: RunningBot, mail_server: MailServer, clock: FakeClock
) -> None:
    petr = await bot.join(3, "Petr", Role.PARTICIPANT, institution="Policie Cheb")
    await give_address(petr, "petr@policie.example.cz")
    [first] = await code_rows(bot)
    code, _mail = await mailed_code(bot, mail_server, first)
    clock.advance(timedelta(minutes=31))
    assert await in_turn(petr, code) == (
        "No code is waiting (it expired or was replaced). Ask for a new one: /email"
    )
    assert await rendered(bot, first) is None  # expired: moot

    # Asked twice: the first code no longer works, and its mail is moot.
    await give_address(petr, "petr@policie.example.cz")
    second = (await code_rows(bot))[-1]
    old, _mail = await mailed_code(bot, mail_server, second)
    await petr.press("Ask for a new code")
    await petr.next_message()
    await in_turn(petr, "petr@policie.example.cz")
    third = (await code_rows(bot))[-1]
    assert await rendered(bot, second) is None
    new, _mail = await mailed_code(bot, mail_server, third)
    if old != new:
        assert await in_turn(petr, old) == "That is not the code. 4 tries left."

    # Three codes within the hour: the fourth waits.
    await petr.send_text("/email")
    await petr.next_message()
    await petr.press("Give an address")
    await petr.next_message()
    assert (await in_turn(petr, "petr@policie.example.cz")).startswith(
        "I have mailed you three codes within an hour. Ask again after"
    )
    assert len(await code_rows(bot)) == 3

    # Five wrong tries use the code up: the right one no longer works.
    clock.advance(timedelta(minutes=30))  # the first code is over an hour old
    await give_address(petr, "petr@policie.example.cz")
    fourth = (await code_rows(bot))[-1]
    code, _mail = await mailed_code(bot, mail_server, fourth)
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1):
        assert (
            await in_turn(petr, wrong)
            == f"That is not the code. {left} {'try' if left == 1 else 'tries'} left."
        )
    assert await in_turn(petr, wrong) == (
        "That is not the code, and it was the last try. Ask for a new code: /email"
    )
    await petr.send_text(code)
    assert await text_of(petr) == "I did not understand that. /help shows what you can do here."
    assert (await member(bot, 3)).email is None
    assert await rendered(bot, fourth) is None


@pytest.mark.parametrize("mail_on", [False])
async def test_without_mail_settings_email_says_so_in_one_line(bot: RunningBot) -> None:
    jana = await bot.join(2, "Jana", Role.REFERRER)
    await jana.send_text("/email")
    assert await text_of(jana) == (
        "This Round Table sends no e-mail yet: ask your administrator to set it up."
    )
    assert await code_rows(bot) == []


async def test_the_email_command_is_in_every_members_menu(bot: RunningBot) -> None:
    for user_id, role in enumerate(Role, start=1):
        person = await bot.join(user_id, f"P{user_id}", role)
        commands = bot.sandbox.my_commands(scope={"type": "chat", "chat_id": person.chat_id})
        assert "email" in [command["command"] for command in commands], role


async def test_an_admin_sets_and_removes_an_institutions_contact_address(
    bot: RunningBot,
) -> None:
    admin = await bot.join(1, "Alena", Role.ADMIN, institution="Městský úřad Cheb")
    hana = await bot.join(
        2, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    async with bot.runtime.database.transaction() as session:
        district_id = (await session.scalars(select(Institution.district_id))).first()
        session.add(
            Institution(
                district_id=district_id,
                name="Pediatrie Cheb",
                kind=InstitutionKind.DOCTOR,
                created_at=bot.runtime.clock.now(),
            )
        )
    await failing(bot, "ordinace@pediatrie.example.cz", "550 5.2.1 mailbox disabled")
    await admin.send_text("/contacts")
    listing = await admin.next_message()
    assert (listing.text or "").startswith(
        "Institutions' contact e-mail addresses (3), page 1 of 1"
    )
    assert "☐ Pediatrie Cheb" in [text for row in listing.buttons() for text, _d in row]
    await admin.press("☐ Pediatrie Cheb")
    assert await text_of(admin) == "Pediatrie Cheb has no contact address."
    await admin.press("Give an address")
    assert await text_of(admin) == "Type the contact e-mail address of Pediatrie Cheb."
    assert (await in_turn(admin, "ordinace(at)pediatrie")).startswith(
        "That is not an e-mail address I can use"
    )
    assert await in_turn(admin, "Ordinace@Pediatrie.example.cz") == (
        "Pediatrie Cheb: contact address Ordinace@pediatrie.example.cz"
    )
    async with bot.runtime.database.transaction() as session:
        found = await session.scalar(
            select(Institution).where(Institution.name == "Pediatrie Cheb")
        )
        assert found is not None and found.email == "Ordinace@pediatrie.example.cz"
        assert (await session.scalars(select(MailAddress))).all() == []  # given anew: cleared
    await admin.press("Back to the list")
    assert "✉ Pediatrie Cheb" in [
        text for row in (await admin.next_message()).buttons() for text, _d in row
    ]
    await admin.press("✉ Pediatrie Cheb")
    await admin.next_message()
    await admin.press("Remove")
    assert await text_of(admin) == "Pediatrie Cheb has no contact address."
    assert (await actions(bot))[-2:] == ["institution.email_set", "institution.email_removed"]

    # A coordinator can neither list nor set them, also with forged buttons.
    await hana.send_text("/contacts")
    refused = "Only administrators can set the institutions' e-mail addresses."
    assert await text_of(hana) == refused
    assert found is not None
    for forged in (f"ct:x:{found.id}", f"ct:c:{found.id}", f"ct:i:{found.id}"):
        await hana.send_text("/help")
        home = await hana.next_message()
        await hana.press_data(forged, message_id=home.message_id)
        assert await text_of(hana) == refused
    refusals = [a for a in await actions(bot) if a.endswith(".refused")]
    assert refusals == ["institution.contacts.refused"] + ["institution.email.refused"] * 3


async def _roundtable(database_url: str, tmp_path: Path, *args: str) -> tuple[int | None, str, str]:
    """`roundtable ARGS...` in its own process, as the operator runs it."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROUNDTABLE_")},
        "ROUNDTABLE_TOKEN": TOKEN,
        "ROUNDTABLE_DATABASE_URL": database_url,
        "ROUNDTABLE_ENCRYPTION_KEY": TEST_KEY.decode(),
        "ROUNDTABLE_DATA_DIR": str(tmp_path / "cli"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args,
        env=environment, cwd=tempfile.gettempdir(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, out.decode(), err.decode()


async def test_the_operator_sets_an_institutions_contact_address(
    bot: RunningBot, database_url: str, tmp_path: Path
) -> None:
    await bot.join(3, "Petr", Role.PARTICIPANT, institution="Policie Cheb")
    run = [database_url, tmp_path, "district", "--institution", "Policie Cheb"]
    assert await _roundtable(*run, "--email", "podatelna@policie.example.cz") == (
        0,
        "Policie Cheb: contact address podatelna@policie.example.cz\n",
        "",
    )
    code, _out, err = await _roundtable(*run, "--email", "not an address")
    assert (code, err) == (2, "roundtable: 'not an address' is not an e-mail address\n")
    code, _out, err = await _roundtable(
        database_url, tmp_path, "district", "--institution", "Nikdo", "--email", "a@b.cz"
    )
    assert code == 2 and "no institution named 'Nikdo'" in err
    async with bot.runtime.database.transaction() as session:
        police = await session.scalar(select(Institution).where(Institution.name == "Policie Cheb"))
    assert police is not None and police.email == "podatelna@policie.example.cz"
    assert police.day_starts is None  # its hours untouched
    assert await _roundtable(*run, "--no-email") == (
        0, "Policie Cheb: contact address none\n", ""
    )  # fmt: skip
    await _roundtable(*run, "--email", "podatelna@policie.example.cz")
    assert (await _roundtable(*run, "--email", ""))[1] == "Policie Cheb: contact address none\n"
    async with bot.runtime.database.transaction() as session:
        police = await session.scalar(select(Institution).where(Institution.name == "Policie Cheb"))
        entries = list(
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("institution.email%"))
            )
        )
    assert police is not None and police.email is None
    assert entries == [
        "institution.email_set",
        "institution.email_removed",
        "institution.email_set",
        "institution.email_removed",
    ]
