"""The poll's web page in a real browser (headless Chromium, driven by Playwright), against the
real bot: a guest answers the poll and the invitation from the link in their mail (a real SMTP
server on 127.0.0.1), a member answers in the Mini App, the coordinator sees everyone's answers
as a grid; the coordinator's board in the chat follows. axe-core checks every page.

The bot's public address is https://roundtable.test (ROUNDTABLE_WEB_URL, as behind a reverse
proxy); the browser reaches the same paths on the bot's own port, as the proxy would."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, Page
from pydantic import SecretStr
from sqlalchemy import Select, select

from bot.app import WEB_SERVER_KEY
from bot.core.clock import FakeClock
from bot.core.config import Settings
from bot.core.models import (
    AuditEntry,
    Conference,
    Institution,
    InstitutionKind,
    Invitation,
    InvitationKind,
    Role,
    Rsvp,
)
from bot.sandbox import BotApiSandbox, Person
from bot.sandbox.mail import MailPerson, MailServer, Received
from bot.sandbox.models import BotMessage, inline_keyboard
from bot.transport.telegram import delivery
from bot.transport.web.initdata import sign
from tests import browser as browsers
from tests.e2e.conftest import TOKEN, RunningBot, bot_settings, confirm_confidentiality
from tests.e2e.mail_world import SENDER, mail_server
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import answer_poll, open_case, plan_shown, until
from tests.e2e.test_guests import add_institutions, paediatrics_polled
from tests.rows import invited_schools

__all__ = ["mail_server"]

pytestmark = pytest.mark.skipif(browsers.chromium() is None, reason=browsers.SKIP_REASON)

PUBLIC = "https://roundtable.test"
PAEDIATRICS = "ordinace@pediatrie.example.cz"
# Where the screenshots go when asked for (ROUNDTABLE_SCREENSHOTS=docs/images).
SCREENSHOTS = os.environ.get("ROUNDTABLE_SCREENSHOTS")


def web_settings(
    database_url: str,
    sandbox: BotApiSandbox,
    tmp_path: Path,
    mail_server: MailServer,
    web_url: str = PUBLIC,
) -> Settings:
    """A bot with mail (to a real SMTP server) and the web page at `web_url`, on a free port."""
    return bot_settings(
        database_url,
        sandbox,
        tmp_path,
        smtp_url=SecretStr(mail_server.url),
        mail_from=SENDER,
        web_url=web_url,
        web_port=0,  # any free port
    )


@pytest.fixture
def settings(
    database_url: str, sandbox: BotApiSandbox, tmp_path: Path, mail_server: MailServer
) -> Settings:
    return web_settings(database_url, sandbox, tmp_path, mail_server)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with browsers.running() as running:
        yield running


async def _local(bot: RunningBot, url: str) -> str:
    """The public address as the reverse proxy forwards it: the bot's own port."""
    for _ in range(200):
        server = bot.application.bot_data.get(WEB_SERVER_KEY)
        if server is not None:
            return url.replace(PUBLIC, f"http://127.0.0.1:{server.port}")
        await asyncio.sleep(0.01)
    raise AssertionError("the web page's server did not start")


def _text(mail: Received) -> str:
    body = mail.message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def _link(mail: Received) -> str:
    found = re.search(rf"{re.escape(PUBLIC)}/p/[A-Za-z0-9_-]+", _text(mail))
    assert found is not None, _text(mail)
    return found.group(0)


def _web_app_url(message: BotMessage, label: str) -> str:
    for row in inline_keyboard(message.reply_markup):
        for button in row:
            if label in button.get("text", "") and "web_app" in button:
                return str(button["web_app"]["url"])
    raise AssertionError(f"no Mini App button {label!r}")


def _init_data(user_id: int, name: str, clock: FakeClock, token: str = TOKEN) -> str:
    """initData as Telegram hands it to the Mini App of a person who opened it now."""
    fields = {
        "query_id": f"AAH{user_id}",
        "user": json.dumps({"id": user_id, "first_name": name}, separators=(",", ":")),
        "auth_date": str(int(clock.now().timestamp())),
    }
    return sign(fields, token)


