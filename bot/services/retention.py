"""Retention: anonymising the closed cases and declined referrals past the retention period
(the data protection officer's `purge`, from the command line), with the guardians whose last
case that was. Codes, dates and statuses stay, for the statistics; the audit entries name the
operator (bot.services.privacy.Operator)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.crypto import Cipher
from bot.core.mail_tables import EmailConfirmation
from bot.core.method_tables import ConferenceMethod
from bot.core.models import (
    AuditEntry,
    Base,
    BusyTime,
    Case,
    CaseStatus,
    Channel,
    Conference,
    HandledUpdate,
    Institution,
    InstitutionKind,
    Invitation,
    InviteMessage,
    JoinAttempt,
    Member,
    OutboxRow,
    OutboxStatus,
    PollMessage,
    RecordComment,
    Referral,
    ReferralNote,
    ReferralStatus,
    Task,
    TaskNote,
)
from bot.core.web_tables import WebLink
from bot.services import audit, members
from bot.services.board import conference_subject
from bot.services.privacy import Operator


@dataclass(frozen=True)
class PastRetention:
    """A closed case or a declined referral past retention, and how many of its rows hold
    something to wipe (or delete, or, `members`, guardians to anonymise)."""

    code: str
    ended: str  # "closed" (a case) or "declined" (a referral that never became one)
    ended_at: datetime
    counts: dict[str, int]


def retention_cutoff(now: datetime, years: int) -> datetime:
    """Cases closed (and referrals declined) before this moment are past retention: the same
    day `years` years ago (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def wiped(cipher: Cipher) -> dict[type[Base], dict[str, Any]]:
    """What anonymising leaves in a case's rows: every encrypted column NULL where the schema
    allows it, else an encrypted empty value of the shape its readers expect; the free text
    that could name someone (the place, typed by the coordinator) empty; the referrer's
    message ids (of messages that carried the child's data) and the coordinator's poll board
    gone. Codes, dates, statuses, answers and attendance stay, for the statistics."""
    return {
        Referral: {"sealed": cipher.encrypt_json({}), "message_refs": []},
        ReferralNote: {"body": cipher.encrypt_json("")},
        Conference: {
            "summary": None,
            "place": "",
            "board_chat_id": None,
            "board_message_id": None,
        },
        Invitation: {"decline_reason": None, "email": None, "guest_name": None},
        Task: {"title": cipher.encrypt(b""), "party_name": None},
        TaskNote: {"body": cipher.encrypt(b"")},
        ConferenceMethod: {"goal": None, "support": None, "reason": None, "child_view": None},
        RecordComment: {"text": cipher.encrypt(b"")},
    }


def _referral_rows(referral_id: int | None) -> dict[type[Base], Any]:
    """Which rows of each table belong to a referral (a WHERE clause)."""
    return {
        Referral: Referral.id == referral_id,
        ReferralNote: ReferralNote.referral_id == referral_id,
    }


def _invitations_of(*cases: Any) -> Any:
    """The ids of the invitations to the conferences of the cases that meet the conditions."""
    return (
        select(Invitation.id)
        .join(Conference, Invitation.conference_id == Conference.id)
        .join(Case, Conference.case_id == Case.id)
        .where(*cases)
    )


def _rows_of(case: Case) -> dict[type[Base], Any]:
    """Which rows of each table belong to the case (a WHERE clause)."""
    tasks = select(Task.id).where(Task.case_id == case.id)
    return {
        **_referral_rows(case.referral_id),
        Conference: Conference.case_id == case.id,
        Invitation: Invitation.id.in_(_invitations_of(Case.id == case.id)),
        Task: Task.case_id == case.id,
        TaskNote: TaskNote.task_id.in_(tasks),
        ConferenceMethod: ConferenceMethod.conference_id.in_(
            select(Conference.id).where(Conference.case_id == case.id)
        ),
        RecordComment: RecordComment.invitation_id.in_(_invitations_of(Case.id == case.id)),
    }


def _dropped_of(case: Case) -> dict[type[Base], Any]:
    """The case's rows that only pointed into people's chats (the calendar invitations and
    polls sent, with the answers not yet sent) or to a guest's page (their personal links):
    deleted, not wiped."""
    invitations = _invitations_of(Case.id == case.id)
    return {
        InviteMessage: InviteMessage.invitation_id.in_(invitations),
        PollMessage: PollMessage.invitation_id.in_(invitations),
        WebLink: WebLink.invitation_id.in_(invitations),
    }


# Who answered for, accepted, was handed or attended an invitation: the people it links.
_INVITED = (
    Invitation.member_id,
    Invitation.answered_by_id,
    Invitation.rsvp_by_id,
    Invitation.delegate_id,
    Invitation.attendee_id,
)
GUARDIAN_LABEL = "guardian"


async def _people_invited(session: AsyncSession, invitations: Any) -> set[int]:
    """The members the invitations link (a guardian who joins by a link becomes its member)."""
    found: set[int] = set()
    for column in _INVITED:
        query = select(column).where(Invitation.id.in_(invitations))
        found |= {member_id for member_id in await session.scalars(query) if member_id}
    return found


async def _guardians_to_forget(session: AsyncSession, case: Case) -> list[Member]:
    """The guardians who joined by a link to the case's conferences, not yet anonymised, whose
    last case not yet purged this is (one linked to another such case waits for that one)."""
    mine = await _people_invited(session, _invitations_of(Case.id == case.id))
    others = await _people_invited(
        session, _invitations_of(Case.id != case.id, Case.purged_at.is_(None))
    )
    query = (
        select(Member)
        .join(Institution, Member.institution_id == Institution.id)
        .where(
            Member.id.in_(mine - others),
            Institution.kind == InstitutionKind.GUARDIANS,
            Member.telegram_user_id > 0,  # an anonymised one has a negative one
        )
        .order_by(Member.id)
    )
    return list(await session.scalars(query))


async def _forget(session: AsyncSession, guardian: Member, *, now: datetime) -> None:
    """The guardian's row stays (statistics and foreign keys hold), with nothing that names or
    reaches the person: their name becomes GUARDIAN_LABEL, the e-mail goes, and their Telegram
    user and chat id become minus the row's id everywhere, the audit log included (Telegram's
    user ids are positive, so it can never match anyone, and the person joining again is a new
    member). Their dialog state, busy times, join attempts and addresses waiting for their code
    are deleted; the mails to them keep no address."""
    pseudonym = -guardian.id
    await members.forget_dialog_state(session, guardian)
    for query in (
        delete(HandledUpdate).where(HandledUpdate.chat_id == guardian.chat_id),
        delete(JoinAttempt).where(JoinAttempt.telegram_user_id == guardian.telegram_user_id),
        delete(BusyTime).where(BusyTime.member_id == guardian.id),
        delete(EmailConfirmation).where(EmailConfirmation.member_id == guardian.id),
    ):
        await session.execute(query)
    await _unaddress(session, OutboxRow.member_id == guardian.id, now=now)
    for model in (OutboxRow, InviteMessage, PollMessage):
        await session.execute(
            update(model).where(model.member_id == guardian.id).values(chat_id=pseudonym)
        )
    # A button they pressed as a leaver was refused and audited under their Telegram id.
    await session.execute(
        update(AuditEntry)
        .where(
            AuditEntry.subject_type == "telegram_user",
            AuditEntry.subject_id == str(guardian.telegram_user_id),
        )
        .values(subject_id=str(pseudonym))
    )
    guardian.display_name = GUARDIAN_LABEL
    guardian.email = None
    guardian.telegram_user_id = pseudonym
    guardian.chat_id = pseudonym
    guardian.active = False
    guardian.reachable = False
    guardian.deactivated_at = guardian.deactivated_at or now


async def _unaddress(session: AsyncSession, rows: Any, *, now: datetime) -> None:
    """The mail rows among `rows` (a WHERE clause on the outbox) keep no address; one still
    waiting to go is cancelled (a mail without its address cannot go)."""
    mail = (OutboxRow.channel == Channel.MAIL) & rows
    waiting = OutboxRow.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING))
    await session.execute(
        update(OutboxRow)
        .where(mail, waiting)
        .values(status=OutboxStatus.CANCELLED, done_at=now, outcome="purged")
    )
    await session.execute(update(OutboxRow).where(mail).values(address=None))


