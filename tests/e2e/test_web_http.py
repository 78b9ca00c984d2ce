"""The web page over plain HTTP (no browser needed): what protects it. Requests are limited per
link and per address; a form from another site, or without its link's key, changes nothing;
no cookies, nothing cached, no referrer; in webhook mode the webhook's server serves it."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import aiohttp
from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.models import AuditEntry, Conference
from bot.core.runtime import Runtime
from bot.sandbox import BotApiSandbox
from bot.sandbox.mail import MailPerson, MailServer
from bot.services import invitations, leavers, members
from bot.transport.web.limits import PER_ADDRESS, PER_LINK
from tests.e2e.conftest import RunningBot
from tests.e2e.mail_world import mail_server
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import answer_poll, until
from tests.e2e.test_web_page import (
    PAEDIATRICS,
    PUBLIC,
    _guest_invitation,
    _init_data,
    _link,
    _local,
    _petrs_invitation,
    _poll_with_a_guest,
    settings,
)
from tests.e2e.test_webhook import serving

__all__ = ["mail_server", "settings"]  # the fixtures: a bot with mail and the web page


@asynccontextmanager
async def webhook_server(runtime: Runtime, sandbox: BotApiSandbox) -> AsyncIterator[str]:
    """The bot in webhook mode, once it has told Telegram where it listens: the address of the
    webhook's server."""
    async with serving(runtime, sandbox) as (running, _stop, _task):
        for _ in range(500):  # until the bot has told Telegram where it listens
            if sandbox.webhook_url is not None:
                break
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{running.runtime.settings.webhook_port}"


async def _guest_link(bot: RunningBot, mail_server: MailServer) -> str:
    await _poll_with_a_guest(bot)
    doctor = MailPerson(mail_server, PAEDIATRICS, "Pediatrie Cheb")
    return await _local(bot, _link(await doctor.next_mail())) + "?lang=en"


async def _answered(bot: RunningBot) -> bool:
    return (await _guest_invitation(bot)).answered_at is not None


def _form(page: str) -> dict[str, str]:
    """The hidden fields and the first time's yes, as the page's form would send them."""
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    slot = re.search(r'name="(slot-\d+)" value="yes"', page)
    assert slot is not None
    return {**fields, slot.group(1): "yes", "action": "send"}


async def test_the_page_sets_no_cookie_is_not_cached_and_forms_from_elsewhere_change_nothing(
    bot: RunningBot, mail_server: MailServer
) -> None:
    link = await _guest_link(bot, mail_server)
    async with aiohttp.ClientSession() as http:
        async with http.get(link) as response:
            assert response.status == 200
            assert "Set-Cookie" not in response.headers
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers["Referrer-Policy"] == "same-origin"
            # A guest's page is framed by nobody; a Mini App's, and its refusals, by Telegram's
            # web client only.
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            form = _form(await response.text())
        mini_app = link.split("/p/")[0] + "/app/poll/1"
        async with http.get(mini_app) as boot, http.post(mini_app, data={}) as refused:
            for response in (boot, refused):
                assert (
                    "frame-ancestors https://web.telegram.org"
                    in (response.headers["Content-Security-Policy"])
                )
        foreign = {"Origin": "https://evil.example"}
        async with http.post(link, data=form, headers=foreign, allow_redirects=False) as refused:
            assert refused.status == 403
            assert "The answer was not sent" in await refused.text()
        stale = {**form, "form_key": "not-the-key"}
        async with http.post(link, data=stale, allow_redirects=False) as refused:
            assert refused.status == 403
        assert not await _answered(bot)
        async with http.post(link, data=form, allow_redirects=False) as sent:
            assert sent.status == 303
            assert sent.headers["Location"].endswith("?lang=en&sent=1")
            assert sent.headers["Cache-Control"] == "no-store"
        assert await _answered(bot)


async def test_one_link_asked_too_often_is_slowed_down_and_others_are_not(
    bot: RunningBot, mail_server: MailServer, clock: FakeClock
) -> None:
    link = await _guest_link(bot, mail_server)
    wrong = link.rsplit("/", 1)[0] + "/made-up-token?lang=en"
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(PER_LINK + 1):
            async with http.get(link) as response:
                statuses.append(response.status)
        assert statuses == [200] * PER_LINK + [429]
        async with http.get(link) as response:
            assert "Please wait a minute" in await response.text()
        async with http.get(wrong) as response:
            assert response.status == 404  # another link (here a wrong one) still answers
        clock.advance(timedelta(minutes=1))
        async with http.get(link) as response:
            assert response.status == 200


