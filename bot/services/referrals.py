"""Referrals: the referrer's draft, sending it, and the coordinators' decision.

The child's details live in one encrypted JSON document per referral (`Referral.sealed`); the
plain columns hold only what the queue and the notifications need. Every function takes the
session of the caller's transaction; permission checks are here, not in the handlers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.crypto import Cipher
from bot.core.db import insert_if_absent
from bot.core.models import (
    Case,
    CaseStatus,
    CodeSequence,
    Consent,
    District,
    Institution,
    InstitutionKind,
    Member,
    NoteKind,
    Referral,
    ReferralNote,
    ReferralStatus,
    Role,
    Urgency,
)
from bot.services import audit
from bot.services.errors import PermissionDenied, ServiceError
from bot.services.members import Actor
from scheduling import policy
from scheduling.calendar import WorkingCalendar

# The Czech school risk-behaviour list (MŠMT), in its usual order; "other" comes with a text.
CATEGORIES = (
    "truancy",
    "bullying",
    "aggression",
    "drugs",
    "alcohol",
    "tobacco",
    "self_harm",
    "eating",
    "abuse",
    "domestic_violence",
    "sexual",
    "theft",
    "crime",
    "running_away",
    "gambling",
    "netolism",
    "extremism",
)
OTHER = "other"

MAX_NAME = 100
MAX_CLASS = 20
MAX_SCHOOL = 120
MAX_OTHER = 200
MAX_DESCRIPTION = 3000
MAX_TRIED = 3000
MAX_NOTE = 2000
SCHOOL_AGES = (3, 20)  # nursery school to the end of secondary school
DELETABLE_FOR_SECONDS = 48 * 3600  # a bot may delete messages in a private chat this long

# The steps of the referrer's dialog, in order. "school"/"school_name" (changing the school)
# return to "class"; "other" (the text of "other") returns to "concerns".
ORDER = (
    "danger",
    "name",
    "year",
    "class",
    "concerns",
    "description",
    "tried",
    "guardians",
    "urgency",
    "summary",
)
LIMITS = {
    "name": MAX_NAME,
    "class": MAX_CLASS,
    "school_name": MAX_SCHOOL,
    "other": MAX_OTHER,
    "description": MAX_DESCRIPTION,
    "tried": MAX_TRIED,
}
TEXT_STEPS = ("name", "year", "class", "school_name", "other", "description", "tried")
STEPS = (*ORDER, "school", "school_name", "other")
REFERRER_ROLES = (Role.REFERRER, Role.COORDINATOR)
OPEN_STATUSES = (ReferralStatus.SUBMITTED, ReferralStatus.NEEDS_INFO)


class ReferralError(ServiceError):
    """Base of the referral refusals below."""


class NoDraft(ReferralError):
    """The draft is gone: sent, cancelled or expired."""


class AlreadyDecided(ReferralError):
    """Another coordinator decided first."""

    def __init__(self, code: str, status: ReferralStatus, by: str | None) -> None:
        super().__init__(f"{code} is already {status.value}")
        self.code = code
        self.status = status
        self.by = by


class NotWaitingForAnswer(ReferralError):
    """An answer to a question nobody is waiting for any more."""


@dataclass(frozen=True)
class Rejected:
    """Input the step cannot take; `reason` names the rule, `params` fill its message."""

    reason: str  # "empty", "too_long", "year", "no_concern"
    params: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Draft:
    id: int
    step: str
    back_to_summary: bool
    danger: bool | None
    urgency: Urgency | None
    guardians_informed: bool | None
    guardians_consent: Consent | None
    name: str | None
    birth_year: int | None
    class_name: str | None
    school: str | None
    categories: tuple[str, ...]
    other: str | None
    description: str | None
    tried: str | None
    created_at: datetime
    updated_at: datetime

    def first_missing(self) -> str | None:
        """The first step still unanswered, or None when the draft can be sent."""
        answered = {
            "danger": self.danger is not None,
            "name": bool(self.name),
            "year": self.birth_year is not None,
            "class": bool(self.class_name),
            "concerns": bool(self.categories),
            "description": bool(self.description),
            "tried": self.tried is not None,
            "guardians": self.guardians_consent is not None,
            "urgency": self.urgency is not None,
        }
        return next((step for step, done in answered.items() if not done), None)

    def previous_step(self) -> str:
        """Where Back leads from the current step."""
        if self.back_to_summary:
            return "summary"
        if self.step in ("school", "school_name"):
            return "class"
        if self.step == "other":
            return "concerns"
        index = ORDER.index(self.step) if self.step in ORDER else 0
        previous = ORDER[max(index - 1, 0)]
        if previous == "urgency" and self.danger:
            previous = "guardians"
        return previous


@dataclass(frozen=True)
class Recipient:
    member_id: int
    chat_id: int
    locale: str


@dataclass(frozen=True)
class Submitted:
    referral_id: int
    code: str
    urgency: Urgency
    danger: bool
    institution_name: str
    message_refs: list[list[int]]
    coordinators: list[Recipient]


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
    referrer: Recipient
    coordinators: list[Recipient]
    case_id: int | None = None


@dataclass(frozen=True)
class Question:
    code: str
    referral_id: int
    text: str
    referrer: Recipient


@dataclass(frozen=True)
class Answered:
    code: str
    referral_id: int
    coordinators: list[Recipient]


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


@dataclass(frozen=True)
class OpenCase:
    id: int
    code: str
    opened_at: datetime
    manager: str


# The referrer's draft.


def can_refer(actor: Actor) -> bool:
    return actor.role in REFERRER_ROLES


def require_referrer(actor: Actor, *, now: datetime) -> None:
    """Referrers (and coordinators) report concerns; anyone else's attempt is refused, audited."""
    if not can_refer(actor):
        raise audit.refusal("referral", at=now, actor_id=actor.member_id, subject_type="referral")


