"""Referrals once sent: the coordinators' triage (the queue, the full referral, accepting,
declining, asking the referrer) and the referrer's answer and list of referrals; the referrer's
draft is bot.services.drafting, the sweep's reminders and nudges bot.services.referral_sweep.

The child's details live in one encrypted JSON document per referral (`Referral.sealed`); the
plain columns hold only what the queue and the notifications need. Every function takes the
session of the caller's transaction; permission checks are here, not in the handlers.

Whom a referral's events are told to is planned here too (`tell`), in the event's transaction:
one outbox row per recipient, with ids only (a typed reason or question stays encrypted in its
note), so a crash after the commit loses no notification; bot.services.referral_notices reads
what each shows when the outbox sends it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.models import (
    Case,
    Consent,
    Institution,
    Member,
    NoteKind,
    Referral,
    ReferralNote,
    ReferralStatus,
    Role,
    Urgency,
)
from bot.services import audit, cases
from bot.services.errors import ServiceError
from bot.services.members import Actor, require_coordinator

MAX_NOTE = 2000
OPEN_STATUSES = (ReferralStatus.SUBMITTED, ReferralStatus.NEEDS_INFO)

# The outbox's kinds of referral notifications.
ALERT = "referral.alert"  # a new referral, to the district's coordinators
ACCEPTED = "referral.accepted"  # to the referrer
ACCEPTED_BY = "referral.accepted_by"  # to the other coordinators
DECLINED = "referral.declined"  # to the referrer, with the reason
DECLINED_BY = "referral.declined_by"  # to the other coordinators
QUESTION = "referral.question"  # a coordinator's question, to the referrer
ANSWERED = "referral.answered"  # the referrer's answer, to the coordinators


class ReferralError(ServiceError):
    """Base of the referral refusals below."""


class AlreadyDecided(ReferralError):
    """Another coordinator decided first."""

    def __init__(self, code: str, status: ReferralStatus, by: str | None) -> None:
        super().__init__(f"{code} is already {status.value}")
        self.code = code
        self.status = status
        self.by = by


class NotWaitingForAnswer(ReferralError):
    """An answer to a question nobody is waiting for any more."""


class NoLongerKept(ReferralError):
    """The referral's details were deleted after the retention period (its code is kept)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"{code} is no longer kept")
        self.code = code


@dataclass(frozen=True)
class Rejected:
    """Input the step cannot take; `reason` names the rule, `params` fill its message."""

    reason: str  # "empty", "too_long", "year", "no_concern"
    params: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipient:
    member_id: int
    chat_id: int
    locale: str


@dataclass(frozen=True)
class Note:
    kind: NoteKind
    author: str
    at: datetime
    text: str


@dataclass(frozen=True)
class Details:
    """A referral as its coordinators see it on request (never in a notification)."""

    id: int
    code: str
    status: ReferralStatus
    submitted_at: datetime
    referrer: str
    institution_name: str
    danger: bool
    urgency: Urgency
    guardians_informed: bool
    guardians_consent: Consent
    name: str
    birth_year: int
    class_name: str
    school: str
    categories: tuple[str, ...]
    other: str | None
    description: str
    tried: str
    notes: list[Note]
    case_code: str | None
    can_decide: bool


@dataclass(frozen=True)
class Decision:
    code: str
    status: ReferralStatus
    case_code: str | None
    case_id: int | None = None


@dataclass(frozen=True)
class Question:
    code: str


@dataclass(frozen=True)
class Answered:
    code: str
    draft_kept: bool  # the referrer has an unfinished referral of their own, waiting


@dataclass(frozen=True)
class QueueItem:
    id: int
    code: str
    status: ReferralStatus
    urgency: Urgency
    danger: bool
    consent: Consent
    submitted_at: datetime
    institution_name: str


@dataclass(frozen=True)
class OwnReferral:
    code: str | None  # None for the draft
    status: ReferralStatus
    at: datetime
    id: int = 0
    case_code: str | None = None  # the case it became, once accepted
    kept: bool = True  # its details are still held (not deleted after the retention period)


# The coordinators' triage, and the referrer's answer.


async def coordinators(session: AsyncSession, district_id: int) -> list[Recipient]:
    rows = await session.execute(
        select(Member.id, Member.chat_id, Member.locale)
        .join(Institution, Member.institution_id == Institution.id)
        .where(
            Institution.district_id == district_id,
            Member.role == Role.COORDINATOR,
            Member.active.is_(True),
            Member.reachable.is_(True),
        )
        .order_by(Member.id)
    )
    return [Recipient(member_id, chat_id, locale) for member_id, chat_id, locale in rows]


