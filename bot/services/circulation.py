"""A finished record circulated for comments, then sent as final.

When the coordinator finishes the record, its draft goes to every institution (and guardian)
that took part: to the person who came for it, or, if they no longer use the bot, to whoever may
answer for the invitation (its institution's other members, the guardian who joined); one who
leaves while the round is open hands the draft on to them the same way. Offline
guardians and guests by e-mail have no chat: the coordinator hands them the record on paper.
Each recipient gets the draft as a protected document (each sending audited) with a deadline for
comments (3 working days of the district's calendar, at the end of the working day), a reminder
the working day before, and Comment / No comments. One answer counts per invitation; a comment
(bounded, encrypted) goes to the coordinator, also after the deadline (marked late). At the
deadline the coordinator hears who answered; the coordinator may edit the record and then sends
the final one to the same people: it says who commented, who had no comments and who did not
answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import outbox
from bot.core.circulation_tables import RecordCirculation, RecordComment, RecordReply, Reply
from bot.core.crypto import Cipher
from bot.core.models import (
    Case,
    CaseStatus,
    Conference,
    District,
    Institution,
    Invitation,
    InvitationKind,
    Member,
)
from bot.core.record import RecordDocument
from bot.services import audit, records
from bot.services.board import answerers, district_calendar, own_conference, today_in
from bot.services.members import Actor
from bot.services.records import document_of, finish_record
from bot.services.tasks import TaskError, clean_text

DRAFT = "record.draft"
FINAL = "record.final"
REMIND = "record.remind"
COMMENT = "record.comment"
CLOSED = "record.closed"
COMMENT_MAX = 1000
WORKING_DAYS = 3  # for comments, in the district's calendar
KEEP = timedelta(days=30)  # a notification still worth sending this long after it was due


class NotCirculated(TaskError):
    """The record has not been finished (so not circulated) yet."""


@dataclass(frozen=True)
class Answered:
    code: str
    reply: Reply  # the invitation's answer now
    saved: bool  # this press changed it (False: the same button again, or answered before)
    late: bool
    final: bool  # the final record has gone out already


@dataclass(frozen=True)
class Final:
    code: str
    first: bool  # False: it had gone out before (the same button again)
    final_at: datetime
    recipients: int


@dataclass(frozen=True)
class CommentNotice:
    comment_id: int
    conference_id: int
    code: str
    institution: str  # or "" for a guardian (number > 0)
    guardian: int
    author: str
    late: bool


@dataclass(frozen=True)
class Round:
    """Where the comments stand, for the coordinator at the deadline."""

    conference_id: int
    code: str
    commented: int
    no_comments: int
    unanswered: int


def subject(conference_id: int) -> str:
    return f"record:{conference_id}"


def _late(circulation: RecordCirculation, now: datetime) -> bool:
    return now > circulation.comments_until


# Who gets the draft.


async def people_of(
    session: AsyncSession, invitation: Invitation, conference: Conference
) -> list[Member]:
    """Who gets the record for an invitation that took part: the one who came, if they still
    use the bot, else whoever may answer for it; nobody for offline guardians and guests."""
    if not invitation.attended or invitation.kind not in (
        InvitationKind.INSTITUTION,
        InvitationKind.GUARDIAN,
    ):
        return []
    if invitation.attendee_id is not None:
        attendee = await session.get(Member, invitation.attendee_id)
        if attendee is not None and attendee.active and attendee.id != conference.coordinator_id:
            return [attendee]
    return await answerers(session, invitation, conference)


async def _recipients(
    session: AsyncSession, conference: Conference
) -> list[tuple[Invitation, list[Member]]]:
    invitations = await session.scalars(
        select(Invitation)
        .where(Invitation.conference_id == conference.id)
        .order_by(Invitation.kind, Invitation.number, Invitation.id)
    )
    found = [(i, await people_of(session, i, conference)) for i in invitations]
    return [(invitation, people) for invitation, people in found if people]


def comment_deadline(district: District, now: datetime) -> tuple[datetime, datetime]:
    """The end of the working day 3 working days from today, and the start of the working day
    before it (the reminder)."""
    calendar = district_calendar(district)
    today = today_in(district, now)
    last = calendar.add_working_days_to_date(today, WORKING_DAYS)
    until = datetime.combine(last, district.day_ends, tzinfo=calendar.zone)
    before = calendar.add_working_days_to_date(today, WORKING_DAYS - 1)
    remind = datetime.combine(before, district.day_starts, tzinfo=calendar.zone)
    return until, remind


# The coordinator: circulating, and sending the final record.


async def finish(session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime) -> None:
    """Finish: the record is done (each task to its owner, `records.finish_record`) and its
    draft goes to the participants for comments (once)."""
    await finish_record(session, actor, conference_id, now=now)
    await circulate(session, actor, conference_id, now=now)


async def circulate(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> None:
    """The draft goes out (once: finishing again changes nothing); not before it is finished."""
    conference = await own_conference(session, actor, conference_id, now=now)
    if conference.recorded_at is None:
        return
    if await session.get(RecordCirculation, conference.id) is not None:
        return
    district = await session.get_one(District, conference.district_id)
    until, remind = comment_deadline(district, now)
    session.add(RecordCirculation(conference_id=conference.id, sent_at=now, comments_until=until))
    items: list[outbox.Planned] = []
    recipients = await _recipients(session, conference)
    for invitation, people in recipients:
        session.add(RecordReply(invitation_id=invitation.id, conference_id=conference.id))
        items += _draft_rows(conference, invitation, people, until, remind, now=now)
    closed = _row(
        "closed",
        CLOSED,
        conference,
        conference.coordinator_id,
        due=until,
        payload={"conference": conference.id},
    )
    await outbox.plan(session, [*items, closed], now=now)
    await audit.acted(
        session,
        actor,
        "record.circulated",
        conference,
        at=now,
        invitations=len(recipients),
        people=sum(len(people) for _i, people in recipients),
    )


def _draft_rows(
    conference: Conference,
    invitation: Invitation,
    people: list[Member],
    until: datetime,
    remind: datetime,
    *,
    now: datetime,
) -> list[outbox.Planned]:
    """The draft for each of the people, and its reminder if that is still ahead; a key
    planned before (the draft they have had) is left as it is."""
    items: list[outbox.Planned] = []
    payload = {"conference": conference.id, "invitation": invitation.id}
    for person in people:
        items.append(
            _row(f"{person.id}:draft", DRAFT, conference, person.id, due=now, payload=payload)
        )
        if remind > now:
            items.append(
                _row(
                    f"{person.id}:remind",
                    REMIND,
                    conference,
                    person.id,
                    due=remind,
                    payload=payload,
                    expires=until,
                )
            )
    return items


async def hand_over(session: AsyncSession, leaver: Member, *, now: datetime) -> None:
    """A leaver (deactivated in this transaction) held the draft of a round still open for
    their institution: the draft, with its buttons and its reminder, goes to whoever answers
    for the invitation now, so the institution can still comment or say it has none."""
    rows = await session.execute(
        select(Invitation, Conference, RecordCirculation)
        .join(Conference, Invitation.conference_id == Conference.id)
        .join(RecordCirculation, RecordCirculation.conference_id == Conference.id)
        .join(RecordReply, RecordReply.invitation_id == Invitation.id)
        .join(Case, Conference.case_id == Case.id)
        .where(
            Invitation.kind == InvitationKind.INSTITUTION,
            Invitation.institution_id == leaver.institution_id,
            RecordCirculation.final_at.is_(None),
            Case.status == CaseStatus.OPEN,
        )
        .order_by(Invitation.id)
    )
    items: list[outbox.Planned] = []
    for invitation, conference, circulation in rows:
        district = await session.get_one(District, conference.district_id)
        until, remind = comment_deadline(district, circulation.sent_at)
        people = await people_of(session, invitation, conference)
        items += _draft_rows(conference, invitation, people, until, remind, now=now)
    await outbox.plan(session, items, now=now)


def _row(
    key: str,
    kind: str,
    conference: Conference,
    member_id: int,
    *,
    due: datetime,
    payload: dict[str, int],
    expires: datetime | None = None,
) -> outbox.Planned:
    """A row about the conference's record, its key after the record's subject."""
    return outbox.about(
        subject(conference.id),
        key,
        kind,
        member_id,
        due_at=due,
        expires_at=expires or due + KEEP,
        payload=payload,
    )


async def send_final(
    session: AsyncSession, actor: Actor, conference_id: int, *, now: datetime
) -> Final:
    """The final record to everyone the draft went to (as they are now); once."""
    conference = await own_conference(session, actor, conference_id, now=now)
    circulation = await session.get(RecordCirculation, conference.id)
    if circulation is None:
        raise NotCirculated("not circulated")
    case = await session.get_one(Case, conference.case_id)
    if circulation.final_at is not None:
        return Final(case.code, False, circulation.final_at, 0)
    circulation.final_at = now
    circulated = set(
        await session.scalars(
            select(RecordReply.invitation_id).where(RecordReply.conference_id == conference.id)
        )
    )
    items = [
        _row(
            f"{person.id}:final",
            FINAL,
            conference,
            person.id,
            due=now,
            payload={"conference": conference.id, "invitation": invitation.id},
        )
        for invitation, people in await _recipients(session, conference)
        if invitation.id in circulated
        for person in people
    ]
    await outbox.plan(session, items, now=now)
    await audit.acted(session, actor, "record.final", conference, at=now, people=len(items))
    return Final(case.code, True, now, len(items))


# The participants: the document, the answers.


async def circulated_document(
    session: AsyncSession,
    cipher: Cipher,
    conference_id: int,
    invitation_id: int,
    member_id: int,
    *,
    final: bool,
    now: datetime,
) -> RecordDocument | None:
    """The draft (or the final) for one recipient, if it still goes to them (they still answer
    for the invitation; a draft not yet overtaken by the final); the sending is audited."""
    circulation = await session.get(RecordCirculation, conference_id)
    if circulation is None or (circulation.final_at is not None) != final:
        return None
    conference = await session.get_one(Conference, conference_id)
    invitation = await session.get(Invitation, invitation_id)
    if invitation is None or invitation.conference_id != conference_id:
        return None
    if member_id not in {m.id for m in await people_of(session, invitation, conference)}:
        return None
    await audit.record(
        session,
        at=now,
        actor_id=None,
        action="record.final_sent" if final else "record.draft_sent",
        subject_type="conference",
        subject_id=conference_id,
        member=member_id,
        invitation=invitation_id,
    )
    return await document_of(session, cipher, conference, now=now)


async def _reply_of(
    session: AsyncSession, actor: Actor, invitation_id: int, action: str, *, now: datetime
) -> tuple[RecordReply, RecordCirculation, Conference]:
    """The answer the actor may give for a circulated invitation; anyone else is refused."""
    reply = await session.get(RecordReply, invitation_id)
    invitation = await session.get(Invitation, invitation_id)
    if reply is None or invitation is None:
        raise audit.refused(actor, action, "invitation", invitation_id, at=now)
    conference = await session.get_one(Conference, invitation.conference_id)
    people = await people_of(session, invitation, conference)
    if actor.member_id not in {m.id for m in people}:
        raise audit.refused(actor, action, "invitation", invitation_id, at=now)
    circulation = await session.get_one(RecordCirculation, conference.id)
    return reply, circulation, conference


async def _code(session: AsyncSession, conference: Conference) -> str:
    return (await session.get_one(Case, conference.case_id)).code


async def no_comments(
    session: AsyncSession, actor: Actor, invitation_id: int, *, now: datetime
) -> Answered:
    """No comments on the draft; harmless again, and after a comment it stays "commented"."""
    reply, circulation, conference = await _reply_of(
        session, actor, invitation_id, "record.reply", now=now
    )
    final = circulation.final_at is not None
    late = _late(circulation, now)
    saved = reply.reply is Reply.NONE and not final
    if saved:
        reply.reply, reply.member_id, reply.answered_at = Reply.NO_COMMENTS, actor.member_id, now
        reply.late = late
        invitation = await session.get_one(Invitation, invitation_id)
        await audit.acted(session, actor, "record.no_comments", invitation, at=now)
    return Answered(await _code(session, conference), reply.reply, saved, late, final)


async def commentable(
    session: AsyncSession, actor: Actor, invitation_id: int, *, now: datetime
) -> str:
    """The case code, if the actor may comment for the invitation (before typing it)."""
    _reply, _circulation, conference = await _reply_of(
        session, actor, invitation_id, "record.comment", now=now
    )
    return await _code(session, conference)


async def add_comment(
    session: AsyncSession,
    actor: Actor,
    cipher: Cipher,
    invitation_id: int,
    text: str,
    *,
    now: datetime,
) -> Answered:
    """A comment, stored encrypted and passed to the coordinator (marked late after the
    deadline, also after the final record went out)."""
    reply, circulation, conference = await _reply_of(
        session, actor, invitation_id, "record.comment", now=now
    )
    value = clean_text(text, COMMENT_MAX, one_line=False)
    late = _late(circulation, now)
    comment = RecordComment(
        invitation_id=invitation_id,
        member_id=actor.member_id,
        at=now,
        text=cipher.encrypt(value.encode()),
        late=late,
    )
    session.add(comment)
    await session.flush()
    final = circulation.final_at is not None
    if not final and reply.reply is not Reply.COMMENTED:
        reply.reply, reply.member_id, reply.answered_at = Reply.COMMENTED, actor.member_id, now
        reply.late = late
    notice = _row(
        f"comment:{comment.id}",
        COMMENT,
        conference,
        conference.coordinator_id,
        due=now,
        payload={"comment": comment.id},
    )
    await outbox.plan(session, [notice], now=now)
    invitation = await session.get_one(Invitation, invitation_id)
    await audit.acted(
        session, actor, "record.commented", invitation, at=now, comment=comment.id, late=late
    )
    return Answered(await _code(session, conference), Reply.COMMENTED, True, late, final)


# What the notifications say, read when they are sent.


async def comment_notice(session: AsyncSession, comment_id: int) -> CommentNotice | None:
    comment = await session.get(RecordComment, comment_id)
    if comment is None:
        return None
    invitation = await session.get_one(Invitation, comment.invitation_id)
    conference = await session.get_one(Conference, invitation.conference_id)
    author = await session.get_one(Member, comment.member_id)
    institution = ""
    if invitation.kind is InvitationKind.INSTITUTION and invitation.institution_id:
        institution = (await session.get_one(Institution, invitation.institution_id)).name
    return CommentNotice(
        comment.id,
        conference.id,
        await _code(session, conference),
        institution,
        0 if institution else invitation.number,
        author.display_name,
        comment.late,
    )


async def read_comment(
    session: AsyncSession, actor: Actor, cipher: Cipher, comment_id: int, *, now: datetime
) -> tuple[CommentNotice, str]:
    """A comment's text, for the district's coordinators only; the reading is audited."""
    notice = await comment_notice(session, comment_id)
    if notice is None:
        raise audit.refused(actor, "record.comment_read", "comment", comment_id, at=now)
    conference = await own_conference(session, actor, notice.conference_id, now=now)
    comment = await session.get_one(RecordComment, comment_id)
    await audit.acted(session, actor, "record.comment_read", conference, at=now, comment=comment_id)
    return notice, cipher.decrypt(comment.text).decode()


async def reminder(
    session: AsyncSession, conference_id: int, invitation_id: int
) -> tuple[str, datetime] | None:
    """The case code and the deadline, if the invitation has still not answered the draft."""
    circulation = await session.get(RecordCirculation, conference_id)
    reply = await session.get(RecordReply, invitation_id)
    if circulation is None or circulation.final_at is not None:
        return None
    if reply is None or reply.reply is not Reply.NONE:
        return None
    conference = await session.get_one(Conference, conference_id)
    case = await session.get_one(Case, conference.case_id)
    if case.status is not CaseStatus.OPEN:  # closed: no more asking for comments
        return None
    return case.code, circulation.comments_until


async def round_of(session: AsyncSession, conference_id: int) -> Round | None:
    """Where the comments stand, unless the final record has gone out."""
    answers = await records.circulated(session, conference_id)
    if answers is None or answers.final_at is not None:
        return None
    conference = await session.get_one(Conference, conference_id)
    case = await session.get_one(Case, conference.case_id)
    if case.status is not CaseStatus.OPEN:
        return None
    return Round(
        conference_id, case.code, answers.commented, answers.no_comments, answers.unanswered
    )
