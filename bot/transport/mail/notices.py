"""What Round Table sends by e-mail about conferences: the renderers of the outbox's mail rows
(`bot.services.invitation_mail`), registered by the wiring with `mail_kinds(runtime)`.

Each renderer makes the mail when it is sent, from what is true then, in the reader's language
(a member's own; a guest's: the deployment's default) with times in the district's zone, and
returns None when the row is moot (an earlier SEQUENCE or round, an answer given, an address
no longer the reader's). It says what the chat says: the case by its code only, the time, the
length, the place and who is invited (institutions by name). The invitation, a new time and
the cancellation carry the calendar of `bot.services.calendar_files` (the ORGANIZER is the
bot's mailbox; the reader's own address is the only real one); the rest is text and HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr
from html import escape
from zoneinfo import ZoneInfo

from bot.core.i18n import Translator
from bot.core.method_record import kind_label
from bot.core.models import InvitationKind, Rsvp
from bot.core.outbox import Letter
from bot.core.runtime import Runtime
from bot.core.web_tables import LinkPurpose
from bot.services import cases, invitation_mail, invitation_views, web_links
from bot.services.calendar_files import attendee_name, calendar
from bot.services.invitation_mail import MailReader, PollMail
from bot.services.invitation_views import InviteView
from bot.transport.mail.delivery import MailKind
from bot.transport.mail.imip import Mailbox, notice_mail
from bot.transport.mail.imip import invitation_mail as imip_mail


def mail_kinds(runtime: Runtime) -> dict[str, MailKind]:
    """The renderers of the conference's mail rows, by kind."""
    notices = _Notices(runtime)
    return {
        invitation_mail.MAIL_INVITE: MailKind(notices.invite),
        invitation_mail.MAIL_CANCEL: MailKind(notices.cancel),
        invitation_mail.MAIL_REMINDER: MailKind(notices.reminder),
        invitation_mail.MAIL_POLL: MailKind(notices.poll),
        invitation_mail.MAIL_POLL_NUDGE: MailKind(notices.poll_nudge),
        cases.CLOSED_MAIL: MailKind(notices.case_closed),
    }


def sender_of(mail_from: str | None) -> Mailbox:
    """The bot's mailbox (`settings.mail_from`): the sender and the ORGANIZER."""
    name, address = parseaddr(mail_from or "")
    if "@" not in address:
        raise ValueError("sending mail needs ROUNDTABLE_MAIL_FROM")
    return Mailbox(address, name)