async def view(
    session: AsyncSession, actor: Actor, cipher: Cipher, referral_id: int, *, now: datetime
) -> Details:
    """The full referral for a coordinator of its district (or its own referrer); the view is
    audited, and so is a refusal."""
    row = await session.get(Referral, referral_id)
    if row is None or row.status is ReferralStatus.DRAFT or not _may_read(actor, row):
        raise audit.refused(actor, "referral.view", "referral", referral_id, at=now)
    if row.purged_at is not None:
        # Anonymised after the retention period (with its case, or declined): nothing is left
        # to show, and the one who may read it is told so.
        raise NoLongerKept(row.code or "")
    opened = await case_code(session, row.id)
    await audit_referral(session, row, actor, "referral.viewed", now=now)
    sealed = open_sealed(row, cipher)
    referrer = await session.get_one(Member, row.referrer_id)
    institution = await session.get_one(Institution, row.institution_id)
    assert row.code and row.submitted_at and row.urgency and row.guardians_consent is not None
    return Details(
        id=row.id,
        code=row.code,
        status=row.status,
        submitted_at=row.submitted_at,
        referrer=referrer.display_name,
        institution_name=institution.name,
        danger=bool(row.danger),
        urgency=row.urgency,
        guardians_informed=bool(row.guardians_informed),
        guardians_consent=row.guardians_consent,
        name=sealed["name"],
        birth_year=sealed["birth_year"],
        class_name=sealed["class_name"],
        school=sealed["school"],
        categories=tuple(sealed["categories"]),
        other=sealed.get("other"),
        description=sealed["description"],
        tried=sealed.get("tried", ""),
        notes=await _notes(session, row.id, cipher),
        case_code=opened,
        can_decide=actor.role is Role.COORDINATOR and row.status in OPEN_STATUSES,
    )


async def accept(
    session: AsyncSession, actor: Actor, referral_id: int, *, now: datetime
) -> Decision:
    """Open a case; the coordinator who accepts becomes its case manager."""
    row = await _decide(session, actor, referral_id, ReferralStatus.ACCEPTED, now=now)
    case = await cases.open_case(session, actor, row, now=now)
    await _tell_decision(session, row, actor, ACCEPTED, ACCEPTED_BY, now=now)
    assert row.code is not None
    return Decision(row.code, row.status, case.code, case.id)


async def decline(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    referral_id: int,
    reason: str,
    *,
    now: datetime,
) -> Decision | Rejected:
    cleaned = _note_text(reason)
    if isinstance(cleaned, Rejected):
        return cleaned
    row = await _decide(session, actor, referral_id, ReferralStatus.DECLINED, now=now)
    note = await _add_note(
        session, row, actor, NoteKind.DECLINE_REASON, cleaned, cipher=cipher, now=now
    )
    await _tell_decision(session, row, actor, DECLINED, DECLINED_BY, now=now, reason=note)
    assert row.code is not None
    return Decision(row.code, row.status, None)


async def ask(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    referral_id: int,
    question: str,
    *,
    now: datetime,
) -> Question | Rejected:
    """A coordinator asks the referrer; the referral waits for the answer (needs_info)."""
    cleaned = _note_text(question)
    if isinstance(cleaned, Rejected):
        return cleaned
    row = await _decidable(session, actor, referral_id, action="referral.ask", now=now)
    await _transition(session, row, OPEN_STATUSES, ReferralStatus.NEEDS_INFO)
    note = await _add_note(session, row, actor, NoteKind.QUESTION, cleaned, cipher=cipher, now=now)
    await audit_referral(session, row, actor, "referral.asked", now=now)
    await tell(session, QUESTION, row.id, [row.referrer_id], now=now, note=note)
    assert row.code is not None
    return Question(row.code)


async def answer(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    referral_id: int,
    text: str,
    *,
    now: datetime,
) -> Answered | Rejected:
    """The referrer answers the coordinators' question; the referral is back in the queue."""
    cleaned = _note_text(text)
    if isinstance(cleaned, Rejected):
        return cleaned
    row = await _waiting_for_answer(session, actor, referral_id, now=now)
    try:
        await _transition(session, row, (ReferralStatus.NEEDS_INFO,), ReferralStatus.SUBMITTED)
    except AlreadyDecided:
        raise NotWaitingForAnswer(row.code or "") from None
    row.nudged_at = now  # the coordinators are told now; the next nudge is a day away
    note = await _add_note(session, row, actor, NoteKind.ANSWER, cleaned, cipher=cipher, now=now)
    await audit_referral(session, row, actor, "referral.answered", now=now)
    told = [c.member_id for c in await coordinators(session, row.district_id)]
    await tell(session, ANSWERED, row.id, told, now=now, note=note)
    assert row.code is not None
    return Answered(row.code, await has_draft(session, actor.member_id))


