"""A calendar's answer read back from the organizer's mailbox (an iTIP REPLY, RFC 5546, sent as
iMIP, RFC 6047), applied exactly as the chat's Accept / Tentative / Decline.

Why the bot reads a mailbox (IMAP, `bot.transport.mail.imap`) rather than receiving the mail
itself (an SMTP/LMTP forward to a port of the bot's): a Czech authority's Exchange and a small
town's hosted mail both give the bot a mailbox readable over IMAP with no change on the mail
server; a forward to the bot needs their mail administrator (a transport rule, often refused)
and an inbound port open to the internet on the bot's host. With a mailbox, mail that arrives
while the bot is down simply waits for it.

A reply counts only when everything in it agrees with what the bot sent (else it is ignored,
audited as "mail.reply_ignored" with why, and nothing changes; nothing here raises for bad
input):

- the mail is at most `MAX_BYTES`, parses, and has a `text/calendar` part (inline or attached)
  with METHOD:REPLY and one event with exactly one ATTENDEE;
- the event's UID is a conference's, the conference is scheduled and not over, and its
  SEQUENCE is the conference's current one (an answer to an earlier time is ignored);
- the ATTENDEE's address belongs to that conference: a member's confirmed address, where that
  member may answer for one of its invitations (`bot.services.board.answerers`, or the
  colleague it was handed to), or a guest invitation's address;
- the mail's From: is that same address (a calendar answers from the attendee's own mailbox);
- PARTSTAT is ACCEPTED, TENTATIVE or DECLINED (NEEDS-ACTION and DELEGATED change nothing).

Then it is recorded by `bot.services.replies.record_answer`, as the chat's button records it,
with the COMMENT of a decline kept as its reason, and audited as "invitation.answered" with
channel "mail". Each mail is applied once: its `InboundMail` row (the SHA-256 of its
Message-ID, or of the whole mail without one) is written in the same transaction, and a mail
seen before is skipped, also after a crash between the commit and flagging it read. The audit
names the conference only, never an address or anything the mail says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses

from icalendar import Calendar, Event
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.db import insert_if_absent
from bot.core.mail_tables import InboundMail
from bot.core.models import (
    Conference,
    ConferenceStatus,
    Invitation,
    InvitationKind,
    Member,
    Rsvp,
)
from bot.services import audit, mailing
from bot.services.board import Board, answerers, board_of, invitations_of
from bot.services.invitation_views import InviteView, view_of
from bot.services.replies import REASON_MAX, copies, record_answer

MAX_BYTES = 256_000  # a calendar reply is a few kB; anything near this is not one
# The header block, and a From: header, past which a mail is not a calendar's reply either; and
# parsed as a plain (compat32) message only: the structured header parser takes minutes over a
# From: of many thousand addresses, on the event loop.
HEADER_MAX = 16_384
FROM_MAX = 1_000
UID_MAX = 255
ADDRESS_MAX = 254
CALENDAR_TYPES = ("text/calendar", "application/ics")
ANSWERS = {"ACCEPTED": Rsvp.ACCEPTED, "TENTATIVE": Rsvp.TENTATIVE, "DECLINED": Rsvp.DECLINED}
IGNORED = "mail.reply_ignored"
_APPLYING = "applying"  # an InboundMail row of this very transaction


@dataclass(frozen=True)
class Applied:
    """A reply applied; what the chat must redraw: the answering member's copies of the
    invitation (`messages`, drawn from `view`; none for a guest), the coordinator's board."""

    conference_id: int
    invitation_id: int
    rsvp: Rsvp
    member_id: int | None  # None: a guest answered
    view: InviteView | None  # the invitation as the member who answered reads it
    messages: list[tuple[int, int, str]]  # chat, message, locale of every copy to redraw
    board: Board
    flagged: bool  # a decline flagged to the coordinator
    planned: bool  # outbox rows were planned: the dispatcher needs waking after the commit


@dataclass(frozen=True)
class Ignored:
    """A mail that changed nothing, and why ("duplicate" ones were applied or ignored before,
    and are not audited again)."""

    reason: str
    conference_id: int | None = None


Outcome = Applied | Ignored