async def find_draft(session: AsyncSession, actor: Actor, cipher: Cipher) -> Draft | None:
    row = await _draft_row(session, actor)
    return None if row is None else _draft(row, cipher)


async def start_draft(
    session: AsyncSession, actor: Actor, cipher: Cipher, *, now: datetime
) -> tuple[Draft, list[list[int]]]:
    """A new, empty draft, the school prefilled. An older draft is discarded; its messages (to
    delete from the chat) are returned with the new draft."""
    require_referrer(actor, now=now)
    discarded = await discard_draft(session, actor) or []
    row = Referral(
        district_id=actor.district_id,
        referrer_id=actor.member_id,
        institution_id=actor.institution_id,
        status=ReferralStatus.DRAFT,
        step="danger",
        back_to_summary=False,
        sealed=cipher.encrypt_json({"school": actor.institution_name, "categories": []}),
        message_refs=[],
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return _draft(row, cipher), discarded


async def discard_draft(session: AsyncSession, actor: Actor) -> list[list[int]] | None:
    """Delete the draft; returns the messages that carried its data (None: there was none)."""
    row = await _draft_row(session, actor)
    if row is None:
        return None
    refs = list(row.message_refs)
    await session.delete(row)
    session.info.pop(("draft", actor.member_id), None)
    return refs


def deletable(refs: list[list[int]], now: datetime) -> list[list[int]]:
    """The noted messages ([id, unix time, from bot]) a bot may still delete: Telegram allows
    it for 48 hours (a minute's margin for the clocks)."""
    return [ref for ref in refs if now.timestamp() - ref[1] < DELETABLE_FOR_SECONDS - 60]


def from_bot(ref: list[int]) -> bool:
    return len(ref) > 2 and bool(ref[2])


async def note_message(
    session: AsyncSession,
    actor: Actor,
    message_id: int,
    sent_at: int,
    *,
    now: datetime,
    from_bot: bool = False,
) -> None:
    """Remember a message that may carry the child's data, to delete it from the chat when the
    draft is sent or cancelled: the referrer's own, or one of the bot's (from_bot=True)."""
    row = await _draft_row(session, actor)
    if row is not None:
        row.message_refs = [*row.message_refs, [message_id, sent_at, int(from_bot)]]
        if not from_bot:
            row.updated_at = now


async def go_to(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    step: str,
    *,
    now: datetime,
    edit: bool = False,
) -> Draft:
    """Move the dialog to a step: Back, an edit button on the summary, or resuming.
    Reaching the summary with something unanswered leads to that step instead."""
    row = await _require_draft(session, actor)
    if step not in STEPS:
        raise ValueError(step)
    if edit:
        row.back_to_summary = True
    _move(row, step, cipher)
    row.updated_at = now
    return _draft(row, cipher)


async def set_text(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    text: str,
    *,
    now: datetime,
) -> Draft | Rejected:
    """The typed answer to the draft's current step."""
    row = await _require_draft(session, actor)
    row.updated_at = now
    step = row.step
    if step not in TEXT_STEPS:
        return Rejected("buttons")
    cleaned = text.strip() if step in ("description", "tried") else " ".join(text.split())
    if not cleaned:
        return Rejected("empty")
    sealed = _open(row, cipher)
    if step == "year":
        low, high = now.year - SCHOOL_AGES[1], now.year - SCHOOL_AGES[0]
        if not (cleaned.isdecimal() and len(cleaned) == 4 and low <= int(cleaned) <= high):
            return Rejected("year", {"low": low, "high": high})
        sealed["birth_year"] = int(cleaned)
    elif len(cleaned) > LIMITS[step]:
        return Rejected("too_long", {"length": len(cleaned), "limit": LIMITS[step]})
    elif step == "class":
        sealed["class_name"] = cleaned
    elif step == "school_name":
        sealed["school"] = cleaned
    elif step == "other":
        sealed["other"] = cleaned
        if OTHER not in sealed["categories"]:
            sealed["categories"] = [*sealed["categories"], OTHER]
    else:
        sealed[step] = cleaned
    row.sealed = cipher.encrypt_json(sealed)
    _advance(row, step, cipher)
    return _draft(row, cipher)


async def set_choice(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    step: str,
    value: str,
    *,
    now: datetime,
) -> Draft | Rejected | None:
    """A button of a step. None: the button belongs to a step the draft is no longer at."""
    row = await _require_draft(session, actor)
    if row.step != step:
        return None
    row.updated_at = now
    sealed = _open(row, cipher)
    match step, value:
        case "danger", "yes" | "no":
            row.danger = value == "yes"
            if row.danger:
                row.urgency = Urgency.URGENT
            elif row.urgency is Urgency.URGENT:
                row.urgency = None  # urgent because of the danger; let the referrer choose again
        case "school", _:
            school = await _school(session, actor, value)
            if school is None:
                return None
            sealed["school"] = school
        case "concerns", "done":
            if not sealed["categories"]:
                return Rejected("no_concern")
        case "concerns", category if category in CATEGORIES or category == OTHER:
            chosen = list(sealed["categories"])
            if category in chosen:
                chosen.remove(category)
                if category == OTHER:
                    sealed.pop("other", None)
            elif category == OTHER:
                _move(row, "other", cipher)
                return _draft(row, cipher)
            else:
                chosen.append(category)
            sealed["categories"] = [c for c in (*CATEGORIES, OTHER) if c in chosen]
            row.sealed = cipher.encrypt_json(sealed)
            return _draft(row, cipher)  # stays on the keyboard until Done
        case "tried", "skip":
            sealed["tried"] = ""
        case "guardians", "agree" | "disagree" | "not_asked" | "not_informed":
            row.guardians_informed = value != "not_informed"
            row.guardians_consent = {
                "agree": Consent.YES,
                "disagree": Consent.NO,
            }.get(value, Consent.NOT_ASKED)
        case "urgency", _ if value in {urgency.value for urgency in Urgency}:
            # A child in danger is urgent, whatever is pressed.
            row.urgency = Urgency.URGENT if row.danger else Urgency(value)
        case _:
            return None
    row.sealed = cipher.encrypt_json(sealed)
    _advance(row, step, cipher)
    return _draft(row, cipher)


async def submit(
    session: AsyncSession, actor: Actor, cipher: Cipher, *, now: datetime
) -> Submitted | Draft:
    """Send the draft to the district's coordinators. An incomplete draft is returned as it is,
    moved to its first unanswered step."""
    row = await _require_draft(session, actor)
    draft = _draft(row, cipher)
    missing = draft.first_missing()
    if missing is not None:
        row.back_to_summary = True
        _move(row, missing, cipher)
        return _draft(row, cipher)
    assert row.urgency is not None and row.danger is not None
    row.code = await next_code(session, "R", now, district_id=row.district_id)
    row.status = ReferralStatus.SUBMITTED
    row.step = "sent"
    row.submitted_at = now
    row.updated_at = now
    # The messages stay listed until they are deleted (followed_up), so that a crash
    # between this commit and the deletion leaves the sweep something to finish.
    refs = list(row.message_refs)
    await _audit(
        session,
        row,
        actor,
        "referral.submitted",
        now=now,
        urgency=row.urgency.value,
        danger=row.danger,
    )
    return Submitted(
        referral_id=row.id,
        code=row.code,
        urgency=row.urgency,
        danger=row.danger,
        institution_name=actor.institution_name,
        message_refs=refs,
        coordinators=await coordinators(session, actor.district_id),
    )


async def next_code(
    session: AsyncSession, prefix: str, now: datetime, *, district_id: int | None = None
) -> str:
    """The next code like R-2026-0017: numbered per prefix and year (the district's local year),
    without gaps or races (the row update serialises concurrent callers)."""
    zone = "Europe/Prague"
    if district_id is not None:
        zone = (await session.get_one(District, district_id)).timezone
    key = f"{prefix}-{now.astimezone(ZoneInfo(zone)).year}"
    await insert_if_absent(session, CodeSequence, {"prefix": key, "last": 0}, ["prefix"])
    number = await session.scalar(
        update(CodeSequence)
        .where(CodeSequence.prefix == key)
        .values(last=CodeSequence.last + 1)
        .returning(CodeSequence.last)
    )
    return f"{key}-{number:04d}"


# The coordinators' side.


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
        raise _refusal(actor, "referral.view", referral_id, now=now)
    if row.purged_at is not None:
        # Anonymised after the retention period (with its case, or declined): nothing is left.
        raise _refusal(actor, "referral.view", referral_id, now=now)
    case = await session.scalar(select(Case).where(Case.referral_id == row.id))
    await _audit(session, row, actor, "referral.viewed", now=now)
    sealed = _open(row, cipher)
    referrer = await session.get_one(Member, row.referrer_id)
    institution = await session.get_one(Institution, row.institution_id)
    case_code = None if case is None else case.code
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
        case_code=case_code,
        can_decide=actor.role is Role.COORDINATOR and row.status in OPEN_STATUSES,
    )