async def _open_mini_app(page: Page, url: str, init_data: str) -> None:
    """As a Telegram client opens a Mini App: its address with the launch data in the fragment
    (in a fresh page: a new fragment alone would not load it again)."""
    await page.goto("about:blank")
    await page.goto(f"{url}#{urlencode({'tgWebAppData': init_data, 'tgWebAppVersion': '8.0'})}")
    await page.wait_for_load_state("load")
    await page.wait_for_function("document.querySelector('form#boot') === null")


async def _accessible(page: Page) -> None:
    assert await browsers.serious_violations(page) == []


async def _screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        await page.screenshot(path=str(Path(SCREENSHOTS) / name))  # what the screen shows


async def _poll_with_a_guest(bot: RunningBot) -> tuple[Person, Person, BotMessage]:
    """Hana plans the case's conference with the school (Jana's), the police (Petr's) and the
    paediatric practice as a guest by e-mail; the poll is out. Returns Hana, Petr and the
    board."""
    hana = await bot.join(
        1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    bot.jana = await bot.join(2, "Jana", Role.REFERRER)  # type: ignore[attr-defined]
    petr = await bot.join(
        3, "Petr", Role.PARTICIPANT, institution="Policie Cheb", kind=InstitutionKind.POLICE
    )
    await add_institutions(bot, ("Pediatrie Cheb", PAEDIATRICS))
    await open_case(bot, "Hana", "Jana", ["crime"])
    await plan_shown(hana, listed="Next step")
    return hana, petr, await paediatrics_polled(hana)


async def _school_answers(bot: RunningBot, taps: dict[int, int]) -> None:
    jana: Person = bot.jana  # type: ignore[attr-defined]
    await answer_poll(jana, await until(jana, "When can"), taps)


async def _choose(page: Page, times: list[str]) -> None:
    """On the grid: for each time in order, the label of the answer to pick."""
    for index, answer in enumerate(times):
        await page.locator("fieldset.slot").nth(index).get_by_label(answer, exact=True).check()


async def _invitation(bot: RunningBot, invitation_id: int) -> Invitation:
    async with bot.runtime.database.reading() as session:
        return await session.get_one(Invitation, invitation_id)


async def _found(bot: RunningBot, query: Select[tuple[Invitation]]) -> Invitation:
    """The invitation the query finds (there is one)."""
    async with bot.runtime.database.reading() as session:
        found = await session.scalar(query)
    assert found is not None
    return found


async def _guest_invitation(bot: RunningBot) -> Invitation:
    return await _found(bot, select(Invitation).where(Invitation.kind == InvitationKind.GUEST))


async def test_a_guest_answers_the_poll_on_a_phone_changes_it_and_the_board_follows(
    bot: RunningBot, browser: Browser, mail_server: MailServer
) -> None:
    hana, _petr, board = await _poll_with_a_guest(bot)
    doctor = MailPerson(mail_server, PAEDIATRICS, "Pediatrie Cheb")
    mail = await doctor.next_mail()
    assert "on your personal page" in _text(mail) or "osobní stránce" in _text(mail)
    link = _link(mail)
    html = mail.message.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage) and link in str(html.get_content())

    page = await browser.new_page(viewport=browsers.PHONE, locale="en-GB")
    await page.goto(await _local(bot, link) + "?lang=en")
    assert await page.title() == "Case conference PK-2026-0001"
    body = await page.inner_text("body")
    assert "For: Pediatrie Cheb" in body and "Invited by Hana, OSPOD Cheb" in body
    assert "Kind: initial conference" in body
    assert await page.locator("fieldset.slot").count() == 8  # the poll's eight times
    await _accessible(page)
    await _choose(page, ["Yes", "If need be"])  # the other six left unmarked: no
    await _screenshot(page, "web-poll-phone.png")
    await page.get_by_role("button", name="Send").click()
    await page.wait_for_load_state("load")
    assert "Thank you, your answer was sent." in await page.inner_text("[role=status]")
    assert await page.locator("fieldset.slot").nth(0).get_by_label("Yes", exact=True).is_checked()
    await _accessible(page)

    # The coordinator's board in the chat shows the guest's answer at once.
    redrawn = await until(hana, "✅ ☆ ✉ Pediatrie Cheb")
    assert redrawn.message_id == board.message_id
    guest = await _guest_invitation(bot)
    assert guest.answered_at is not None and guest.answered_by_id is None

    # Changed on the same page: the first time is a no now.
    await _choose(page, ["No"])
    await page.get_by_role("button", name="Send").click()
    await page.wait_for_load_state("load")
    assert await page.locator("fieldset.slot").nth(0).get_by_label("No", exact=True).is_checked()
    async with bot.runtime.database.reading() as session:
        audited = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "conference.answered")
        )
        assert [entry.details.get("channel") for entry in audited] == ["web", "web"]