class _Refused(Exception):
    def __init__(self, reason: str, conference_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.conference_id = conference_id


@dataclass(frozen=True)
class _Reply:
    uid: str
    sequence: int
    attendee: str  # lower case
    partstat: str
    comment: str | None


async def apply(
    session: AsyncSession,
    raw: bytes,
    *,
    now: datetime,
    cipher: Cipher,
    organizer: str,
    size: int | None = None,
) -> Outcome:
    """Apply one mail read from the organizer's mailbox, in the caller's transaction.

    `raw` is the whole mail, or only its header when the reader did not download a mail whose
    `size` (the server's RFC822.SIZE) is over `MAX_BYTES`. `organizer` is the bot's own address:
    mail from it (a copy of what the bot sent) is ignored."""
    size = len(raw) if size is None else size
    key = _key(raw)
    # Written first: a second reader applying the same mail at this moment waits on the key
    # until this transaction ends, then finds it taken and changes nothing.
    await insert_if_absent(
        session,
        InboundMail,
        {"key": key, "received_at": now, "outcome": _APPLYING},
        ["key"],
    )
    row = await session.get_one(InboundMail, key)
    if row.outcome != _APPLYING:  # seen before: applied or ignored then
        return Ignored("duplicate")
    try:
        outcome: Outcome = await _apply(session, raw, size, now=now, cipher=cipher, own=organizer)
    except _Refused as refused:
        outcome = Ignored(refused.reason, refused.conference_id)
    if isinstance(outcome, Ignored):
        await audit.record(
            session,
            at=now,
            actor_id=None,
            action=IGNORED,
            subject_type="conference" if outcome.conference_id is not None else "mail",
            subject_id=outcome.conference_id,
            reason=outcome.reason,
        )
        row.outcome = outcome.reason[:32]
    else:
        row.outcome = "applied"
    return outcome


def _key(raw: bytes) -> str:
    """The SHA-256 of the Message-ID, or of the whole mail when it has none (or a broken one)."""
    message_id = None
    try:
        header = BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)
        value = header.get("Message-ID")
        message_id = str(value).strip() if value is not None else None
    except Exception:
        message_id = None
    source = message_id.encode("utf-8", "replace") if message_id else raw
    return hashlib.sha256(source).hexdigest()


async def _apply(
    session: AsyncSession, raw: bytes, size: int, *, now: datetime, cipher: Cipher, own: str
) -> Outcome:
    if size > MAX_BYTES or _header_size(raw) > HEADER_MAX:
        raise _Refused("too large")
    message = _parse(raw)
    sender = _sender(message)
    if sender is not None and sender in _addresses(own):
        raise _Refused("own mail")
    reply = _reply(_calendar(message))
    conference = await session.scalar(
        select(Conference).where(Conference.uid == reply.uid).with_for_update()
    )
    if conference is None:
        raise _Refused("unknown event")
    known = conference.id
    if conference.status is not ConferenceStatus.SCHEDULED:
        raise _Refused("not scheduled", known)
    if conference.starts_at is not None and conference.starts_at <= now:
        raise _Refused("over", known)
    if reply.sequence < conference.sequence:
        raise _Refused("old sequence", known)
    if reply.sequence > conference.sequence:
        raise _Refused("unknown sequence", known)
    invitation, member = await _whose(session, conference, reply.attendee)
    if sender != reply.attendee:
        raise _Refused("forged sender", known)
    rsvp = ANSWERS.get(reply.partstat)
    if rsvp is None:
        raise _Refused("no answer", known)
    reason = reply.comment.strip()[:REASON_MAX] if reply.comment else None
    flagged = await record_answer(
        session, conference, invitation, rsvp, member, now=now, reason=reason, cipher=cipher
    )
    await audit.record(
        session,
        at=now,
        actor_id=member.id if member is not None else None,
        action="invitation.answered",
        subject_type="invitation",
        subject_id=invitation.id,
        answer=rsvp.value,
        channel="mail",
    )
    view = None
    messages: list[tuple[int, int, str]] = []
    if member is not None:
        view = await view_of(session, conference, invitation, member.id, now=now)
        messages = await copies(session, invitation.id, conference.sequence)
    return Applied(
        conference_id=conference.id,
        invitation_id=invitation.id,
        rsvp=rsvp,
        member_id=member.id if member is not None else None,
        view=view,
        messages=messages,
        board=await board_of(session, conference),
        flagged=flagged,
        planned=outbox.planned(session),
    )


# Reading the mail.


def _header_size(raw: bytes) -> int:
    """The length of the header block (all of the mail when it has no body)."""
    ends = [at for at in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if at >= 0]
    return min(ends) if ends else len(raw)


def _parse(raw: bytes) -> Message:
    try:
        return BytesParser(policy=policy.compat32).parsebytes(raw)
    except Exception as error:
        raise _Refused("malformed") from error