async def accept(
    session: AsyncSession, actor: Actor, referral_id: int, *, now: datetime
) -> Decision:
    """Open a case; the coordinator who accepts becomes its case manager."""
    row = await _decide(session, actor, referral_id, ReferralStatus.ACCEPTED, now=now)
    case = Case(
        code=await next_code(session, "PK", now, district_id=row.district_id),
        district_id=row.district_id,
        referral_id=row.id,
        manager_id=actor.member_id,
        status=CaseStatus.OPEN,
        opened_at=now,
    )
    session.add(case)
    await session.flush()
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action="case.opened",
        subject_type="case",
        subject_id=case.id,
        code=case.code,
        referral=row.code,
    )
    return await _decision(session, row, case.code, case.id)


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
    _add_note(session, row, actor, NoteKind.DECLINE_REASON, cleaned, cipher=cipher, now=now)
    return await _decision(session, row, None)


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
    _add_note(session, row, actor, NoteKind.QUESTION, cleaned, cipher=cipher, now=now)
    await _audit(session, row, actor, "referral.asked", now=now)
    referrer = await session.get_one(Member, row.referrer_id)
    assert row.code is not None
    return Question(row.code, row.id, cleaned, _recipient(referrer))


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
    row = await session.get(Referral, referral_id)
    if row is None or row.referrer_id != actor.member_id:
        raise _refusal(actor, "referral.answer", referral_id, now=now)
    if row.status is not ReferralStatus.NEEDS_INFO:
        raise NotWaitingForAnswer(row.code or "")
    try:
        await _transition(session, row, (ReferralStatus.NEEDS_INFO,), ReferralStatus.SUBMITTED)
    except AlreadyDecided:
        raise NotWaitingForAnswer(row.code or "") from None
    row.nudged_at = now  # the coordinators were just told; the next nudge is a day away
    _add_note(session, row, actor, NoteKind.ANSWER, cleaned, cipher=cipher, now=now)
    await _audit(session, row, actor, "referral.answered", now=now)
    assert row.code is not None
    return Answered(row.code, row.id, await coordinators(session, row.district_id))


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
    row = await session.get(Referral, referral_id)
    if row is None or row.referrer_id != actor.member_id:
        raise _refusal(actor, "referral.answer", referral_id, now=now)
    if row.status is not ReferralStatus.NEEDS_INFO or row.code is None:
        raise NotWaitingForAnswer(row.code or "")
    return row.code