class _Notices:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.sender = sender_of(runtime.settings.mail_from)

    def _translator(self, locale: str | None, zone: ZoneInfo) -> Translator:
        """The reader's language (a guest's: the default), times in the district's zone."""
        return Translator(locale or self.runtime.settings.default_locale, zone, self.runtime.clock)

    async def _view(
        self, letter: Letter, *, everyone: bool = True, current: bool = True
    ) -> tuple[InviteView, MailReader] | None:
        """The invitation as the letter's reader sees it now; None if the row is moot."""
        payload = letter.payload
        previous = payload.get("previous")
        invitation_id = payload.get("invitation")
        async with self.runtime.database.reading() as session:
            reader = await invitation_mail.reader_of(
                session, letter.member_id, invitation_id, letter.address, current=current
            )
            if reader is None:
                return None
            view = await invitation_views.invite_view(
                session,
                int(payload["conference"]),
                invitation_id,
                letter.member_id,
                now=self.runtime.clock.now(),
                previous=datetime.fromisoformat(previous) if previous else None,
                attendees=everyone,
                mailbox=self.sender.address,
                locale=reader.locale or self.runtime.settings.default_locale,
            )
        if view is None or view.sequence != payload.get("sequence"):
            return None
        return view, reader

    async def _guest_link(self, invitation_id: object, purpose: LinkPurpose) -> str | None:
        """A guest's personal link to the web page, made on first need; None without a page."""
        if self.runtime.settings.web_url is None or not isinstance(invitation_id, int):
            return None
        async with self.runtime.database.transaction() as session:
            token = await web_links.guest_link(
                session, self.runtime.cipher, invitation_id, purpose, now=self.runtime.clock.now()
            )
        return None if token is None else self.runtime.settings.web_address(f"/p/{token}")

    def _calendar_mail(
        self, letter: Letter, view: InviteView, reader: MailReader, subject: str, body: _Body
    ) -> EmailMessage:
        tr = self._translator(view.locale, view.zone)
        return imip_mail(
            sender=self.sender,
            recipient=Mailbox(letter.address, reader.name),
            subject=subject,
            text=body.text(),
            html=body.html(),
            calendar=calendar(view, tr, address=letter.address),
            sent_at=self.runtime.clock.now(),
        )

    def _notice(
        self, letter: Letter, reader: MailReader, subject: str, body: _Body
    ) -> EmailMessage:
        return notice_mail(
            sender=self.sender,
            recipient=Mailbox(letter.address, reader.name),
            subject=subject,
            text=body.text(),
            html=body.html(),
            sent_at=self.runtime.clock.now(),
        )

    async def invite(self, letter: Letter) -> EmailMessage | None:
        found = await self._view(letter)
        if found is None or found[0].cancelled:
            return None
        view, reader = found
        tr = self._translator(view.locale, view.zone)
        _ = tr.gettext
        moved = view.previous_starts_at is not None and view.previous_starts_at != view.starts_at
        if moved:
            subject = _("New time: case conference {code}").format(code=view.case_code)
        else:
            subject = _("Invitation: case conference {code}").format(code=view.case_code)
        body = _invitation_body(view, tr)
        if (
            view.invitation_id is not None
            and not moved
            and view.rsvp is Rsvp.ACCEPTED
            and view.rsvp_by_id == view.reader_id  # the reader's own (a guest's: None)
        ):
            # Accepted before it could be answered: the "yes" to this time in the poll.
            body.lines.append(
                _(
                    "You said yes to this time in the poll, so you are marked as coming; you can "
                    "still change it."
                )
            )
        if view.invitation_id is not None:
            link = None
            if view.reader_id is None:
                link = await self._guest_link(view.invitation_id, LinkPurpose.INVITATION)
            if link is not None:
                body.lines.append(_("Please answer with your calendar's buttons or on the page."))
                body.link = (_("Answer the invitation"), link)
            elif view.reader_id is None:
                body.lines.append(_("Please answer with your calendar's buttons."))
            else:
                body.lines.append(
                    _("Please answer in Round Table (Telegram) or with your calendar's buttons.")
                )
        return self._calendar_mail(letter, view, reader, subject, body)

    async def cancel(self, letter: Letter) -> EmailMessage | None:
        # The CANCEL goes to the address that was mailed the invitation, also a changed one.
        found = await self._view(letter, current=False)
        if found is None or not found[0].cancelled:
            return None
        view, reader = found
        tr = self._translator(view.locale, view.zone)
        _ = tr.gettext
        subject = _("Cancelled: case conference {code}").format(code=view.case_code)
        body = _Body(
            _("Case conference {code}").format(code=view.case_code),
            [
                _(
                    "The case conference {code} on {when} is cancelled. Your calendar removes it "
                    "with this message."
                ).format(code=view.case_code, when=tr.datetime(view.starts_at))
            ],
        )
        return self._calendar_mail(letter, view, reader, subject, body)

    async def reminder(self, letter: Letter) -> EmailMessage | None:
        found = await self._view(letter, everyone=False)
        if found is None:
            return None
        view, reader = found
        if view.cancelled or view.rsvp is Rsvp.DECLINED:
            return None
        tr = self._translator(view.locale, view.zone)
        _ = tr.gettext
        subject = _("Reminder: case conference {code}").format(code=view.case_code)
        body = _invitation_body(view, tr, head=_("Reminder"))
        if view.reader_id is None:
            link = await self._guest_link(view.invitation_id, LinkPurpose.INVITATION)
            if link is not None:
                body.link = (_("Change your answer"), link)
        return self._notice(letter, reader, subject, body)

    async def poll(self, letter: Letter) -> EmailMessage | None:
        return await self._poll(letter, nudge=False)

    async def poll_nudge(self, letter: Letter) -> EmailMessage | None:
        return await self._poll(letter, nudge=True)

    async def _poll(self, letter: Letter, *, nudge: bool) -> EmailMessage | None:
        payload = letter.payload
        async with self.runtime.database.reading() as session:
            reader = await invitation_mail.reader_of(
                session, None, payload.get("invitation"), letter.address
            )
            if reader is None:
                return None
            poll = await invitation_mail.poll_mail(
                session,
                int(payload["conference"]),
                int(payload["invitation"]),
                int(payload["round"]),
                now=self.runtime.clock.now(),
            )
        if poll is None:
            return None
        tr = self._translator(reader.locale, poll.zone)
        subject = tr.gettext("Date poll: case conference {code}").format(code=poll.case_code)
        link = await self._guest_link(payload.get("invitation"), LinkPurpose.POLL)
        return self._notice(letter, reader, subject, _poll_body(poll, tr, nudge=nudge, link=link))

    async def case_closed(self, letter: Letter) -> EmailMessage | None:
        """A guest's word that the case is closed: its code and outcome, nothing more."""
        payload = letter.payload
        async with self.runtime.database.reading() as session:
            reader = await invitation_mail.reader_of(
                session, None, payload.get("invitation"), letter.address
            )
            closed = await cases.closed_case(session, int(payload["case"]))
        if reader is None or closed is None:
            return None
        tr = self._translator(reader.locale, self.runtime.settings.zone)
        _ = tr.gettext
        body = _Body(
            _("The case {code} is closed").format(code=closed.code),
            [
                _("Outcome: {outcome}.").format(outcome=cases.outcome_label(closed.outcome, tr)),
                _("No more case conferences are planned for it. Thank you for taking part."),
            ],
        )
        subject = _("Closed: case {code}").format(code=closed.code)
        return self._notice(letter, reader, subject, body)