async def awaiting_decision(
    session: AsyncSession, actor: Actor, referral_id: int, *, action: str, now: datetime
) -> str:
    """The code of a referral this coordinator may decide on now (before typing a reason or a
    question); refusals are audited, a referral already decided raises AlreadyDecided."""
    row = await _decidable(session, actor, referral_id, action=f"referral.{action}", now=now)
    assert row.code is not None
    return row.code


async def question_for(
    session: AsyncSession, actor: Actor, referral_id: int, *, now: datetime
) -> str:
    """The code of the referrer's own referral that waits for their answer."""
    row = await _waiting_for_answer(session, actor, referral_id, now=now)
    assert row.code is not None
    return row.code


async def queue(session: AsyncSession, actor: Actor, *, now: datetime) -> list[QueueItem]:
    """The district's referrals waiting for a decision: urgent first, then oldest first."""
    require_coordinator(actor, now=now, action="referral.queue", subject_type="referral")
    rows = await session.execute(
        select(Referral, Institution.name)
        .join(Institution, Referral.institution_id == Institution.id)
        .where(Referral.district_id == actor.district_id, Referral.status.in_(OPEN_STATUSES))
    )
    rank = {Urgency.URGENT: 0, Urgency.WEEK: 1, Urgency.ROUTINE: 2}
    items = [
        QueueItem(
            id=row.id,
            code=row.code or "",
            status=row.status,
            urgency=row.urgency or Urgency.ROUTINE,
            danger=bool(row.danger),
            consent=row.guardians_consent or Consent.NOT_ASKED,
            submitted_at=row.submitted_at or row.created_at,
            institution_name=name,
        )
        for row, name in rows
    ]
    return sorted(items, key=lambda item: (rank[item.urgency], item.submitted_at, item.id))


async def own_referrals(session: AsyncSession, actor: Actor) -> list[OwnReferral]:
    """What a referrer may see of their referrals: code, status, date and the case it became,
    newest first."""
    rows = await session.execute(
        select(Referral, Case.code)
        .outerjoin(Case, Case.referral_id == Referral.id)
        .where(Referral.referrer_id == actor.member_id)
        .order_by(Referral.created_at.desc(), Referral.id.desc())
    )
    return [
        OwnReferral(
            row.code,
            row.status,
            row.submitted_at or row.updated_at,
            id=row.id,
            case_code=case,
            kept=row.purged_at is None,
        )
        for row, case in rows
    ]


async def has_draft(session: AsyncSession, member_id: int) -> bool:
    found = await session.scalar(
        select(Referral.id)
        .where(Referral.referrer_id == member_id, Referral.status == ReferralStatus.DRAFT)
        .limit(1)
    )
    return found is not None


# Helpers.


def open_sealed(row: Referral, cipher: Cipher) -> dict[str, Any]:
    """The child's details: the referral's encrypted document."""
    sealed: dict[str, Any] = cipher.decrypt_json(row.sealed)
    return sealed


def _may_read(actor: Actor, row: Referral) -> bool:
    return row.referrer_id == actor.member_id or actor.coordinates(row.district_id)


async def _waiting_for_answer(
    session: AsyncSession, actor: Actor, referral_id: int, *, now: datetime
) -> Referral:
    """The referrer's own referral, waiting for their answer to a question; refusals are
    audited."""
    row = await session.get(Referral, referral_id)
    if row is None or row.referrer_id != actor.member_id:
        raise audit.refused(actor, "referral.answer", "referral", referral_id, at=now)
    if row.status is not ReferralStatus.NEEDS_INFO or row.code is None:
        raise NotWaitingForAnswer(row.code or "")
    return row


async def _decidable(
    session: AsyncSession, actor: Actor, referral_id: int, *, action: str, now: datetime
) -> Referral:
    row = await session.get(Referral, referral_id)
    if row is None or row.status is ReferralStatus.DRAFT or not actor.coordinates(row.district_id):
        raise audit.refused(actor, action, "referral", referral_id, at=now)
    if row.status not in OPEN_STATUSES:
        raise await _already(session, row)
    return row


async def _decide(
    session: AsyncSession,
    actor: Actor,
    referral_id: int,
    status: ReferralStatus,
    *,
    now: datetime,
) -> Referral:
    """One decision per referral: the conditional update lets exactly one coordinator win."""
    verb = "accept" if status is ReferralStatus.ACCEPTED else "decline"
    row = await _decidable(session, actor, referral_id, action=f"referral.{verb}", now=now)
    await _transition(
        session, row, OPEN_STATUSES, status, decided_at=now, decided_by_id=actor.member_id
    )
    await audit_referral(session, row, actor, f"referral.{status.value}", now=now)
    return row