async def queue(session: AsyncSession, actor: Actor, *, now: datetime) -> list[QueueItem]:
    """The district's referrals waiting for a decision: urgent first, then oldest first."""
    _require_coordinator(actor, "referral.queue", now=now)
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
    """What a referrer may see of their referrals: code, status and date, newest first."""
    rows = await session.scalars(
        select(Referral)
        .where(Referral.referrer_id == actor.member_id)
        .order_by(Referral.created_at.desc(), Referral.id.desc())
    )
    return [OwnReferral(row.code, row.status, row.submitted_at or row.updated_at) for row in rows]


async def open_cases(session: AsyncSession, actor: Actor, *, now: datetime) -> list[OpenCase]:
    _require_coordinator(actor, "case.list", now=now)
    rows = await session.execute(
        select(Case, Member.display_name)
        .join(Member, Case.manager_id == Member.id)
        .where(Case.district_id == actor.district_id, Case.status == CaseStatus.OPEN)
        .order_by(Case.opened_at, Case.id)
    )
    return [OpenCase(case.id, case.code, case.opened_at, name) for case, name in rows]


# Reminders, nudges and unfinished follow-ups (found by the periodic sweep).


@dataclass(frozen=True)
class DraftReminder:
    referrer: Recipient
    started_at: datetime
    # An expired draft's noted messages ([id, unix time, from bot]): the expiry notice deletes
    # what Telegram still allows and says how many the referrer should delete herself.
    messages: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True)