class _Body:
    """A mail's words, as plain text and as simple HTML (everything escaped, inline styles,
    nothing loaded from elsewhere)."""

    def __init__(
        self, title: str, lines: list[str], items: Sequence[str] = (), after: Sequence[str] = ()
    ) -> None:
        self.title = title
        self.lines = lines
        self.items = list(items)
        self.after = list(after)
        self.link: tuple[str, str] | None = None  # a guest's page: (what it does, its address)

    def text(self) -> str:
        parts = [self.title, "", *self.lines]
        if self.items:
            parts += ["", *(f"- {item}" for item in self.items), ""]
        parts += self.after
        if self.link is not None:
            parts += ["", f"{self.link[0]}:", self.link[1]]
        return "\n".join(parts).strip() + "\n"

    def html(self) -> str:
        style = "font-family:Arial,Helvetica,sans-serif;font-size:15px;color:#1a1a1a"
        parts = [
            '<!DOCTYPE html><html><head><meta charset="utf-8"></head>',
            f'<body style="{style}">',
            f'<h2 style="font-size:18px;margin:0 0 12px">{escape(self.title)}</h2>',
        ]
        parts += [f'<p style="margin:0 0 8px">{escape(line)}</p>' for line in self.lines]
        if self.items:
            parts.append('<ul style="margin:0 0 8px">')
            parts += [f"<li>{escape(item)}</li>" for item in self.items]
            parts.append("</ul>")
        parts += [f'<p style="margin:0 0 8px">{escape(line)}</p>' for line in self.after]
        if self.link is not None:
            button = (
                "display:inline-block;padding:12px 20px;background:#0b57d0;color:#ffffff;"
                "border-radius:8px;font-weight:bold;text-decoration:none"
            )
            parts.append(
                f'<p style="margin:16px 0"><a href="{escape(self.link[1])}" style="{button}">'
                f"{escape(self.link[0])}</a></p>"
            )
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _invitation_body(view: InviteView, tr: Translator, *, head: str | None = None) -> _Body:
    """The invitation's words, as the chat's message says them (the case by its code only)."""
    _ = tr.gettext
    lines = [head] if head else []
    lines += [
        _("Kind: {kind}").format(kind=kind_label(view.method.kind, tr)),
        _("{when} · {minutes} min").format(when=tr.datetime(view.starts_at), minutes=view.minutes),
        _("Place: {place}").format(place=view.place),
    ]
    if view.method.has_goal and view.invitation_id is not None:
        lines.append(goal_by_mail(view, tr))
    if view.invitation_id is not None:
        lines.append(
            _("Invited by {name}, {institution}").format(
                name=view.inviter.name, institution=view.inviter.institution
            )
        )
    if view.previous_starts_at is not None and view.previous_starts_at != view.starts_at:
        lines.append(
            _("The time has changed: now {new}, before {old}.").format(
                new=tr.datetime(view.starts_at), old=tr.datetime(view.previous_starts_at)
            )
        )
    own = next((a for a in view.attendees if a.invitation_id == view.invitation_id), None)
    if view.invitation_id is None:
        lines.append(_("You chair it. The participants' answers are on the attendance message."))
    elif own is not None and own.kind is InvitationKind.INSTITUTION:
        required = _("required") if own.required else _("optional")
        lines.append(
            _("You are invited for {institution} ({required}).").format(
                institution=own.name, required=required
            )
        )
    elif view.reader_id is None:
        required = _("required") if view.required else _("optional")
        lines.append(_("You are invited ({required}).").format(required=required))
    else:
        lines.append(_("You are invited as a guardian of the child."))
    if view.attendees and len(view.attendees) > 1:
        names = ", ".join(attendee_name(attendee, tr) for attendee in view.attendees)
        lines.append(_("Invited: {names}").format(names=names))
    return _Body(_("Case conference {code}").format(code=view.case_code), lines)


