"""The demo's browser: the web page (bot.transport.web) opened and its forms sent over real HTTP,
as a guest's browser does from the link in her mail and as Telegram's Mini App does for a
member; each page also read out as text, for the demo's transcript."""

from __future__ import annotations

import json
import re
from email.message import EmailMessage
from html.parser import HTMLParser
from urllib.parse import urljoin

import aiohttp

from bot.sandbox.mail import Received
from bot.sandbox.models import BotMessage, inline_keyboard
from bot.transport.web.initdata import sign

LINK = re.compile(r"https://\S+/p/[A-Za-z0-9_-]+")


class _Reader(HTMLParser):
    """A page's words as a person sees them: headings, lines, the times with their answers
    (the chosen one marked), buttons; and its form's fields, to send them back."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.fields: dict[str, str] = {}
        self.choices: dict[str, list[str]] = {}  # a time's field -> its values in order
        self.action = ""
        self._text: list[str] = []
        self._skip = 0  # inside <style> or <script>
        self._checked = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag in ("style", "script", "title"):
            self._skip += 1
        elif tag == "form":
            self.action = found.get("action", "")
        elif tag == "input" and found.get("type") == "hidden":
            self.fields[found["name"]] = found.get("value", "")
        elif tag == "input" and found.get("type") == "radio":
            self.choices.setdefault(found["name"], []).append(found["value"])
            self._checked = "checked" in found
        elif tag in ("h1", "h2", "p", "li", "legend", "label", "button", "th", "td", "tr"):
            self._flush()
        elif tag == "a":
            self._text.append(" ")
        if tag == "button":
            self._text.append("[")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1
        elif tag == "label":
            mark = "(•) " if self._checked else "( ) "
            self._checked = False
            self._text.insert(0, mark)
            self._flush(indent="    ")
        elif tag == "button":
            self._text.append("]")
            self._flush()
        elif tag in ("h1", "h2", "p", "li", "legend", "tr"):
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._text.append(data)

    def _flush(self, indent: str = "") -> None:
        text = " ".join("".join(self._text).split())
        self._text = []
        if text and text not in ("[]", "( )", "(•)"):
            self.lines.append(indent + text)


def read(html: str) -> _Reader:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader


class DemoBrowser:
    """Opens the page's public addresses on the bot's own port, as a reverse proxy forwards
    them, and keeps what each page said."""

    def __init__(self, public: str, port: int) -> None:
        self.public = public.rstrip("/")
        self.local = f"http://127.0.0.1:{port}"
        self.pages: list[str] = []

    def _url(self, url: str) -> str:
        return url.replace(self.public, self.local, 1)

    def _keep(self, html: str) -> _Reader:
        page = read(html)
        self.pages.append("\n".join(page.lines))
        return page

    async def open(self, url: str) -> _Reader:
        async with aiohttp.ClientSession() as http, http.get(self._url(url)) as response:
            return self._keep(await response.text())

    async def send(self, page: _Reader, answers: dict[int, str], **extra: str) -> _Reader:
        """The form of `page` sent with the `answers` (a time's index -> yes / maybe / no; the
        times not named left unmarked) and the `extra` fields (a button's value)."""
        times = list(page.choices)
        form = {**page.fields, **{times[i]: value for i, value in answers.items()}, **extra}
        async with (
            aiohttp.ClientSession() as http,
            http.post(urljoin(self.local, page.action), data=form) as response,
        ):
            return self._keep(await response.text())

    async def mini_app(self, url: str, user_id: int, name: str, token: str, at: int) -> _Reader:
        """A member opens the Mini App's page from its button: Telegram signs who they are."""
        init_data = sign(
            {
                "user": json.dumps({"id": user_id, "first_name": name}, separators=(",", ":")),
                "auth_date": str(at),
                "query_id": f"demo{user_id}",
            },
            token,
        )
        async with aiohttp.ClientSession() as http:
            async with http.get(self._url(url)) as response:  # the page that posts initData
                boot = read(await response.text())
            target = urljoin(self.local, boot.action)
            async with http.post(target, data={"init_data": init_data}) as response:
                return self._keep(await response.text())


def link_in(text: str) -> str:
    found = LINK.search(text)
    if found is None:
        raise RuntimeError("the mail has no link to the page")
    return found.group(0)


def mail_text(mail: Received) -> str:
    """A mail's plain-text part, as a mail program shows it."""
    body = mail.message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def web_app_url(message: BotMessage) -> str:
    """The address of a message's Mini App button."""
    for row in inline_keyboard(message.reply_markup):
        for button in row:
            if "web_app" in button:
                return str(button["web_app"]["url"])
    raise RuntimeError("the message has no Mini App button")