async def test_on_a_desktop_a_guest_answers_the_invitation_with_a_reason(
    bot: RunningBot, browser: Browser, mail_server: MailServer, clock: FakeClock
) -> None:
    hana, petr, _board = await _poll_with_a_guest(bot)
    doctor = MailPerson(mail_server, PAEDIATRICS, "Pediatrie Cheb")
    page = await browser.new_page(viewport=browsers.DESKTOP)
    await page.goto(await _local(bot, _link(await doctor.next_mail())) + "?lang=cs")
    assert "Pro: Pediatrie Cheb" in await page.inner_text("body")
    await _choose(page, ["Ano"])
    await _screenshot(page, "web-poll-desktop.png")
    await page.get_by_role("button", name="Odeslat").click()
    await page.wait_for_load_state("load")
    await _school_answers(bot, {0: 1})
    poll = await until(petr, "When can")
    await answer_poll(petr, poll, {0: 1})
    offer = await until(hana, "Every required invitee has answered")
    confirm = next(t for row in offer.buttons() for t, _d in row if "Confirm" in t)
    await hana.press(confirm, message_id=offer.message_id)
    await until(hana, "The case conference PK-2026-0001 is set for")
    await bot.application.bot_data[delivery.MAIL_KEY].settle()

    # The invitation's mail has a link of its own, to the invitation.
    invitation_mail = next(
        m
        for m in doctor.mails
        if "Invitation" in str(m.message["Subject"]) or "Pozvánka" in str(m.message["Subject"])
    )
    await page.goto(await _local(bot, _link(invitation_mail)) + "?lang=en")
    body = await page.inner_text("body")
    assert "Will you come?" in body
    assert "Your answer: Accepted" in body  # the yes in the poll was the acceptance
    await _accessible(page)
    await page.get_by_label("A reason, if you cannot come").fill("Ordinace je ten den zavřená.")
    await page.get_by_role("button", name="Decline").click()
    await page.wait_for_load_state("load")
    assert "Thank you, your answer was sent: Declined." in await page.inner_text("[role=status]")
    guest = await _guest_invitation(bot)
    assert guest.rsvp is Rsvp.DECLINED and guest.decline_reason is not None
    assert b"zav" not in guest.decline_reason  # kept encrypted
    flag = await until(hana, "Pediatrie Cheb")
    assert "declined" in (flag.text or "").lower() or "❌" in (flag.text or "")
    await _screenshot(page, "web-invitation-desktop.png")


async def test_a_wrong_link_and_one_expired_in_a_second_tab_say_so_and_show_nothing(
    bot: RunningBot, browser: Browser, mail_server: MailServer, clock: FakeClock
) -> None:
    await _poll_with_a_guest(bot)
    doctor = MailPerson(mail_server, PAEDIATRICS, "Pediatrie Cheb")
    link = await _local(bot, _link(await doctor.next_mail()))
    page = await browser.new_page(viewport=browsers.PHONE)

    wrong = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
    response = await page.goto(wrong + "?lang=en")
    assert response is not None and response.status == 404
    assert "This link does not work" in await page.inner_text("h1")
    assert "PK-2026" not in await page.content()
    await _accessible(page)

    # A second tab is open when the deadline passes: its Send is refused, nothing is stored.
    second = await browser.new_page(viewport=browsers.PHONE)
    await second.goto(link + "?lang=en")
    await _choose(second, ["Yes"])
    async with bot.runtime.database.reading() as session:
        conference = (await session.scalars(select(Conference))).one()
    clock.set(conference.deadline + timedelta(minutes=1))
    await second.get_by_role("button", name="Send").click()
    await second.wait_for_load_state("load")
    assert "This link has expired" in await second.inner_text("h1")
    assert (await _guest_invitation(bot)).answered_at is None

    response = await page.goto(link + "?lang=en")
    assert response is not None and response.status == 410
    assert "This link has expired" in await page.inner_text("h1")
    assert "PK-2026" not in await page.content()