class Waiting:
    id: int
    code: str
    urgency: Urgency
    submitted_at: datetime


@dataclass(frozen=True)
class FollowUp:
    """A sent referral whose alert or message deletion was not confirmed."""

    submitted: Submitted
    referrer: Recipient
    alert: bool


@dataclass(frozen=True)
class DueWork:
    reminders: list[DraftReminder]
    expired: list[DraftReminder]
    nudges: list[tuple[list[Recipient], list[Waiting]]]  # per district: whom, about what
    follow_ups: list[FollowUp]

    def __bool__(self) -> bool:
        return bool(self.reminders or self.expired or self.nudges or self.follow_ups)


DRAFT_REMINDER = "referral.draft_reminder"
DRAFT_EXPIRED = "referral.draft_expired"
TRIAGE_NUDGE = "referral.triage_nudge"


def _planned(due: DueWork, now: datetime, calendar: WorkingCalendar) -> list[outbox.Planned]:
    planned = []
    for kind, found, expires in (
        (DRAFT_REMINDER, due.reminders, now + policy.DRAFT_REMINDER_AFTER),
        (DRAFT_EXPIRED, due.expired, None),
    ):
        for item in found:
            member = item.referrer.member_id
            planned.append(
                outbox.Planned(
                    key=f"{kind}:m{member}:{item.started_at.isoformat()}",
                    kind=kind,
                    subject=f"member:{member}",
                    member_id=member,
                    chat_id=item.referrer.chat_id,
                    due_at=now,
                    expires_at=expires,
                    payload={"started_at": item.started_at.isoformat()}
                    | ({"messages": item.messages} if item.messages else {}),
                )
            )
    day = calendar.local(now).date().isoformat()
    for recipients, items in due.nudges:
        for recipient in recipients:
            planned.append(
                outbox.Planned(
                    key=f"{TRIAGE_NUDGE}:{day}:m{recipient.member_id}:r{items[0].id}",
                    kind=TRIAGE_NUDGE,
                    subject=f"member:{recipient.member_id}",
                    member_id=recipient.member_id,
                    chat_id=recipient.chat_id,
                    due_at=now,
                    expires_at=policy.triage_nudge_expires(now, calendar),
                    payload={"referrals": [item.id for item in items]},
                )
            )
    return planned


async def due_work(session: AsyncSession, *, now: datetime, calendar: WorkingCalendar) -> DueWork:
    """What has come due by now; each is marked done and its message planned in the outbox in
    the same transaction: nothing is sent twice and nothing is lost."""
    due = DueWork(
        reminders=await _drafts_to_remind(session, now=now, calendar=calendar),
        expired=await _expire_drafts(session, now=now),
        nudges=await _waiting_to_nudge(session, now=now, calendar=calendar),
        follow_ups=await _follow_ups(session, now=now),
    )
    await outbox.plan(session, _planned(due, now, calendar), now=now)
    return due


