"""Sending the outbox's mail rows (bot.core.outbox, `Channel.MAIL`) through SMTP.

Being built (issue 22): the interface the renderers are written against.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage

from bot.core.outbox import Letter

# A mail row's renderer: the message to send, made at send time from what is true then, in the
# recipient's language; None when the row is moot (skipped).
RenderMail = Callable[[Letter], Awaitable[EmailMessage | None]]


@dataclass(frozen=True)
class MailKind:
    render: RenderMail