def goal_by_mail(view: InviteView, tr: Translator) -> str:
    """A mail says only where the goal is: in the bot, never in the mail."""
    if view.reader_id is None:  # a guest, not in the bot
        return tr.gettext(
            "The goal of the conference is kept in Round Table, not sent by e-mail; {name} "
            "will tell it to you."
        ).format(name=view.inviter.name)
    return tr.gettext(
        "The goal of the conference is in the bot: tap 🎯 Goal of the conference on the "
        "invitation in Telegram."
    )


def _poll_body(poll: PollMail, tr: Translator, *, nudge: bool, link: str | None) -> _Body:
    _ = tr.gettext
    lines = [_("Reminder")] if nudge else []
    lines.append(
        _(
            "We are looking for a time for the case conference {code} ({minutes} min, {place}). "
            "These times are offered:"
        ).format(code=poll.case_code, minutes=poll.minutes, place=poll.place)
    )
    after = [
        _("Invited by {name}, {institution}").format(
            name=poll.coordinator, institution=poll.institution
        ),
    ]
    if link is None:
        after.append(
            _("{coordinator} will ask you which of them suit you, before {deadline}.").format(
                coordinator=poll.coordinator, deadline=tr.datetime(poll.deadline)
            )
        )
    else:
        after.append(
            _(
                "Please say which of them suit you on your personal page, before {deadline}. "
                "The link is yours only: do not forward this mail."
            ).format(deadline=tr.datetime(poll.deadline))
        )
    body = _Body(
        _("Case conference {code}").format(code=poll.case_code),
        lines,
        [tr.datetime(moment) for moment in poll.times],
        after,
    )
    if link is not None:
        body.link = (_("Answer the poll"), link)
    return body