async def still_waiting(session: AsyncSession, referral_ids: list[int]) -> list[Waiting]:
    """Of the referrals a nudge was about, those still waiting for a decision (at send time)."""
    rows = await session.scalars(
        select(Referral)
        .where(Referral.id.in_(referral_ids), Referral.status == ReferralStatus.SUBMITTED)
        .order_by(Referral.submitted_at, Referral.id)
    )
    return [
        Waiting(
            row.id,
            row.code or "",
            row.urgency or Urgency.ROUTINE,
            row.submitted_at or row.created_at,
        )
        for row in rows
    ]


async def has_draft(session: AsyncSession, member_id: int) -> bool:
    found = await session.scalar(
        select(Referral.id)
        .where(Referral.referrer_id == member_id, Referral.status == ReferralStatus.DRAFT)
        .limit(1)
    )
    return found is not None


async def followed_up(
    session: AsyncSession,
    referral_id: int,
    *,
    now: datetime,
    remaining: list[list[int]] | None = None,
) -> None:
    """The coordinators were told and the referrer's messages deleted, but for `remaining`,
    which the sweep tries again (while Telegram still allows it)."""
    await session.execute(
        update(Referral)
        .where(Referral.id == referral_id)
        .values(alerted_at=now, message_refs=remaining or [])
        .execution_options(synchronize_session=False)
    )


async def _drafts_to_remind(
    session: AsyncSession, *, now: datetime, calendar: WorkingCalendar
) -> list[DraftReminder]:
    rows = await session.execute(
        select(Referral, Member)
        .join(Member, Referral.referrer_id == Member.id)
        .where(
            Referral.status == ReferralStatus.DRAFT,
            Referral.reminded_at.is_(None),
            Referral.updated_at <= now - policy.DRAFT_REMINDER_AFTER,
            Member.active.is_(True),
        )
    )
    found = []
    for row, member in rows:
        if policy.draft_reminder_due(row.updated_at, row.reminded_at, now, calendar):
            row.reminded_at = now
            found.append(DraftReminder(_recipient(member), row.created_at))
    return found


async def _expire_drafts(session: AsyncSession, *, now: datetime) -> list[DraftReminder]:
    """Delete drafts untouched for too long; returns whom to tell. The delete repeats the
    condition, so a draft the referrer touches at this very moment is kept."""
    cutoff = now - policy.DRAFT_KEPT_FOR
    rows = await session.execute(
        select(Referral.id, Referral.created_at, Referral.message_refs, Member)
        .join(Member, Referral.referrer_id == Member.id)
        .where(Referral.status == ReferralStatus.DRAFT, Referral.updated_at <= cutoff)
    )
    gone = []
    for referral_id, created_at, refs, member in rows.all():
        deleted = await session.execute(
            delete(Referral)
            .where(
                Referral.id == referral_id,
                Referral.status == ReferralStatus.DRAFT,
                Referral.updated_at <= cutoff,
            )
            .execution_options(synchronize_session=False)
        )
        if deleted.rowcount != 1:  # type: ignore[attr-defined]
            continue
        await audit.record(
            session,
            at=now,
            actor_id=None,
            action="referral.draft_expired",
            subject_type="referral",
            subject_id=referral_id,
        )
        if member.active:
            # The list of messages goes with the draft's row: the notice planned in this same
            # transaction carries it, so the deletion is not lost with the draft.
            gone.append(DraftReminder(_recipient(member), created_at, list(refs or [])))
    return gone


async def _waiting_to_nudge(
    session: AsyncSession, *, now: datetime, calendar: WorkingCalendar
) -> list[tuple[list[Recipient], list[Waiting]]]:
    """Per district, once per working day: every referral there that has waited more than a
    working day, as soon as one of them is due (one message, not one per referral)."""
    rows = await session.scalars(
        select(Referral)
        .where(Referral.status == ReferralStatus.SUBMITTED)
        .order_by(Referral.submitted_at, Referral.id)
    )
    waiting: dict[int, list[tuple[Referral, Waiting]]] = {}
    for row in rows:
        submitted = row.submitted_at or row.created_at
        if policy.waited_a_working_day(submitted, now, calendar):
            item = Waiting(row.id, row.code or "", row.urgency or Urgency.ROUTINE, submitted)
            waiting.setdefault(row.district_id, []).append((row, item))
    nudges = []
    for district_id, found in waiting.items():
        due = (
            policy.triage_nudge_due(item.submitted_at, row.nudged_at, now, calendar)
            for row, item in found
        )
        if not any(due):
            continue
        for row, _item in found:
            row.nudged_at = now
        nudges.append((await coordinators(session, district_id), [item for _, item in found]))
    return nudges