async def _count(session: AsyncSession, where: dict[type[Base], Any]) -> dict[str, int]:
    counts = {}
    for model, condition in where.items():
        query = select(func.count()).select_from(model).where(condition)
        counts[model.__tablename__] = int(await session.scalar(query) or 0)
    return counts


async def _counts(session: AsyncSession, case: Case) -> dict[str, int]:
    """Rows of the case that hold something to wipe or delete, per table (an invitation only
    when it carries a reason for declining), and the guardians to anonymise."""
    where = _rows_of(case)
    where[Invitation] = where[Invitation] & Invitation.decline_reason.is_not(None)
    counts = await _count(session, {**where, **_dropped_of(case)})
    counts[Member.__tablename__] = len(await _guardians_to_forget(session, case))
    return counts


def _ended_before(model: type[Case | Referral], ended: Any, cutoff: datetime, kind: Any) -> Any:
    """The model's rows of the kind that ended (`ended`) before the cutoff, not yet purged."""
    return (
        select(model)
        .where(kind, ended < cutoff, model.purged_at.is_(None))
        .order_by(ended, model.code)
    )


def _cases_past_retention(now: datetime, years: int) -> Any:
    cutoff = retention_cutoff(now, years)
    return _ended_before(Case, Case.closed_at, cutoff, Case.status == CaseStatus.CLOSED)


