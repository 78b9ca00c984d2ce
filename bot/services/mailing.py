"""The rules about addresses mail is sent to: one the mail server refused for good (a 5xx) is
failing, nothing more is sent to it until it is given again, and whoever must fix it is told.

- `failing(session, address)`: whether mail to the address is held back;
- `mark_failing(session, address, reply, now)`: the server refused it ("550 5.1.1");
- `clear(session, address)`: the address was given or confirmed anew, mail may go to it again
  (called when a member confirms an address, an admin sets an institution's, a coordinator
  adds a guest);
- `refused(session, ...)`: plans the chat notice (`REFUSED`) for the coordinator of the
  conference the mail was about, or else for the member the mail was for;
- `refusal_view(session, payload)`: what that notice says, read when it is sent.

Addresses are compared in lower case. A notice's payload holds ids only; the notice may show
the address itself (a professional contact, which the coordinator needs to put right), never
anything of the child.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.db import insert_if_absent
from bot.core.mail_tables import MailAddress
from bot.core.models import Case, Channel, Conference, OutboxRow

REFUSED = "mail.refused"  # the outbox kind of the chat notice
_SUBJECT_PREFIX = "conference:"
# A notice that could not be sent for a week tells nobody anything any more.
_NOTICE_EXPIRES = timedelta(days=7)


def normal(address: str) -> str:
    """An address as the table keeps it."""
    return address.strip().lower()


def same(first: str | None, second: str | None) -> bool:
    """Whether two addresses are the same mailbox, as far as the bot can tell (case aside)."""
    return first is not None and second is not None and normal(first) == normal(second)


async def failing(session: AsyncSession, address: str) -> bool:
    """Whether the server refused this address for good and it was not given again since."""
    found = await session.scalar(
        select(MailAddress.address).where(MailAddress.address == normal(address))
    )
    return found is not None


async def mark_failing(session: AsyncSession, address: str, reply: str, now: datetime) -> datetime:
    """Note the server's refusal (its code, e.g. "550 5.1.1"); an address already failing
    keeps its first refusal. Returns since when it fails."""
    await insert_if_absent(
        session,
        MailAddress,
        {"address": normal(address), "failing_since": now, "reply": reply[:200]},
        ["address"],
    )
    since = await session.scalar(
        select(MailAddress.failing_since).where(MailAddress.address == normal(address))
    )
    assert since is not None
    return since


async def clear(session: AsyncSession, address: str) -> bool:
    """The address was given anew: mail goes to it again. True if it was failing."""
    result = await session.execute(
        delete(MailAddress).where(MailAddress.address == normal(address))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def conference_of(subject: str) -> int | None:
    """The conference an outbox subject ("conference:N") names, if any."""
    if not subject.startswith(_SUBJECT_PREFIX):
        return None
    number = subject.removeprefix(_SUBJECT_PREFIX)
    return int(number) if number.isdigit() else None


async def refused(
    session: AsyncSession,
    *,
    letter_subject: str,
    member_id: int | None,
    address: str,
    now: datetime,
    mail_id: int,
) -> int | None:
    """Plan the chat notice of a refused address (mail row `mail_id`, already marked failing):
    to the member whose address it is, or for a guest's, to the coordinator of the conference
    the mail was about. Returns the member told, or None when there is nobody to tell. One
    notice per subject and address for as long as the address keeps failing; under a subject
    of its own, so that a new time or a cancellation of the conference does not cancel it."""
    conference_id = conference_of(letter_subject)
    # A member's own address is theirs to put right, and theirs alone to see: they are told.
    # A guest's (an institution's contact, or a named person's) is the coordinator's to fix.
    recipient = member_id
    if recipient is None and conference_id is not None:
        recipient = await session.scalar(
            select(Conference.coordinator_id).where(Conference.id == conference_id)
        )
    if recipient is None:
        return None
    since = await session.scalar(
        select(MailAddress.failing_since).where(MailAddress.address == normal(address))
    )
    epoch = int(since.timestamp()) if since is not None else int(now.timestamp())
    digest = hashlib.sha256(normal(address).encode()).hexdigest()[:16]
    payload: dict[str, Any] = {"mail": mail_id}
    if conference_id is not None:
        payload["conference"] = conference_id
    await outbox.plan(
        session,
        [
            outbox.Planned(
                key=f"{REFUSED}:{letter_subject}:{digest}:{epoch}",
                kind=REFUSED,
                subject=f"{REFUSED}:{letter_subject}"[:48],
                member_id=recipient,
                due_at=now,
                expires_at=now + _NOTICE_EXPIRES,
                payload=payload,
            )
        ],
        now=now,
    )
    return recipient


@dataclass(frozen=True)
class RefusalView:
    """What the notice of a refused address says."""

    address: str
    reply: str
    case_code: str | None  # the conference's case, when the mail was about one
    own: bool  # the notice goes to the person whose address it is


async def refusal_view(
    session: AsyncSession, payload: dict[str, Any] | Any, recipient_id: int
) -> RefusalView | None:
    """The notice's content now; None when it no longer applies (the address was given anew
    meanwhile, or the mail row is gone)."""
    row = await session.get(OutboxRow, int(payload["mail"]))
    if row is None or row.channel is not Channel.MAIL or row.address is None:
        return None
    reply = await session.scalar(
        select(MailAddress.reply).where(MailAddress.address == normal(row.address))
    )
    if reply is None:
        return None
    code = None
    if "conference" in payload:
        code = await session.scalar(
            select(Case.code)
            .join(Conference, Conference.case_id == Case.id)
            .where(Conference.id == int(payload["conference"]))
        )
    return RefusalView(
        address=row.address,
        reply=reply,
        case_code=code,
        own=row.member_id == recipient_id,
    )
