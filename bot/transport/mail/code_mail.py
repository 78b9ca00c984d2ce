"""The mail that carries a member's one-time code for a new address (`mail.code`, planned by
bot.services.addresses.request_code): plain text and HTML, in the member's language, made at
send time; moot once the code is no longer waiting (confirmed, replaced, expired, used up)."""

from __future__ import annotations

from email.message import EmailMessage
from html import escape

from bot.core.outbox import Letter
from bot.core.runtime import Runtime
from bot.services import addresses, mailing
from bot.transport.mail.delivery import MailKind
from bot.transport.mail.imip import Mailbox, notice_mail
from bot.transport.mail.notices import sender_of


def code_kinds(runtime: Runtime) -> dict[str, MailKind]:
    """The mail kinds of this module, for the wiring to register with the mail dispatcher."""

    async def render(letter: Letter) -> EmailMessage | None:
        now = runtime.clock.now()
        async with runtime.database.reading() as session:
            found = await addresses.code_mail(
                session, runtime.cipher, int(letter.payload["confirmation"]), now=now
            )
        if found is None or not mailing.same(found.address, letter.address):
            return None
        if runtime.settings.mail_from is None:
            return None
        tr = runtime.translator(found.locale)
        _ = tr.gettext
        lines = [
            _("Your confirmation code for Round Table:"),
            "",
            found.code,
            "",
            _("Type it in the chat with the bot. It is valid until {when}.").format(
                when=tr.datetime(found.expires_at)
            ),
            _("If you did not ask for it, ignore this mail: nothing changes."),
        ]
        html = "".join(
            f'<p><b style="font-size:1.5em;letter-spacing:0.2em">{escape(line)}</b></p>'
            if line == found.code
            else f"<p>{escape(line)}</p>"
            for line in lines
            if line
        )
        message = notice_mail(
            sender=sender_of(runtime.settings.mail_from),
            recipient=Mailbox(found.address),
            subject=_("Round Table: your confirmation code"),
            text="\n".join(lines) + "\n",
            html=f"<!DOCTYPE html><html><body>{html}</body></html>",
            sent_at=now,
        )
        message["Auto-Submitted"] = "auto-generated"
        return message

    return {addresses.CODE_KIND: MailKind(render=render)}