async def _follow_ups(session: AsyncSession, *, now: datetime) -> list[FollowUp]:
    """Sent referrals not alerted yet, or with messages still to delete (within the 48 hours
    Telegram allows), a minute after sending; marked done (the sweep re-lists what fails)."""
    deletable_since = now - timedelta(seconds=DELETABLE_FOR_SECONDS)
    rows = await session.execute(
        select(Referral, Member, Institution.name)
        .join(Member, Referral.referrer_id == Member.id)
        .join(Institution, Referral.institution_id == Institution.id)
        .where(
            Referral.status != ReferralStatus.DRAFT,
            Referral.submitted_at <= now - policy.FOLLOW_UP_AFTER,
            or_(Referral.alerted_at.is_(None), Referral.submitted_at >= deletable_since),
        )
    )
    found = []
    for row, member, institution_name in rows:
        if row.alerted_at is not None and not row.message_refs:
            continue
        assert row.code and row.urgency
        found.append(
            FollowUp(
                Submitted(
                    referral_id=row.id,
                    code=row.code,
                    urgency=row.urgency,
                    danger=bool(row.danger),
                    institution_name=institution_name,
                    message_refs=list(row.message_refs),
                    coordinators=await coordinators(session, row.district_id),
                ),
                referrer=_recipient(member),
                alert=row.alerted_at is None and row.status is ReferralStatus.SUBMITTED,
            )
        )
        row.alerted_at = row.alerted_at or now
        row.message_refs = []
    return found


# Helpers.


async def schools(session: AsyncSession, actor: Actor) -> list[tuple[int, str]]:
    """The district's schools, to pick the child's school from."""
    rows = await session.execute(
        select(Institution.id, Institution.name)
        .where(
            Institution.district_id == actor.district_id,
            Institution.kind == InstitutionKind.SCHOOL,
        )
        .order_by(Institution.name)
    )
    return [(institution_id, name) for institution_id, name in rows]


async def _school(session: AsyncSession, actor: Actor, raw_id: str) -> str | None:
    if not (raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 9):
        return None
    institution = await session.get(Institution, int(raw_id))
    if (
        institution is None
        or institution.district_id != actor.district_id
        or institution.kind is not InstitutionKind.SCHOOL
    ):
        return None
    return institution.name


async def _draft_row(session: AsyncSession, actor: Actor) -> Referral | None:
    # A step of the dialog asks for the draft several times in one transaction: after the first
    # query the session holds the row, and `get` finds it there without another one.
    key = ("draft", actor.member_id)
    known = session.info.get(key)
    if known is not None:
        row = await session.get(Referral, known)
        if row is not None and row.status is ReferralStatus.DRAFT:
            return row
    result: Referral | None = await session.scalar(
        select(Referral).where(
            Referral.referrer_id == actor.member_id, Referral.status == ReferralStatus.DRAFT
        )
    )
    if result is not None:
        session.info[key] = result.id
    return result


async def _require_draft(session: AsyncSession, actor: Actor) -> Referral:
    row = await _draft_row(session, actor)
    if row is None:
        raise NoDraft("no draft")
    return row


def _open(row: Referral, cipher: Cipher) -> dict[str, Any]:
    sealed: dict[str, Any] = cipher.decrypt_json(row.sealed)
    return sealed