async def test_in_webhook_mode_the_webhooks_server_serves_the_page(
    runtime: Runtime, sandbox: BotApiSandbox
) -> None:
    async with (
        webhook_server(runtime, sandbox) as address,
        aiohttp.ClientSession() as http,
        http.get(f"{address}/p/made-up-token?lang=en") as response,
    ):
        assert response.status == 404
        assert "This link does not work" in await response.text()


async def test_forged_mini_app_requests_from_one_address_are_slowed_down_too(
    bot: RunningBot, mail_server: MailServer, clock: FakeClock
) -> None:
    """The limit per address holds before Telegram's signature is even looked at: a flood of
    made-up launch data is not checked (nor logged) without end."""
    await _guest_link(bot, mail_server)
    page = await _local(bot, f"{PUBLIC}/app/board/1?lang=en")
    forged = {"init_data": _init_data(1, "Hana", clock, token="7000000001:someone-elses")}
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(PER_ADDRESS + 1):
            async with http.post(page, data=forged) as response:
                statuses.append(response.status)
        assert statuses == [403] * PER_ADDRESS + [429]
        async with http.post(page, data=forged) as response:
            assert "Please wait a minute" in await response.text()
        clock.advance(timedelta(minutes=1))
        async with http.post(page, data=forged) as response:
            assert response.status == 403
            assert "could not confirm that it was opened from Telegram" in await response.text()


async def test_a_closed_poll_in_the_mini_app_says_so_and_offers_no_send(
    bot: RunningBot, mail_server: MailServer, clock: FakeClock
) -> None:
    await _guest_link(bot, mail_server)
    async with bot.runtime.database.reading() as session:
        conference = (await session.scalars(select(Conference))).one()
    police = await _petrs_invitation(bot)
    page = await _local(bot, f"{PUBLIC}/app/poll/{police.id}?lang=en")
    async with aiohttp.ClientSession() as http:
        async with http.post(page, data={"init_data": _init_data(3, "Petr", clock)}) as open_:
            assert open_.status == 200
            assert 'value="send"' in await open_.text()
        clock.set(conference.deadline + timedelta(minutes=1))
        async with http.post(page, data={"init_data": _init_data(3, "Petr", clock)}) as closed:
            assert closed.status == 200
            text = await closed.text()
    assert "The poll is closed." in text
    assert 'value="send"' not in text and "<form" not in text  # nothing to send


async def test_the_link_of_a_cancelled_conference_says_it_was_cancelled(
    bot: RunningBot, mail_server: MailServer, clock: FakeClock
) -> None:
    """Not "a newer mail has a link that works": a poll cancelled sends the guest no mail."""
    link = await _guest_link(bot, mail_server)
    async with bot.runtime.database.transaction() as session:
        hana = await members.find_actor(session, 1)
        assert hana is not None
        conference = (await session.scalars(select(Conference))).one()
        await invitations.cancel_conference(session, hana, conference.id, now=clock.now())
    async with aiohttp.ClientSession() as http, http.get(link) as response:
        assert response.status == 410
        text = await response.text()
    assert "This case conference was cancelled" in text
    assert "newest mail" not in text and "PK-2026" not in text


async def test_a_leaver_in_the_mini_app_sees_nothing_and_the_refusal_is_audited(
    bot: RunningBot, mail_server: MailServer, clock: FakeClock
) -> None:
    """As a leaver's button in the chat (`access.refused`, with the member)."""
    await _guest_link(bot, mail_server)
    async with bot.runtime.database.transaction() as session:
        petr = await members.find_actor(session, 3)
        assert petr is not None
        await leavers.deactivate_member(session, None, petr.member_id, now=clock.now())
    police = await _petrs_invitation(bot)
    page = await _local(bot, f"{PUBLIC}/app/poll/{police.id}?lang=en")
    async with (
        aiohttp.ClientSession() as http,
        http.post(page, data={"init_data": _init_data(3, "Petr", clock)}) as response,
    ):
        assert response.status == 403
        text = await response.text()
    assert "Round Table does not know your account." in text and "PK-2026" not in text
    async with bot.runtime.database.reading() as session:
        refused = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "access.refused"))
        ).all()
    assert [(entry.actor_id, entry.subject_id) for entry in refused] == [(petr.member_id, "3")]
    assert refused[0].details["request"] == f"/app/poll/{police.id}"


async def test_the_page_speaks_the_first_of_the_browsers_languages_it_has(
    bot: RunningBot, mail_server: MailServer
) -> None:
    """A German browser that also reads English gets English, not the deployment's Czech."""
    link = (await _guest_link(bot, mail_server)).removesuffix("?lang=en")
    async with aiohttp.ClientSession() as http:
        for accepted, expected in (
            ("de-DE,de;q=0.9,en-GB;q=0.8,en;q=0.7", "en"),
            ("de, uk;q=0.5, en;q=0.9", "en"),  # by weight, not by place
            ("fr", "cs"),  # none of them: the deployment's
            ("uk-UA", "uk"),
        ):
            async with http.get(link, headers={"Accept-Language": accepted}) as response:
                assert response.status == 200
                assert f'<html lang="{expected}">' in await response.text(), accepted


