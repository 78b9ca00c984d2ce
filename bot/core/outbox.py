"""Durable notifications: every reminder, nudge and invitation is a row before it is a message.

A use case plans rows (`plan`) in the same transaction as the change that calls for them, each
with a unique key, so planning twice is harmless and a crash loses nothing. Answers, new dates
and cancellations `cancel` the rows they make moot. `planned` tells whether a transaction
planned any, so that its caller wakes the sender only then.

Here are the rows and the steps on them, each one short transaction of the sender's: claiming
due rows atomically (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers),
skipping the ones whose moment passed (`expires_at`), putting back stale claims, and recording
what became of each. Rendering and sending a row is the channel's (for Telegram,
bot.transport.telegram.delivery); nothing here knows any channel.

Two senders on one database never send the same row: a claim is a row's until it is done or
older than the lease, when whoever runs releases it; a sender renews a claim older than half
the lease just before sending (`renew`), and skips the row if it is no longer its own. Rows
claimed by a process that died are released when the next active process takes over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict, TypeVar, Unpack

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.db import insert_if_absent
from bot.core.models import Channel, Member, OutboxRow, OutboxStatus

_T = TypeVar("_T")


@dataclass(frozen=True)
class Planned:
    """A notification to plan. The payload holds ids only: text is made when it is sent.

    A chat message goes to a member (`member_id`); a mail (`channel=Channel.MAIL`) goes to
    `address`, for a member (whose confirmed address it is) or for a guest (no member)."""

    key: str
    kind: str
    subject: str
    member_id: int | None  # the recipient; how to reach them is the channel's business
    due_at: datetime
    expires_at: datetime | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    channel: Channel = Channel.TELEGRAM
    address: str | None = None

    def __post_init__(self) -> None:
        if self.channel is Channel.TELEGRAM and self.member_id is None:
            raise ValueError("a chat message is for a member")
        if self.channel is Channel.MAIL and not self.address:
            raise ValueError("a mail needs an address")


class Rest(TypedDict, total=False):
    """The rest of a `Planned` row, for the constructors below: mypy checks it as it checks
    `Planned` itself."""

    due_at: Required[datetime]
    expires_at: datetime | None
    payload: Mapping[str, Any]
    channel: Channel
    address: str | None


def member_subject(member_id: int) -> str:
    """The subject of a row about a member (their prompt or digest, a leaver's hand-over)."""
    return f"member:{member_id}"


def about(subject: str, key: str, kind: str, member_id: int | None, **row: Unpack[Rest]) -> Planned:
    """A row filed under `subject` (a case, a referral, a task, a conference: cancelled with
    it), its key `<subject>:<key>`; `row` is the rest of `Planned` (due_at, payload, ...)."""
    return Planned(f"{subject}:{key}", kind, subject, member_id, **row)


def about_member(member_id: int, key: str, kind: str, **row: Unpack[Rest]) -> Planned:
    """A row to a member about themself: its subject is the member; `row` is the rest of
    `Planned` (due_at, payload, ...)."""
    return Planned(key, kind, member_subject(member_id), member_id, **row)


@dataclass(frozen=True)
class Notification:
    """A claimed row, as the kind's renderer sees it."""

    id: int
    key: str
    kind: str
    subject: str
    member_id: int
    chat_id: int
    payload: Mapping[str, Any]
    due_at: datetime
    attempts: int


@dataclass(frozen=True)
class Letter:
    """A claimed mail row, as the kind's renderer sees it: to `address`, for a member (whose
    confirmed address it was when planned) or for a guest (`member_id` None)."""

    id: int
    key: str
    kind: str
    subject: str
    member_id: int | None
    address: str
    payload: Mapping[str, Any]
    due_at: datetime
    attempts: int


# Planning and cancelling (inside the use case's transaction).


PLANNED = "outbox.planned"  # session.info: rows were planned in this transaction


def planned(session: AsyncSession) -> bool:
    """Whether this transaction planned rows (the dispatcher needs waking after its commit)."""
    return bool(session.info.get(PLANNED))


async def plan(session: AsyncSession, items: Iterable[Planned], *, now: datetime) -> None:
    """Add rows; a key planned before (sent, cancelled or pending) is left as it is. Each row
    keeps the recipient's chat as it is now (a leaver's rows are skipped when sent)."""
    items = list(items)
    if not items:
        return
    session.info[PLANNED] = True
    members = {item.member_id for item in items if item.channel is Channel.TELEGRAM}
    recipients = await session.execute(
        select(Member.id, Member.chat_id).where(Member.id.in_(members))
    )
    chats: dict[int | None, int] = {member_id: chat_id for member_id, chat_id in recipients}
    for item in items:
        await insert_if_absent(
            session,
            OutboxRow,
            {
                "key": item.key,
                "kind": item.kind,
                "subject": item.subject,
                "channel": item.channel,
                "member_id": item.member_id,
                "chat_id": chats[item.member_id] if item.channel is Channel.TELEGRAM else None,
                "address": item.address,
                "payload": dict(item.payload),
                "due_at": item.due_at,
                "expires_at": item.expires_at,
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "created_at": now,
            },
            ["key"],
        )


async def revive(session: AsyncSession, *, kind: str, member_id: int, prefix: str) -> int:
    """Bring back a recipient's cancelled rows of a kind whose keys start with `prefix` (their
    keys are taken, so planning them again would not); returns how many. Like planning, it
    marks the transaction, so the sender is woken after the commit."""
    return await _bring_back(
        session,
        OutboxRow.kind == kind,
        OutboxRow.status == OutboxStatus.CANCELLED,
        OutboxRow.member_id == member_id,
        OutboxRow.key.startswith(prefix, autoescape=True),
    )


# Held rows: a notification its recipient may not have yet (bot.services.confidentiality) is
# put aside as skipped with this outcome, and planned again when they may have it.
HELD = "held"


async def hold(session: AsyncSession, row_id: int, *, now: datetime) -> None:
    """Put a claimed row aside until `unhold` brings it back."""
    await finish(session, row_id, OutboxStatus.SKIPPED, now=now, outcome=HELD)


async def unhold(session: AsyncSession, *, member_id: int) -> int:
    """Bring back a recipient's held rows, to be sent as if never held; returns how many. Like
    planning, it marks the transaction, so the sender is woken after the commit."""
    return await _bring_back(
        session,
        OutboxRow.member_id == member_id,
        OutboxRow.status == OutboxStatus.SKIPPED,
        OutboxRow.outcome == HELD,
        claimed_at=None,
        retry_at=None,
    )


async def _bring_back(session: AsyncSession, *where: ColumnElement[bool], **cleared: None) -> int:
    """Make the rows that match pending again, as if never done (`cleared`: what else they
    must forget); returns how many. Like planning, it marks the transaction, so the sender is
    woken after the commit."""
    result = await session.execute(
        update(OutboxRow)
        .where(*where)
        .values(status=OutboxStatus.PENDING, done_at=None, outcome=None, **cleared)
    )
    count = int(result.rowcount)  # type: ignore[attr-defined]
    if count:
        session.info[PLANNED] = True
    return count


async def cancel(
    session: AsyncSession,
    *,
    now: datetime,
    subject: str | None = None,
    prefix: str | None = None,
    kinds: Iterable[str] | None = None,
    member_id: int | None = None,
) -> int:
    """Cancel pending rows by subject, key prefix, kinds and recipient (a recipient alone: all
    of a leaver's rows); returns how many. A row already being sent cannot be called back; a
    held one is cancelled as a pending one is."""
    assert (subject, prefix, member_id) != (None, None, None), "cancel needs something to match"
    query = update(OutboxRow).where(
        or_(
            OutboxRow.status == OutboxStatus.PENDING,
            and_(OutboxRow.status == OutboxStatus.SKIPPED, OutboxRow.outcome == HELD),
        )
    )
    if subject is not None:
        query = query.where(OutboxRow.subject == subject)
    if prefix is not None:
        query = query.where(OutboxRow.key.startswith(prefix, autoescape=True))
    if kinds is not None:
        query = query.where(OutboxRow.kind.in_(list(kinds)))
    if member_id is not None:
        query = query.where(OutboxRow.member_id == member_id)
    result = await session.execute(
        query.values(status=OutboxStatus.CANCELLED, done_at=now, outcome="cancelled")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def next_due(session: AsyncSession, channel: Channel = Channel.TELEGRAM) -> datetime | None:
    """The earliest moment a pending row of the channel may be sent."""
    moment = func.coalesce(OutboxRow.retry_at, OutboxRow.due_at)
    value = await session.scalar(
        select(func.min(moment)).where(
            OutboxRow.status == OutboxStatus.PENDING, OutboxRow.channel == channel
        )
    )
    return value


# The sender's steps, each one short transaction.


async def release(
    session: AsyncSession,
    *,
    now: datetime,
    lease: timedelta,
    except_worker: str | None = None,
    channel: Channel = Channel.TELEGRAM,
) -> int:
    """Put back the channel's rows claimed by a dead process: every claim but
    `except_worker`'s when a sender takes over, or claims older than the lease."""
    query = update(OutboxRow).where(
        OutboxRow.status == OutboxStatus.SENDING, OutboxRow.channel == channel
    )
    if except_worker is not None:
        query = query.where(
            or_(OutboxRow.claimed_by != except_worker, OutboxRow.claimed_at < now - lease)
        )
    else:
        query = query.where(OutboxRow.claimed_at < now - lease)
    result = await session.execute(
        query.values(status=OutboxStatus.PENDING, claimed_by=None, claimed_at=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def skip_expired(session: AsyncSession, *, now: datetime) -> int:
    """Rows whose moment passed while nobody sent them and which no longer make sense."""
    result = await session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.status == OutboxStatus.PENDING,
            OutboxRow.expires_at.is_not(None),
            OutboxRow.expires_at <= now,
        )
        .values(status=OutboxStatus.SKIPPED, done_at=now, outcome="too late")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def claim(
    session: AsyncSession, *, now: datetime, worker: str, limit: int
) -> list[Notification]:
    """Take up to `limit` due chat rows for this worker; another worker never gets them."""
    rows = await _claim(session, now=now, worker=worker, limit=limit, channel=Channel.TELEGRAM)
    return [
        Notification(**_shown(row), member_id=_known(row.member_id), chat_id=_known(row.chat_id))
        for row in rows
    ]


async def claim_mail(
    session: AsyncSession, *, now: datetime, worker: str, limit: int
) -> list[Letter]:
    """Take up to `limit` due mails for this worker; another worker never gets them."""
    rows = await _claim(session, now=now, worker=worker, limit=limit, channel=Channel.MAIL)
    return [
        Letter(**_shown(row), member_id=row.member_id, address=_known(row.address)) for row in rows
    ]


class _Shown(TypedDict):
    """What a claimed row shows its renderer on every channel."""

    id: int
    key: str
    kind: str
    subject: str
    payload: dict[str, Any]
    due_at: datetime
    attempts: int


def _shown(row: OutboxRow) -> _Shown:
    return _Shown(
        id=row.id,
        key=row.key,
        kind=row.kind,
        subject=row.subject,
        payload=dict(row.payload),
        due_at=row.due_at,
        attempts=row.attempts,
    )


def _known(value: _T | None) -> _T:
    assert value is not None, "a chat row has its member and chat, a mail its address"
    return value


async def _claim(
    session: AsyncSession, *, now: datetime, worker: str, limit: int, channel: Channel
) -> list[OutboxRow]:
    ids = list(
        await session.scalars(
            select(OutboxRow.id)
            .where(
                OutboxRow.status == OutboxStatus.PENDING,
                OutboxRow.channel == channel,
                OutboxRow.due_at <= now,
                or_(OutboxRow.retry_at.is_(None), OutboxRow.retry_at <= now),
            )
            .order_by(OutboxRow.due_at, OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    rows = list(
        await session.scalars(
            update(OutboxRow)
            .where(OutboxRow.id.in_(ids), OutboxRow.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.SENDING, claimed_by=worker, claimed_at=now)
            .returning(OutboxRow),
            execution_options={"synchronize_session": False},
        )
    )
    rows.sort(key=lambda row: (row.due_at, row.id))
    return rows


async def finish(
    session: AsyncSession, row_id: int, status: OutboxStatus, *, now: datetime, outcome: str
) -> None:
    await session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == row_id)
        .values(status=status, done_at=now, outcome=outcome, claimed_by=None)
    )


async def renew(session: AsyncSession, row_id: int, *, worker: str, now: datetime) -> bool:
    """Extend this worker's claim on a row; False if the row is no longer its own."""
    result = await session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.id == row_id,
            OutboxRow.status == OutboxStatus.SENDING,
            OutboxRow.claimed_by == worker,
        )
        .values(claimed_at=now)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


async def retry_later(session: AsyncSession, row_id: int, *, at: datetime, attempts: int) -> None:
    await session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == row_id)
        .values(
            status=OutboxStatus.PENDING,
            retry_at=at,
            attempts=attempts,
            claimed_by=None,
            claimed_at=None,
        )
    )