def _draft(row: Referral, cipher: Cipher) -> Draft:
    sealed = _open(row, cipher)
    return Draft(
        id=row.id,
        step=row.step,
        back_to_summary=row.back_to_summary,
        danger=row.danger,
        urgency=row.urgency,
        guardians_informed=row.guardians_informed,
        guardians_consent=row.guardians_consent,
        name=sealed.get("name"),
        birth_year=sealed.get("birth_year"),
        class_name=sealed.get("class_name"),
        school=sealed.get("school"),
        categories=tuple(sealed.get("categories", ())),
        other=sealed.get("other"),
        description=sealed.get("description"),
        tried=sealed.get("tried"),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _move(row: Referral, step: str, cipher: Cipher) -> None:
    """Go to a step; the summary is shown only when nothing is missing."""
    if step == "summary":
        missing = _draft(row, cipher).first_missing()
        if missing is not None:
            row.back_to_summary = True
            row.step = missing
            return
        row.back_to_summary = False
    row.step = step


def _advance(row: Referral, answered: str, cipher: Cipher) -> None:
    """After a step is answered: the next one, or back to the summary when editing."""
    if answered in ("school", "school_name"):
        _move(row, "summary" if row.back_to_summary else "class", cipher)
        return
    if answered == "other":
        _move(row, "concerns", cipher)
        return
    if row.back_to_summary:
        _move(row, "summary", cipher)
        return
    following = ORDER[ORDER.index(answered) + 1]
    if following == "urgency" and row.danger:
        following = "summary"
    _move(row, following, cipher)


def _may_read(actor: Actor, row: Referral) -> bool:
    if row.referrer_id == actor.member_id:
        return True
    return actor.role is Role.COORDINATOR and actor.district_id == row.district_id


def _refusal(actor: Actor, action: str, referral_id: int, *, now: datetime) -> PermissionDenied:
    return audit.refusal(
        action, at=now, actor_id=actor.member_id, subject_type="referral", subject_id=referral_id
    )


def _require_coordinator(actor: Actor, action: str, *, now: datetime) -> None:
    if actor.role is not Role.COORDINATOR:
        raise audit.refusal(action, at=now, actor_id=actor.member_id, subject_type="referral")


async def _decidable(
    session: AsyncSession, actor: Actor, referral_id: int, *, action: str, now: datetime
) -> Referral:
    row = await session.get(Referral, referral_id)
    if (
        row is None
        or row.status is ReferralStatus.DRAFT
        or actor.role is not Role.COORDINATOR
        or row.district_id != actor.district_id
    ):
        raise _refusal(actor, action, referral_id, now=now)
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
    await _audit(session, row, actor, f"referral.{status.value}", now=now)
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
    by = None
    if row.decided_by_id is not None:
        by = (await session.get_one(Member, row.decided_by_id)).display_name
    return AlreadyDecided(row.code or "", row.status, by)


async def _decision(
    session: AsyncSession, row: Referral, case_code: str | None, case_id: int | None = None
) -> Decision:
    referrer = await session.get_one(Member, row.referrer_id)
    assert row.code is not None
    return Decision(
        code=row.code,
        status=row.status,
        case_code=case_code,
        referrer=_recipient(referrer),
        coordinators=await coordinators(session, row.district_id),
        case_id=case_id,
    )


async def _audit(
    session: AsyncSession,
    row: Referral,
    actor: Actor,
    action: str,
    *,
    now: datetime,
    **details: Any,
) -> None:
    """An audit entry about a referral, by its code (never its content)."""
    await audit.record(
        session,
        at=now,
        actor_id=actor.member_id,
        action=action,
        subject_type="referral",
        subject_id=row.id,
        code=row.code,
        **details,
    )


def _note_text(text: str) -> str | Rejected:
    cleaned = text.strip()
    if not cleaned:
        return Rejected("empty")
    if len(cleaned) > MAX_NOTE:
        return Rejected("too_long", {"length": len(cleaned), "limit": MAX_NOTE})
    return cleaned


def _add_note(
    session: AsyncSession,
    row: Referral,
    actor: Actor,
    kind: NoteKind,
    text: str,
    *,
    cipher: Cipher,
    now: datetime,
) -> None:
    session.add(
        ReferralNote(
            referral_id=row.id,
            author_id=actor.member_id,
            kind=kind,
            at=now,
            body=cipher.encrypt_json(text),
        )
    )


async def _notes(session: AsyncSession, referral_id: int, cipher: Cipher) -> list[Note]:
    rows = await session.execute(
        select(ReferralNote, Member.display_name)
        .join(Member, ReferralNote.author_id == Member.id)
        .where(ReferralNote.referral_id == referral_id)
        .order_by(ReferralNote.at, ReferralNote.id)
    )
    return [Note(note.kind, name, note.at, cipher.decrypt_json(note.body)) for note, name in rows]


def _recipient(member: Member) -> Recipient:
    return Recipient(member.id, member.chat_id, member.locale)