async def _transition(
    session: AsyncSession,
    row: Referral,
    expected: tuple[ReferralStatus, ...],
    status: ReferralStatus,
    **values: Any,
) -> None:
    """Change the status only if nobody changed it meanwhile (a decision by another
    coordinator): the conditional update lets exactly one of two racing requests through; the
    other gets AlreadyDecided."""
    changed = await session.execute(
        update(Referral)
        .where(Referral.id == row.id, Referral.status.in_(expected))
        .values(status=status, **values)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(row)
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise await _already(session, row)


async def _already(session: AsyncSession, row: Referral) -> AlreadyDecided:
    return AlreadyDecided(row.code or "", row.status, await decided_by(session, row))


async def decided_by(session: AsyncSession, row: Referral) -> str | None:
    """The name of the coordinator who accepted or declined the referral."""
    if row.decided_by_id is None:
        return None
    return (await session.get_one(Member, row.decided_by_id)).display_name


async def case_code(session: AsyncSession, referral_id: int) -> str | None:
    """The code of the case opened when the referral was accepted."""
    code: str | None = await session.scalar(
        select(Case.code).where(Case.referral_id == referral_id)
    )
    return code


async def alert_coordinators(session: AsyncSession, row: Referral, *, now: datetime) -> int:
    """Plan the new-referral alert to every active coordinator of the referral's district the
    bot can reach, and note that it is planned; returns how many it goes to."""
    alerted = [c.member_id for c in await coordinators(session, row.district_id)]
    await tell(session, ALERT, row.id, alerted, now=now)
    row.alerted_at = now
    return len(alerted)


async def tell(
    session: AsyncSession,
    kind: str,
    referral_id: int,
    members: Iterable[int],
    *,
    now: datetime,
    note: int | None = None,
) -> None:
    """Plan a notification of `kind` about the referral for each member, due at once. `note`
    is the question, answer or reason it is about: each of those is an event of its own."""
    event = kind.removeprefix("referral.") + ("" if note is None else f":n{note}")
    payload = {"referral": referral_id} | ({} if note is None else {"note": note})
    await outbox.plan(
        session,
        [
            outbox.about(
                f"referral:{referral_id}",
                f"{event}:m{member}",
                kind,
                member,
                due_at=now,
                payload=payload,
            )
            for member in members
        ],
        now=now,
    )


async def _tell_decision(
    session: AsyncSession,
    row: Referral,
    actor: Actor,
    to_referrer: str,
    to_others: str,
    *,
    now: datetime,
    reason: int | None = None,
) -> None:
    """The referrer hears of the decision (with the reason's note, if any), and so do the
    district's other coordinators."""
    await tell(session, to_referrer, row.id, [row.referrer_id], now=now, note=reason)
    found = await coordinators(session, row.district_id)
    others = [c.member_id for c in found if c.member_id != actor.member_id]
    await tell(session, to_others, row.id, others, now=now)


async def audit_referral(
    session: AsyncSession,
    row: Referral,
    actor: Actor,
    action: str,
    *,
    now: datetime,
    **details: Any,
) -> None:
    """An audit entry about a referral, by its code (never its content)."""
    await audit.acted(session, actor, action, row, at=now, code=row.code, **details)


def _note_text(text: str) -> str | Rejected:
    cleaned = text.strip()
    if not cleaned:
        return Rejected("empty")
    if len(cleaned) > MAX_NOTE:
        return Rejected("too_long", {"length": len(cleaned), "limit": MAX_NOTE})
    return cleaned


async def _add_note(
    session: AsyncSession,
    row: Referral,
    actor: Actor,
    kind: NoteKind,
    text: str,
    *,
    cipher: Cipher,
    now: datetime,
) -> int:
    """Store the typed text, encrypted; returns the note's id (for the notification)."""
    note = ReferralNote(
        referral_id=row.id,
        author_id=actor.member_id,
        kind=kind,
        at=now,
        body=cipher.encrypt_json(text),
    )
    session.add(note)
    await session.flush()
    return note.id


async def _notes(session: AsyncSession, referral_id: int, cipher: Cipher) -> list[Note]:
    rows = await session.execute(
        select(ReferralNote, Member.display_name)
        .join(Member, ReferralNote.author_id == Member.id)
        .where(ReferralNote.referral_id == referral_id)
        .order_by(ReferralNote.at, ReferralNote.id)
    )
    return [Note(note.kind, name, note.at, cipher.decrypt_json(note.body)) for note, name in rows]


def as_recipient(member: Member) -> Recipient:
    return Recipient(member.id, member.chat_id, member.locale)