async def test_a_new_round_uses_up_the_old_link_and_the_new_mail_has_a_new_one(
    bot: RunningBot, browser: Browser, mail_server: MailServer
) -> None:
    hana, petr, _board = await _poll_with_a_guest(bot)
    doctor = MailPerson(mail_server, PAEDIATRICS, "Pediatrie Cheb")
    old = await _local(bot, _link(await doctor.next_mail()))
    await _school_answers(bot, {0: 3})
    await answer_poll(petr, await until(petr, "When can"), {0: 3})  # no to the first time
    offer = await until(hana, "Every required invitee has answered")
    await hana.press("📅 Poll the next window", message_id=offer.message_id)
    await until(hana, "Round 2")
    new = await _local(bot, _link(await doctor.next_mail()))
    assert new != old

    page = await browser.new_page(viewport=browsers.PHONE)
    response = await page.goto(old + "?lang=en")
    assert response is not None and response.status == 410
    assert "This link is no longer valid" in await page.inner_text("h1")
    response = await page.goto(new + "?lang=en")
    assert response is not None and response.status == 200
    assert await page.locator("fieldset.slot").count() > 0


async def test_a_member_answers_in_the_mini_app_and_forged_or_old_launch_data_is_refused(
    bot: RunningBot, browser: Browser, clock: FakeClock
) -> None:
    hana, petr, _board = await _poll_with_a_guest(bot)
    poll = await until(petr, "When can")
    url = await _local(bot, _web_app_url(poll, "Answer in a grid"))
    assert url.endswith(f"/app/poll/{(await _petrs_invitation(bot)).id}")

    page = await browser.new_page(viewport=browsers.PHONE)
    await _open_mini_app(page, url, _init_data(3, "Petr", clock))
    assert "When can" not in await page.inner_text("body")  # the page's own words
    assert "Policie Cheb" in await page.inner_text("body")
    await _accessible(page)
    await _choose(page, ["Yes", "Yes", "If need be"])
    await page.get_by_role("button", name="Send").click()
    await page.wait_for_load_state("load")
    assert "Thank you, your answer was sent." in await page.inner_text("[role=status]")
    # The chat: Petr's poll message shows what was sent, and Hana's board counts it.
    answered = await until(petr, "Answered by Petr")
    assert answered.message_id == poll.message_id
    await until(hana, "✅ ★ Policie Cheb – Petr")

    forged = _init_data(3, "Petr", clock, token="7000000001:someone-elses-token")
    await _open_mini_app(page, url, forged)
    assert "could not confirm that it was opened from Telegram" in await page.inner_text("body")
    assert "Policie Cheb" not in await page.inner_text("body")

    old = _init_data(3, "Petr", clock)
    clock.advance(timedelta(hours=2))
    await _open_mini_app(page, url, old)
    assert "opened too long ago" in await page.inner_text("body")

    # Someone else's invitation: Jana is the school's, not the police's.
    await _open_mini_app(page, url, _init_data(2, "Jana", clock))
    assert "It is not for you." in await page.inner_text("body")


async def _petrs_invitation(bot: RunningBot) -> Invitation:
    return await _found(
        bot,
        select(Invitation)
        .join(Institution, Invitation.institution_id == Institution.id)
        .where(Institution.name == "Policie Cheb"),
    )