def _declined_past_retention(now: datetime, years: int) -> Any:
    """Referrals declined before the cutoff: they never became a case, so nothing else would
    ever purge them."""
    cutoff = retention_cutoff(now, years)
    declined = Referral.status == ReferralStatus.DECLINED
    return _ended_before(Referral, Referral.decided_at, cutoff, declined)


def _declined(referral: Referral, counts: dict[str, int]) -> PastRetention:
    assert referral.code is not None and referral.decided_at is not None
    return PastRetention(referral.code, "declined", referral.decided_at, counts)


def _closed(case: Case, counts: dict[str, int]) -> PastRetention:
    assert case.closed_at is not None
    return PastRetention(case.code, "closed", case.closed_at, counts)


async def purgeable(session: AsyncSession, *, now: datetime, years: int) -> list[PastRetention]:
    """The closed cases, then the declined referrals, `purge` would anonymise now; changes
    nothing."""
    found = [
        _closed(case, await _counts(session, case))
        for case in await session.scalars(_cases_past_retention(now, years))
    ]
    for referral in await session.scalars(_declined_past_retention(now, years)):
        found.append(_declined(referral, await _count(session, _referral_rows(referral.id))))
    return found


async def purge(
    session: AsyncSession, cipher: Cipher, operator: Operator, *, now: datetime, years: int
) -> list[PastRetention]:
    """Anonymise every closed case past retention (see `wiped`; the calendar invitations and
    polls sent are deleted, and its guardians anonymised when it was their last case) and
    every referral declined before the cutoff, mark each purged (the case's mails, to guests and
    members alike, keep no address), with a `case.purged` or
    `referral.purged` audit entry naming the operator. Nothing is purged twice."""
    purged = []
    values = wiped(cipher)
    # Locked, so two purges at once cannot both take a case (PostgreSQL; SQLite's writers
    # take turns anyway).
    for case in list(await session.scalars(_cases_past_retention(now, years).with_for_update())):
        counts = await _counts(session, case)
        await _wipe(session, _rows_of(case), values)
        for model, condition in _dropped_of(case).items():
            await session.execute(delete(model).where(condition))
        conferences = await session.scalars(
            select(Conference.id).where(Conference.case_id == case.id)
        )
        subjects = [conference_subject(conference_id) for conference_id in conferences]
        await _unaddress(session, OutboxRow.subject.in_(subjects), now=now)
        for guardian in await _guardians_to_forget(session, case):
            await _forget(session, guardian, now=now)
        await session.execute(
            update(Referral).where(Referral.id == case.referral_id).values(purged_at=now)
        )
        case.purged_at = now
        purged.append(_closed(case, counts))
        await _audit_purge(session, operator, "case", case.id, done=purged[-1], now=now)
    declined = _declined_past_retention(now, years).with_for_update()
    for referral in list(await session.scalars(declined)):
        where = _referral_rows(referral.id)
        counts = await _count(session, where)
        await _wipe(session, where, values)
        referral.purged_at = now
        purged.append(_declined(referral, counts))
        await _audit_purge(session, operator, "referral", referral.id, done=purged[-1], now=now)
    return purged


async def _wipe(
    session: AsyncSession, where: dict[type[Base], Any], values: dict[type[Base], dict[str, Any]]
) -> None:
    """The rows that `where` names, per table, set to what `wiped` leaves in them."""
    for model, condition in where.items():
        await session.execute(update(model).where(condition).values(**values[model]))


async def _audit_purge(
    session: AsyncSession,
    operator: Operator,
    subject_type: str,
    subject_id: int,
    *,
    done: PastRetention,
    now: datetime,
) -> None:
    await audit.record(
        session,
        at=now,
        actor_id=None,
        action=f"{subject_type}.purged",
        subject_type=subject_type,
        subject_id=subject_id,
        **{subject_type: done.code},
        wiped=done.counts,
        **operator.details(),
    )