def _sender(message: Message) -> str | None:
    """The From: address, lower case; None unless there is exactly one."""
    try:
        values = [str(value) for value in message.get_all("From", [])]
    except Exception:
        return None
    if sum(len(value) for value in values) > FROM_MAX:
        return None
    found = [address for _name, address in getaddresses(values) if address]
    if len(found) != 1 or "@" not in found[0]:
        return None
    return mailing.normal(found[0])


def _addresses(value: str) -> set[str]:
    return {mailing.normal(address) for _name, address in getaddresses([value]) if address}


def _calendar(message: Message) -> str:
    """The text of the first calendar part that is a REPLY (else of the first calendar part)."""
    texts = []
    try:
        for part in message.walk():
            if part.get_content_type() in CALENDAR_TYPES and not part.is_multipart():
                texts.append(_text(part))
    except Exception as error:
        raise _Refused("malformed") from error
    if not texts:
        raise _Refused("no calendar")
    for text in texts:
        if "METHOD:REPLY" in text.upper().replace("\r", "").replace("\n ", ""):
            return text
    return texts[0]


def _text(part: Message) -> str:
    """A calendar part's text in its charset; UTF-8 when it names none, an unknown one, or one
    its bytes are not in (a client that calls UTF-8 "us-ascii")."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    for charset in (part.get_content_charset() or "utf-8", "utf-8"):
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("utf-8", errors="replace")


def _reply(text: str) -> _Reply:
    try:
        calendar = Calendar.from_ical(text)
        method = str(calendar.get("METHOD", "")).strip().upper()
        events = [part for part in calendar.walk("VEVENT") if isinstance(part, Event)]
    except Exception as error:
        raise _Refused("malformed") from error
    if method != "REPLY":
        raise _Refused("not a reply")
    # icalendar keeps a line it could not parse as an error of its component: not what any
    # client writes, so not trusted either.
    if len(events) != 1 or calendar.errors or events[0].errors:
        raise _Refused("malformed")
    event = events[0]
    try:
        attendees = event.get("ATTENDEE")
        if not isinstance(attendees, list):
            attendees = [] if attendees is None else [attendees]
        uid = str(event.get("UID", "")).strip()
        sequence = int(str(event.get("SEQUENCE", 0)).strip())
        comment = event.get("COMMENT")
        if isinstance(comment, list):
            comment = " ".join(str(item) for item in comment)
    except Exception as error:
        raise _Refused("malformed") from error
    if len(attendees) != 1 or not uid or len(uid) > UID_MAX or _controls(uid):
        raise _Refused("malformed")
    attendee = attendees[0]
    address = str(attendee).strip()
    if address.lower().startswith("mailto:"):
        address = address[len("mailto:") :]
    if len(address) > ADDRESS_MAX or _controls(address):
        raise _Refused("malformed")
    if comment is not None:
        comment = "".join(c for c in str(comment) if c in "\n\t" or not _controls(c))
    partstat = str(getattr(attendee, "params", {}).get("PARTSTAT", "NEEDS-ACTION"))
    return _Reply(
        uid=uid,
        sequence=sequence,
        attendee=mailing.normal(address),
        partstat=partstat.strip().upper(),
        comment=str(comment) if comment is not None else None,
    )


def _controls(text: str) -> bool:
    """Whether the text holds a control character (a NUL, say, which PostgreSQL refuses)."""
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


# Whose answer it is.


async def _whose(
    session: AsyncSession, conference: Conference, address: str
) -> tuple[Invitation, Member | None]:
    """The conference's invitation this address answers for, and the member it is of (None: a
    guest's own address)."""
    invitations = await invitations_of(session, conference.id)
    found: list[tuple[Invitation, Member | None]] = [
        (invitation, None)
        for invitation in invitations
        if invitation.kind is InvitationKind.GUEST and mailing.same(invitation.email, address)
    ]
    people = list(
        await session.scalars(
            select(Member).where(func.lower(Member.email) == address, Member.active.is_(True))
        )
    )
    for invitation in invitations:
        allowed = {member.id for member in await answerers(session, invitation, conference)}
        if invitation.delegate_id is not None:
            # Handed to a colleague, or answered by one: they answer for it from then on, as
            # long as they are active (as in the chat).
            delegate = await session.get(Member, invitation.delegate_id)
            if delegate is not None and delegate.active:
                allowed &= {delegate.id}
        found += [(invitation, member) for member in people if member.id in allowed]
    if not found:
        raise _Refused("unknown address", conference.id)
    if len({invitation.id for invitation, _member in found}) > 1:
        # One address for two invitations (an office mailbox two members share, say): whose
        # answer it is cannot be told, so it counts for neither.
        raise _Refused("ambiguous address", conference.id)
    return found[0]