async def test_one_ipv6_network_counts_as_one_address(
    bot: RunningBot, mail_server: MailServer, clock: FakeClock
) -> None:
    """Every home on IPv6 has a /64 of its own: a new address out of it for each request is
    still the same address for the limit (the proxy on this host forwards the client's)."""
    link = await _guest_link(bot, mail_server)
    pages = link.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as http:
        statuses = []
        for number in range(PER_ADDRESS + 1):  # made-up links, each from a new address
            client = {"X-Forwarded-For": f"2001:db8:1:2::{number + 1:x}"}
            async with http.get(f"{pages}/made-up-{number}", headers=client) as response:
                statuses.append(response.status)
        assert statuses == [404] * PER_ADDRESS + [429]
        other = {"X-Forwarded-For": "2001:db8:1:3::1"}  # another home
        async with http.get(f"{pages}/made-up", headers=other) as response:
            assert response.status == 404


async def test_a_mini_app_page_of_an_earlier_round_sends_the_member_back_to_the_chat(
    bot: RunningBot, mail_server: MailServer, clock: FakeClock
) -> None:
    """A member has no link to open anew: the refusal says where the newest poll is."""
    await _guest_link(bot, mail_server)
    police = await _petrs_invitation(bot)
    page = await _local(bot, f"{PUBLIC}/app/poll/{police.id}?lang=en")
    init_data = _init_data(3, "Petr", clock)
    async with aiohttp.ClientSession() as http:
        async with http.post(page, data={"init_data": init_data}) as opened:
            form = {key: html.unescape(value) for key, value in _form(await opened.text()).items()}
        stale = {**form, "round": str(int(form["round"]) - 1)}  # as a page of the round before
        async with http.post(page, data=stale) as refused:
            assert refused.status == 409
            text = await refused.text()
    assert "The answer was not sent" in text
    assert "link" not in text and "open it again from the chat" in text


async def test_an_absurd_number_in_a_mini_app_address_is_not_found_not_an_error(
    bot: RunningBot, mail_server: MailServer, clock: FakeClock
) -> None:
    await _guest_link(bot, mail_server)
    async with aiohttp.ClientSession() as http:
        for path in ("/app/poll/99999999999999999999", "/app/board/99999999999999999999"):
            page = await _local(bot, f"{PUBLIC}{path}?lang=en")
            async with http.post(page, data={"init_data": _init_data(1, "Hana", clock)}) as got:
                assert got.status == 404, path  # no such invitation or conference


async def test_in_webhook_mode_a_form_sent_in_chunks_is_read_no_further_than_the_pages_limit(
    runtime: Runtime, sandbox: BotApiSandbox
) -> None:
    """The webhook's server takes bodies of up to 1 MB (updates); the page's forms are 16 kB
    at most, also when the body comes without its length (chunked)."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"form_key=x&reason="
        for _ in range(64):
            yield b"x" * 1024

    async with (
        webhook_server(runtime, sandbox) as address,
        aiohttp.ClientSession() as http,
        http.post(
            f"{address}/p/made-up-token?lang=en",
            data=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response,
    ):
        assert response.status == 403  # not read through to look the link up (404)
        assert "The answer was not sent" in await response.text()


async def test_answers_the_coordinator_entered_for_a_guest_say_who_entered_them(
    bot: RunningBot, mail_server: MailServer
) -> None:
    """The guest did not send them: the page does not thank them for it."""
    hana, _petr, board = await _poll_with_a_guest(bot)
    doctor = MailPerson(mail_server, PAEDIATRICS, "Pediatrie Cheb")
    link = await _local(bot, _link(await doctor.next_mail())) + "?lang=en"
    await hana.press("✍ Answers of ✉ Pediatrie Cheb", message_id=board.message_id)
    await answer_poll(hana, await until(hana, "invited by e-mail"), {0: 1})
    await until(hana, "Answered 1 of 3")
    async with aiohttp.ClientSession() as http, http.get(link) as response:
        text = await response.text()
    assert "Answered by Hana" in text and "Thank you" not in text
    assert re.search(r'name="slot-\d+" value="yes" checked', text)  # what she entered
    async with aiohttp.ClientSession() as http, http.post(link, data=_form(text)) as sent:
        assert "Thank you, your answer was sent." in await sent.text()