async def test_the_coordinator_sees_everyones_answers_as_a_grid_and_nobody_else_does(
    bot: RunningBot, browser: Browser, clock: FakeClock
) -> None:
    hana, petr, board = await _poll_with_a_guest(bot)
    poll = await until(petr, "When can")
    await answer_poll(petr, poll, {0: 1, 1: 3})
    await until(hana, "Answered 1 of 3")
    url = await _local(bot, _web_app_url(hana.messages[board.message_id], "as a grid"))

    page = await browser.new_page(viewport=browsers.DESKTOP)
    await _open_mini_app(page, url, _init_data(1, "Hana", clock))
    headers = await page.locator("thead th").all_inner_texts()
    assert headers[1:] == ["ZŠ Hradební", "Policie Cheb", "✉ Pediatrie Cheb"]
    first = await page.locator("tbody tr").nth(0).locator("td").all_inner_texts()
    second = await page.locator("tbody tr").nth(1).locator("td").all_inner_texts()
    assert first[1].startswith("✓") and second[1].startswith("✗")  # the police's answers
    assert first[2].startswith("·")  # the guest: no answer yet
    body = await page.inner_text("body")
    assert "No answer from: ZŠ Hradební, ✉ Pediatrie Cheb" in body
    await _accessible(page)
    await _screenshot(page, "web-board-desktop.png")

    await _open_mini_app(page, url, _init_data(3, "Petr", clock))
    assert "It is not for you." in await page.inner_text("body")
    async with bot.runtime.database.reading() as session:
        refused = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "conference.manage.refused")
        )
        assert len(refused.all()) == 1


async def test_a_member_who_has_not_confirmed_confidentiality_sees_nothing_in_the_mini_app(
    bot: RunningBot, browser: Browser, clock: FakeClock
) -> None:
    await _poll_with_a_guest(bot)
    url = await _local(bot, f"{PUBLIC}/app/poll/{(await _petrs_invitation(bot)).id}")
    # A second officer of the police joins and has not tapped the confirmation yet.
    karel = bot.sandbox.person(4, "Karel", language_code="cs")
    code = await bot.invite_code(Role.PARTICIPANT, "Policie Cheb", InstitutionKind.POLICE)
    await karel.send_text(f"/start {code}")
    await karel.next_message()
    await karel.press("English")
    await karel.next_message()

    page = await browser.new_page(viewport=browsers.PHONE)
    await _open_mini_app(page, url, _init_data(4, "Karel", clock))
    body = await page.inner_text("body")
    assert "First confirm in the chat that what you learn about a case stays confidential." in body
    assert "PK-2026" not in await page.content()
    await confirm_confidentiality(karel)
    await _open_mini_app(page, url, _init_data(4, "Karel", clock))
    assert "Case conference PK-2026-0001" in await page.inner_text("h1")


async def test_on_a_phone_a_board_of_forty_invitees_keeps_each_rows_time_in_sight(
    bot: RunningBot, browser: Browser, clock: FakeClock
) -> None:
    """Forty invitees are forty columns: scrolled sideways on a phone, each row still says
    which time it is."""
    hana, _petr, board = await _poll_with_a_guest(bot)
    async with bot.runtime.database.transaction() as session:
        conference = (await session.scalars(select(Conference))).one()
        names = [f"ZŠ a MŠ Cheb, Hradební {number + 1}" for number in range(37)]
        await invited_schools(session, conference, names, now=clock.now())  # 40 with the 3
    url = await _local(bot, _web_app_url(hana.messages[board.message_id], "as a grid"))
    page = await browser.new_page(viewport=browsers.PHONE)
    await _open_mini_app(page, url, _init_data(1, "Hana", clock))
    assert await page.locator("thead th").count() == 41
    rows = page.locator("tbody tr")
    await page.locator(".table-wrap").evaluate("wrap => { wrap.scrollLeft = wrap.scrollWidth; }")
    wrap = await page.locator(".table-wrap").bounding_box()
    assert wrap is not None
    for index in (0, await rows.count() - 1):
        row = await rows.nth(index).bounding_box()
        assert row is not None
        seen = await page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).closest('th, td').innerText",
            [wrap["x"] + 8, row["y"] + row["height"] / 2],
        )
        assert seen == await rows.nth(index).locator("th").inner_text()
    await _accessible(page)  # the grid that scrolls is reached and scrolled by keyboard too
