"""The poll's web page: for a guest from the personal link in their mail, and for a member
inside Telegram as a Mini App.

- `/p/{token}`: a guest's link. During the poll, the times as a grid of yes / if need be / no
  and Send; once a time is decided, the invitation with Accept / Tentative / Decline and a
  reason. Plain forms, no JavaScript; after Send, a redirect back to the page, which says the
  answer was sent.
- `/app/poll/{invitation}` and `/app/board/{conference}`: the Mini App. Telegram opens the
  page with `initData` in its address's fragment, which the browser keeps to itself; a few
  lines of script post it, and every form carries it again. It is checked (signature and age,
  `.initdata`) on every request; it says who the member is.

Every answer goes through the same services as the chat's buttons, and the chat is redrawn
afterwards by the wiring's `Redraw` (the coordinator's board, the poll messages, the offer).
No cookies; forms carry the link's own form key and are refused from another site's page;
requests are limited per link, per Mini App user and per address (`.limits`). Pages say
nothing of the child: the case by its code.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from bot.core import outbox
from bot.core.config import LOCALES
from bot.core.i18n import LANGUAGE_NAMES, Translator, pick_locale
from bot.core.models import Rsvp
from bot.core.runtime import Runtime
from bot.core.web_tables import LinkPurpose
from bot.services import board as boards
from bot.services import confidentiality, members, polls, web_links
from bot.services.board import Board, PollClosed
from bot.services.errors import PermissionDenied, ServiceError
from bot.services.polls import PollView
from bot.services.web_links import BadLink, GuestInvitation, GuestPoll
from bot.transport.web import words
from bot.transport.web.initdata import InitDataError, verify
from bot.transport.web.limits import PER_ADDRESS, PER_LINK, RateLimits
from scheduling.finder import Vote

logger = logging.getLogger(__name__)

INIT_DATA_AGE = timedelta(hours=1)  # a Mini App left open longer is opened again
MAX_FORM = 16 * 1024
VOTES = {"yes": Vote.YES, "maybe": Vote.IF_NEED_BE, "no": Vote.NO}
RSVPS = {"accepted": Rsvp.ACCEPTED, "tentative": Rsvp.TENTATIVE, "declined": Rsvp.DECLINED}


class Redraw(Protocol):
    """The chat after an answer from the page, as after the chat's own button: called in the
    answer's transaction (the board takes its turn to be drawn there); what it returns runs
    after the commit. `planned`: the answer planned outbox rows, so the outbox is woken."""

    def __call__(
        self,
        board: Board,
        poll_views: Sequence[PollView],
        offer: Board | None,
        *,
        planned: bool,
    ) -> Callable[[], Awaitable[None]]: ...


@dataclass(frozen=True)
class _Page:
    status: int
    template: str
    values: dict[str, Any]


class WebPages:
    def __init__(self, runtime: Runtime, redraw: Redraw) -> None:
        self.runtime = runtime
        self.redraw = redraw
        self.limits = RateLimits()
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        base = urlsplit(runtime.settings.web_url or "http://localhost/")
        self.origin = f"{base.scheme}://{base.netloc}"
        self.prefix = base.path.rstrip("/")  # the page's path behind the reverse proxy

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/p/{token}", self.guest_page)
        app.router.add_post("/p/{token}", self.guest_answer)
        app.router.add_get("/app/poll/{invitation:\\d{1,9}}", _in_telegram(self.boot))
        app.router.add_post("/app/poll/{invitation:\\d{1,9}}", _in_telegram(self.member_poll))
        app.router.add_get("/app/board/{conference:\\d{1,9}}", _in_telegram(self.boot))
        app.router.add_post(
            "/app/board/{conference:\\d{1,9}}", _in_telegram(self.coordinator_board)
        )

    # Shared.

    def _now(self) -> datetime:
        return self.runtime.clock.now()

    def _translator(self, locale: str, zone: ZoneInfo | None = None) -> Translator:
        return Translator(locale, zone or self.runtime.settings.zone, self.runtime.clock)

    def _locale(self, request: web.Request) -> str:
        asked = request.query.get("lang")
        if asked in LOCALES:
            return asked
        # The browser's languages by weight: the first of them the page has.
        for tag in _accepted(request.headers.get("Accept-Language", "")):
            if (found := pick_locale(tag, "")) in LOCALES:
                return found
        return self.runtime.settings.default_locale

    def _address(self, request: web.Request) -> str:
        """The client's address; behind a reverse proxy on this host, the one it forwards. An
        IPv6 one by its /64: each home and each server has a whole /64 to pick from."""
        remote = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded and remote in ("127.0.0.1", "::1"):
            remote = forwarded.split(",")[-1].strip()
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return remote
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        return str(address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else address)

    def _allowed(self, request: web.Request, key: str | None) -> bool:
        """Counts the request for its address and for `key` (a link, a Mini App user; None:
        not known yet), refused when either is over its limit."""
        now = self._now()
        return self.limits.allow("a:" + self._address(request), PER_ADDRESS, now) and (
            key is None or self.limits.allow(key, PER_LINK, now)
        )

    def _same_site(self, request: web.Request) -> bool:
        """A form posted from another site's page is refused (browsers send Origin on POST)."""
        origin = request.headers.get("Origin")
        if origin is None or origin == "null":
            return origin is None
        return origin in (self.origin, f"{request.scheme}://{request.host}")

    def _render(
        self, page: _Page, tr: Translator, *, languages: Sequence[Any] = ()
    ) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        values = {
            "lang": tr.locale,
            "brand": "Round Table",
            "languages": languages,
            "language_label": tr.gettext("Language"),
            "nonce": nonce,
            **page.values,
        }
        body = self.templates.get_template(page.template).render(values)
        return web.Response(
            status=page.status,
            text=body,
            content_type="text/html",
            headers={
                "Content-Security-Policy": (
                    f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
                    f"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
                ),
                "Referrer-Policy": "same-origin",  # the link never leaves in a Referer
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    def _message(
        self, tr: Translator, status: int, title: str, lines: Sequence[str], tone: str = "bad"
    ) -> web.Response:
        return self._render(
            _Page(status, "message.html", {"title": title, "lines": list(lines), "tone": tone}), tr
        )

    def _too_many(self, tr: Translator) -> web.Response:
        return self._message(tr, HTTPStatus.TOO_MANY_REQUESTS, *words.too_many(tr))

    async def _form(self, request: web.Request) -> dict[str, str] | None:
        if request.content_length is not None and request.content_length > MAX_FORM:
            return None
        try:  # the page's own limit also on the webhook's server, and for a chunked body
            form = await request.clone(client_max_size=MAX_FORM).post()
        except (ValueError, web.HTTPRequestEntityTooLarge):
            return None
        return {key: value for key, value in form.items() if isinstance(value, str)}

    # A guest's link.

    def _languages(self, request: web.Request) -> list[tuple[str, str, str]]:
        path = f"{self.prefix}/p/{request.match_info['token']}"
        return [(code, LANGUAGE_NAMES[code], f"{path}?lang={code}") for code in LOCALES]

    async def guest_page(self, request: web.Request) -> web.Response:
        tr = self._translator(self._locale(request))
        token = request.match_info["token"]
        if not self._allowed(request, "t:" + token[:64]):
            return self._too_many(tr)
        now = self._now()
        try:
            async with self.runtime.database.reading() as session:
                opened = await web_links.open_link(session, token, now=now)
                shown: GuestPoll | GuestInvitation
                if opened.link.purpose is LinkPurpose.POLL:
                    shown = await web_links.guest_poll(session, opened)
                else:
                    shown = await web_links.guest_invitation(session, opened)
        except BadLink as error:
            return self._bad_link(tr, error)
        tr = self._translator(tr.locale, shown.zone)
        sent = request.query.get("sent") == "1"
        action = f"{self.prefix}/p/{token}?lang={tr.locale}"
        if isinstance(shown, GuestPoll):
            page = _Page(HTTPStatus.OK, "poll.html", words.guest_poll(shown, tr, action, sent))
        else:
            page = _Page(
                HTTPStatus.OK, "invitation.html", words.guest_invitation(shown, tr, action, sent)
            )
        return self._render(page, tr, languages=self._languages(request))

    def _bad_link(self, tr: Translator, error: BadLink) -> web.Response:
        status = HTTPStatus.NOT_FOUND if error.reason == "unknown" else HTTPStatus.GONE
        return self._message(tr, status, *words.bad_link(tr, error))

    async def guest_answer(self, request: web.Request) -> web.Response:
        tr = self._translator(self._locale(request))
        token = request.match_info["token"]
        if not self._allowed(request, "t:" + token[:64]):
            return self._too_many(tr)
        form = await self._form(request)
        if not self._same_site(request) or form is None:
            return self._message(tr, HTTPStatus.FORBIDDEN, *words.refused_form(tr))
        now = self._now()
        try:
            async with self.runtime.database.transaction() as session:
                opened = await web_links.open_link(session, token, now=now)
                if not secrets.compare_digest(form.get("form_key", ""), opened.link.form_key):
                    raise _StaleForm
                if opened.link.purpose is LinkPurpose.POLL:
                    done = await web_links.answer_poll(
                        session, opened, _number(form.get("round")), _votes(form), now=now
                    )
                    after = self.redraw(
                        done.board, done.others, done.offer, planned=outbox.planned(session)
                    )
                else:
                    rsvp = RSVPS.get(form.get("rsvp", ""))
                    if rsvp is None:
                        raise _StaleForm
                    board = await web_links.answer_invitation(
                        session,
                        opened,
                        _number(form.get("sequence")),
                        rsvp,
                        form.get("reason"),
                        cipher=self.runtime.cipher,
                        now=now,
                    )
                    after = self.redraw(board, (), None, planned=outbox.planned(session))
        except BadLink as error:
            return self._bad_link(tr, error)
        except _StaleForm:
            return self._message(tr, HTTPStatus.FORBIDDEN, *words.refused_form(tr))
        except (PollClosed, boards.NotInPoll):
            return self._message(tr, HTTPStatus.CONFLICT, *words.poll_changed(tr))
        await after()
        raise web.HTTPSeeOther(
            f"{self.prefix}/p/{token}?lang={tr.locale}&sent=1",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "same-origin"},
        )

    # The Mini App.

    async def boot(self, request: web.Request) -> web.Response:
        """The page Telegram opens: it posts the `initData` from its fragment to itself."""
        tr = self._translator(self._locale(request))
        title, no_script = words.boot(tr)
        action = self.prefix + request.path
        return self._render(
            _Page(
                HTTPStatus.OK,
                "boot.html",
                {"title": title, "no_script": no_script, "action": action},
            ),
            tr,
        )

    async def _member(
        self, request: web.Request, form: dict[str, str] | None
    ) -> members.Actor | web.Response:
        tr = self._translator(self._locale(request))
        if not self._same_site(request) or form is None:
            return self._message(tr, HTTPStatus.FORBIDDEN, *words.refused_form(tr))
        if not self._allowed(request, None):  # before the signature: forgeries count too
            return self._too_many(tr)
        token = self.runtime.settings.token
        try:
            if token is None:
                raise InitDataError("missing")
            user_id = verify(
                form.get("init_data", ""),
                token.get_secret_value(),
                now=self._now(),
                max_age=INIT_DATA_AGE,
            )
        except InitDataError as error:
            logger.info("a Mini App request refused: initData %s", error.reason)
            return self._message(tr, HTTPStatus.FORBIDDEN, *words.not_telegram(tr, error.reason))
        if not self.limits.allow(f"u:{user_id}", PER_LINK, self._now()):
            return self._too_many(tr)
        async with self.runtime.database.reading() as session:
            actor = await members.find_actor(session, user_id)
            confirmed = actor is not None and await confidentiality.confirmed(
                session, actor.member_id
            )
        if actor is None:  # a stranger or a leaver: audited, as their button in the chat
            async with self.runtime.database.transaction() as session:
                await members.turned_away(session, user_id, request.path[:64], now=self._now())
            return self._message(tr, HTTPStatus.FORBIDDEN, *words.not_member(tr))
        if not confirmed:  # nothing of a case before confidentiality is confirmed in the chat
            tr = self._translator(actor.locale)
            return self._message(tr, HTTPStatus.FORBIDDEN, *words.confirm_first(tr))
        return actor

    async def member_poll(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        actor = await self._member(request, form)
        if isinstance(actor, web.Response):
            return actor
        assert form is not None
        tr = self._translator(actor.locale)
        invitation_id = int(request.match_info["invitation"])
        now = self._now()
        sent = False
        try:
            async with self.runtime.database.transaction() as session:
                if form.get("action") == "send":
                    done = await polls.send_votes(
                        session,
                        actor,
                        invitation_id,
                        _number(form.get("round")),
                        _votes(form),
                        now=now,
                    )
                    view = done.view
                    after = self.redraw(
                        done.board,
                        [done.view, *done.others],
                        done.offer,
                        planned=outbox.planned(session),
                    )
                    sent = True
                else:
                    view = await polls.poll(session, actor, invitation_id, now=now)
        except PermissionDenied:  # its audit entry is kept (bot.core.db)
            return self._message(tr, HTTPStatus.FORBIDDEN, *words.not_yours(tr))
        except (PollClosed, boards.NotInPoll):
            changed = words.poll_changed(tr, member=True)
            return self._message(tr, HTTPStatus.CONFLICT, *changed)
        if sent:
            await after()
        action = self.prefix + request.path
        values = words.member_poll(view, tr, action, sent, form.get("init_data", ""))
        return self._render(_Page(HTTPStatus.OK, "poll.html", values), tr)

    async def coordinator_board(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        actor = await self._member(request, form)
        if isinstance(actor, web.Response):
            return actor
        tr = self._translator(actor.locale)
        now = self._now()
        try:
            async with self.runtime.database.transaction() as session:
                conference = await boards.own_conference(
                    session, actor, int(request.match_info["conference"]), now=now
                )
                board = await boards.board_of(session, conference)
                zone = await web_links.zone_of_conference(session, conference)
        except PermissionDenied:  # its audit entry is kept (bot.core.db)
            return self._message(tr, HTTPStatus.FORBIDDEN, *words.not_yours(tr))
        except ServiceError:
            return self._message(tr, HTTPStatus.NOT_FOUND, *words.not_yours(tr))
        tr = self._translator(actor.locale, zone)
        values = words.board_page(board, tr)
        return self._render(_Page(HTTPStatus.OK, "board.html", values), tr)


TELEGRAM_WEB = "https://web.telegram.org"  # Telegram's web client shows a Mini App in a frame


def _in_telegram(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A Mini App's page (and its refusals) may be framed by Telegram's web client; a guest's
    page by nobody."""

    async def framed(request: web.Request) -> web.Response:
        response = await handler(request)
        policy = response.headers.get("Content-Security-Policy", "")
        response.headers["Content-Security-Policy"] = policy.replace(
            "frame-ancestors 'none'", f"frame-ancestors {TELEGRAM_WEB}"
        )
        return response

    return framed


class _StaleForm(Exception):
    """A form without its link's key (another site's, or an old page's), or without an answer."""


def _accepted(header: str) -> list[str]:
    """The language tags of an Accept-Language header, the most wanted first."""
    weighted: list[tuple[float, str]] = []
    for part in header.split(",")[:20]:
        tag, _, params = part.partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if tag.strip() and tag.strip() != "*" and weight > 0:
            weighted.append((weight, tag.strip()))
    return [tag for _, tag in sorted(weighted, key=lambda pair: -pair[0])]


def _number(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return -1  # no round or SEQUENCE is negative: refused as changed


def _votes(form: dict[str, str]) -> dict[int, Vote | None]:
    votes: dict[int, Vote | None] = {}
    for key, value in form.items():
        if key.startswith("slot-") and key[5:].isdigit():
            votes[int(key[5:])] = VOTES.get(value)
    return votes
