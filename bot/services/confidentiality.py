"""Confidentiality (mlčenlivost): a member confirms, with one tap, that what they hear about a
case is confidential, before anything of a case reaches them.

The text is versioned: `VERSION` below stands beside the two wordings (the professionals' and
the guardians' plain one), and whoever changes either raises it; every member is then asked
again. A confirmation is stored (member, version, when) and audited with the version.

The rule, wherever something of a case would reach a member who has not confirmed the current
version:

- a notification of the outbox (a poll's nudge, an invitation, a reminder, a task, a digest, a
  record...) is held (`hold`), and the member gets the prompt instead, once per version (an
  outbox row of its own, `PROMPT`); when they confirm, what was held is sent (`confirm`);
- a poll sent at once (when it starts, or when someone joins) is not sent (`holds`): the poll's
  sender sends the open polls again after the confirmation;
- a command or a button that would show a case is answered with the prompt (`confirmed`,
  asked by handlers.guard).

Not held, because they are not about a case someone else tells the member of (`FREE`): what a
referrer hears about her own referral (its decision, a question about it, her draft's
reminders, its case closed), the notice of a refused e-mail address and the code that confirms
one, and the prompt itself. Every other kind waits, including kinds added later. A member's
mail about a case waits as a chat message does; guests invited by e-mail are no members and
confirm nothing here.

A referrer writes and sends a referral, and follows it, without confirming: she is its author,
she tells and does not hear. Everyone is asked right after joining all the same; the
coordinators confirm as everyone else does (they see everything).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.db import insert_if_absent
from bot.core.i18n import N_
from bot.core.models import ConfidentialityConfirmation, Institution, InstitutionKind, Member
from bot.services import addresses, audit, cases, mailing, referral_sweep, referrals

# Raise VERSION whenever MEMBER_TEXT or GUARDIAN_TEXT changes in meaning: everyone confirms anew.
VERSION = 1
MEMBER_TEXT = N_(
    "🔒 <b>Confidentiality</b>\n\n"
    "What you hear and read here about a case (the child, the family and what the other "
    "participants tell) is confidential. You use it only for your work on the case and do not "
    "pass it on to anyone who is not part of it. This lasts after the case is closed and after "
    "you leave.\n\n"
    "Please confirm it with the button below. Until then we show you nothing of any case."
)
GUARDIAN_TEXT = N_(
    "🔒 <b>What is said at the meeting stays there</b>\n\n"
    "At the meeting about your child you will hear about your family and perhaps about other "
    "people too. Please keep it to yourself and do not share it with others or on social "
    "networks. Everyone at the table keeps what they hear about your family private in the "
    "same way.\n\n"
    "Please tap the button below to say you agree. Then we send you the invitation."
)

PROMPT = "confidentiality.prompt"  # the outbox kind of the prompt
CASE = "case"  # what is sent at once, not through the outbox: a poll
ACTION = "confidentiality.confirmed"  # the audit entry's action

# What reaches a member without their confirmation (see the module's docstring).
FREE = frozenset(
    {
        PROMPT,
        referrals.ACCEPTED,
        referrals.DECLINED,
        referrals.QUESTION,
        referral_sweep.DRAFT_REMINDER,
        referral_sweep.DRAFT_EXPIRED,
        cases.CLOSED_REFERRER,
        addresses.CODE_KIND,
        mailing.REFUSED,
    }
)


class Confirmed(enum.Enum):
    NOW = "now"  # confirmed with this tap
    ALREADY = "already"  # confirmed before (a double tap): nothing changes
    STALE = "stale"  # a button of an older version: the new text must be read first


@dataclass(frozen=True)
class Prompt:
    """What a member is asked to confirm: the version, and which wording (a msgid)."""

    version: int
    guardian: bool

    @property
    def text(self) -> str:
        return GUARDIAN_TEXT if self.guardian else MEMBER_TEXT


async def confirmed(session: AsyncSession, member_id: int) -> bool:
    """Whether the member has confirmed the current version."""
    found = await session.scalar(
        select(ConfidentialityConfirmation.member_id).where(
            ConfidentialityConfirmation.member_id == member_id,
            ConfidentialityConfirmation.version == VERSION,
        )
    )
    return found is not None


async def _institution_kind(session: AsyncSession, member_id: int) -> InstitutionKind | None:
    """The kind of the member's institution (it picks the wording); None for no member."""
    return await session.scalar(
        select(Institution.kind)
        .join(Member, Member.institution_id == Institution.id)
        .where(Member.id == member_id)
    )


async def prompt_for(session: AsyncSession, member_id: int) -> Prompt | None:
    """What the member is to confirm; None when they have confirmed (or are no member)."""
    if await confirmed(session, member_id):  # most members, on every update the guard sees
        return None
    kind = await _institution_kind(session, member_id)
    if kind is None:
        return None
    return Prompt(VERSION, guardian=kind is InstitutionKind.GUARDIANS)


async def ask(session: AsyncSession, member_id: int, *, now: datetime) -> None:
    """Plan the prompt for the member, once per version (planning it again is a no-op)."""
    prompt = outbox.about_member(
        member_id, f"confidentiality:{member_id}:{VERSION}", PROMPT, due_at=now
    )
    await outbox.plan(session, [prompt], now=now)


async def holds(session: AsyncSession, member_id: int, kind: str, *, now: datetime) -> bool:
    """Whether a notification of this kind must wait for the member's confirmation; if it
    must, the member is asked (once)."""
    if kind in FREE or await confirmed(session, member_id):
        return False
    await ask(session, member_id, now=now)
    return True


async def hold(
    session: AsyncSession, row_id: int, member_id: int, kind: str, *, now: datetime
) -> bool:
    """A claimed outbox row, put aside until the member confirms, if it must wait."""
    if not await holds(session, member_id, kind, now=now):
        return False
    await outbox.hold(session, row_id, now=now)
    return True


async def _store(session: AsyncSession, member_id: int, *, now: datetime) -> None:
    """The current version confirmed for the member (a second time is a no-op)."""
    await insert_if_absent(
        session,
        ConfidentialityConfirmation,
        {"member_id": member_id, "version": VERSION, "confirmed_at": now},
        ["member_id", "version"],
    )


async def confirm(
    session: AsyncSession, member_id: int, version: int, *, now: datetime
) -> Confirmed:
    """The member's tap: stored and audited with the version, and what was held for them is
    sent. A second tap changes nothing; a tap on an older version's button confirms nothing."""
    if version != VERSION:
        return Confirmed.STALE
    if await confirmed(session, member_id):
        return Confirmed.ALREADY
    kind = await _institution_kind(session, member_id)
    await _store(session, member_id, now=now)
    await audit.on_self(
        session,
        member_id,
        ACTION,
        at=now,
        version=VERSION,
        wording="guardian" if kind is InstitutionKind.GUARDIANS else "member",
    )
    await outbox.unhold(session, member_id=member_id)
    return Confirmed.NOW


async def record_seeded(
    session: AsyncSession, *, now: datetime, member_ids: list[int] | None = None
) -> None:
    """The current version confirmed for members a seed put in the database directly (the
    tests' and benchmarks' worlds), who never saw a prompt: the given ones, or every member
    without it. Not audited, since nobody tapped; whoever joins through the bot confirms with
    `confirm`."""
    if member_ids is None:
        done = select(ConfidentialityConfirmation.member_id).where(
            ConfidentialityConfirmation.version == VERSION
        )
        member_ids = list(await session.scalars(select(Member.id).where(Member.id.not_in(done))))
    for member_id in member_ids:
        await _store(session, member_id, now=now)
