"""The referrer's draft: the dialog step by step, the messages that carried the child's data
(to delete from the chat), and sending it to the district's coordinators; bot.services.referrals
takes it from there.

The child's details live in one encrypted JSON document per referral (`Referral.sealed`); the
plain columns hold only what the queue and the notifications need.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.crypto import Cipher
from bot.core.models import (
    Consent,
    Institution,
    InstitutionKind,
    Referral,
    ReferralStatus,
    Role,
    Urgency,
)
from bot.services import audit
from bot.services.cases import next_code
from bot.services.members import Actor
from bot.services.referrals import (
    ReferralError,
    Rejected,
    alert_coordinators,
    audit_referral,
    open_sealed,
)

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


class NoDraft(ReferralError):
    """The draft is gone: sent, cancelled or expired."""


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
class Submitted:
    referral_id: int
    code: str
    message_refs: list[list[int]]
    alerted: int  # how many coordinators the alert goes to (the active ones the bot can reach)


# The dialog.


def can_refer(actor: Actor) -> bool:
    return actor.role in REFERRER_ROLES


def require_referrer(actor: Actor, *, now: datetime) -> None:
    """Referrers (and coordinators) report concerns; anyone else's attempt is refused, audited."""
    if not can_refer(actor):
        raise audit.refused(actor, "referral", "referral", at=now)


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
        _note(row, message_id, sent_at, now=now, from_bot=from_bot)


async def typed_step(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    text: str | None,
    *,
    message_id: int,
    sent_at: int,
    now: datetime,
) -> tuple[Draft, Rejected | None]:
    """What the referrer sent at the draft's current step (`text` None: not text, a photo or a
    voice message, say): the message is noted, since whatever is sent here may name the child,
    and the text applied. The draft as it now stands, with the rejection if it was refused: the
    draft is then left at its step, which is asked again."""
    row = await _require_draft(session, actor)
    _note(row, message_id, sent_at, now=now, from_bot=False)
    rejected = Rejected("not_text") if text is None else _apply_text(row, cipher, text, now=now)
    return _draft(row, cipher), rejected


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
    rejected = _apply_text(row, cipher, text, now=now)
    return _draft(row, cipher) if rejected is None else rejected


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
    sealed = open_sealed(row, cipher)
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
    """Send the draft to the district's coordinators: their alert is planned in the outbox with
    the referral itself. An incomplete draft is returned as it is, moved to its first
    unanswered step."""
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
    await audit_referral(
        session,
        row,
        actor,
        "referral.submitted",
        now=now,
        urgency=row.urgency.value,
        danger=row.danger,
    )
    alerted = await alert_coordinators(session, row, now=now)
    return Submitted(row.id, row.code, refs, alerted)


async def followed_up(
    session: AsyncSession, referral_id: int, *, remaining: list[list[int]] | None = None
) -> None:
    """The referrer's messages were deleted, but for `remaining`, which the sweep tries again
    (while Telegram still allows it)."""
    await session.execute(
        update(Referral)
        .where(Referral.id == referral_id)
        .values(message_refs=remaining or [])
        .execution_options(synchronize_session=False)
    )


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


# Helpers.


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


def _note(row: Referral, message_id: int, sent_at: int, *, now: datetime, from_bot: bool) -> None:
    row.message_refs = [*row.message_refs, [message_id, sent_at, int(from_bot)]]
    if not from_bot:
        row.updated_at = now


def _apply_text(row: Referral, cipher: Cipher, text: str, *, now: datetime) -> Rejected | None:
    """The typed answer applied to the draft's current step; the rejection, if it is refused."""
    row.updated_at = now
    step = row.step
    if step not in TEXT_STEPS:
        return Rejected("buttons")
    cleaned = text.strip() if step in ("description", "tried") else " ".join(text.split())
    if not cleaned:
        return Rejected("empty")
    sealed = open_sealed(row, cipher)
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
    return None


async def _draft_row(session: AsyncSession, actor: Actor) -> Referral | None:
    result: Referral | None = await session.scalar(
        select(Referral).where(
            Referral.referrer_id == actor.member_id, Referral.status == ReferralStatus.DRAFT
        )
    )
    return result


async def _require_draft(session: AsyncSession, actor: Actor) -> Referral:
    row = await _draft_row(session, actor)
    if row is None:
        raise NoDraft("no draft")
    return row


def _draft(row: Referral, cipher: Cipher) -> Draft:
    sealed = open_sealed(row, cipher)
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
