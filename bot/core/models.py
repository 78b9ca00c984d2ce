"""The database tables of Round Table (SQLAlchemy 2 declarative)."""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

# Re-exported: the base of every table, and the tables kept in modules of their own (mail, web
# links, the method, circulation, confidentiality, the chats' state), which are in its metadata
# once imported here.
from bot.core.base import Base as Base  # noqa: PLC0414
from bot.core.base import UTCDateTime as UTCDateTime  # noqa: PLC0414
from bot.core.base import enum_column as _enum
from bot.core.chat_tables import ChatData as ChatData  # noqa: PLC0414
from bot.core.chat_tables import ConversationState as ConversationState  # noqa: PLC0414
from bot.core.chat_tables import HandledUpdate as HandledUpdate  # noqa: PLC0414
from bot.core.chat_tables import UserData as UserData  # noqa: PLC0414
from bot.core.chat_tables import conversation_key as conversation_key  # noqa: PLC0414
from bot.core.circulation_tables import CIRCULATION_ENCRYPTED
from bot.core.circulation_tables import RecordCirculation as RecordCirculation  # noqa: PLC0414
from bot.core.circulation_tables import RecordComment as RecordComment  # noqa: PLC0414
from bot.core.circulation_tables import RecordReply as RecordReply  # noqa: PLC0414
from bot.core.confidentiality_tables import (
    ConfidentialityConfirmation as ConfidentialityConfirmation,  # noqa: PLC0414
)
from bot.core.mail_tables import EmailConfirmation as EmailConfirmation  # noqa: PLC0414
from bot.core.mail_tables import InboundMail as InboundMail  # noqa: PLC0414
from bot.core.mail_tables import MailAddress as MailAddress  # noqa: PLC0414
from bot.core.method_tables import METHOD_ENCRYPTED
from bot.core.method_tables import ConferenceMethod as ConferenceMethod  # noqa: PLC0414
from bot.core.web_tables import WebLink as WebLink  # noqa: PLC0414


class InstitutionKind(enum.StrEnum):
    POLICE = "police"
    OSPOD = "ospod"
    SOCIAL_DEPARTMENT = "social_department"
    PPP = "ppp"
    SCHOOL = "school"
    PMS = "pms"
    NGO = "ngo"
    DOCTOR = "doctor"
    PROSECUTOR = "prosecutor"
    OTHER = "other"
    # Not an institution: the district's children's guardians who joined by a conference link.
    GUARDIANS = "guardians"


class Role(enum.StrEnum):
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    REFERRER = "referrer"
    PARTICIPANT = "participant"


class District(Base):
    __tablename__ = "districts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Prague")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Where case conferences usually take place, and the offices' working hours.
    place: Mapped[str | None] = mapped_column(String(200), default=None)
    day_starts: Mapped[time] = mapped_column(Time(), default=time(8, 0))
    day_ends: Mapped[time] = mapped_column(Time(), default=time(16, 0))
    # The ORGANIZER of calendar invitations: where participants' calendar replies go.
    mailbox: Mapped[str | None] = mapped_column(String(254), default=None)


class Institution(Base):
    __tablename__ = "institutions"
    __table_args__ = (UniqueConstraint("district_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[InstitutionKind] = mapped_column(_enum(InstitutionKind))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The institution's own working hours, where they differ from the district's.
    day_starts: Mapped[time | None] = mapped_column(Time(), default=None)
    day_ends: Mapped[time | None] = mapped_column(Time(), default=None)
    # The institution's contact address, for guests invited by e-mail (set by an admin).
    email: Mapped[str | None] = mapped_column(String(254), default=None)

    district: Mapped[District] = relationship(lazy="raise")


class Member(Base):
    """One person in one institution and role. A leaver who joins again is a new row, so one
    Telegram user may have several; only one of them active."""

    __tablename__ = "members"
    __table_args__ = (
        Index(
            "ux_members_telegram_user_id_active",
            "telegram_user_id",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    display_name: Mapped[str] = mapped_column(String(128))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    locale: Mapped[str] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    # The member's work e-mail, once confirmed with a code sent to it (EmailConfirmation).
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    institution: Mapped[Institution] = relationship(lazy="raise")


class InviteCode(Base):
    """A one-time join code; only its SHA-256 is stored, the code itself is shown once."""

    __tablename__ = "invite_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), default=None)
    # A guardian's link to one conference's poll: whoever joins with it answers for them.
    invitation_id: Mapped[int | None] = mapped_column(ForeignKey("invitations.id"), default=None)


class JoinAttempt(Base):
    """A failed /start with a wrong code, kept briefly to throttle guessing."""

    __tablename__ = "join_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """Who did or saw what, when. Details never hold a child's personal data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), default=None)
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReferralStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    NEEDS_INFO = "needs_info"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class Urgency(enum.StrEnum):
    ROUTINE = "routine"
    WEEK = "week"
    URGENT = "urgent"


class Consent(enum.StrEnum):
    """Whether the guardians agree to a case conference."""

    YES = "yes"
    NO = "no"
    NOT_ASKED = "not_asked"


class Referral(Base):
    """A concern about a child, from draft to decision.

    Everything that identifies the child or describes the concern (name, year of birth, class,
    school, categories, description, what was tried) is in `sealed`, encrypted. The plain columns
    are what the queue, the notifications and the statistics need, and nothing more.
    """

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str | None] = mapped_column(String(16), unique=True, default=None)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    status: Mapped[ReferralStatus] = mapped_column(_enum(ReferralStatus), index=True)
    step: Mapped[str] = mapped_column(String(16))  # where the draft's dialog is
    back_to_summary: Mapped[bool] = mapped_column(Boolean, default=False)
    danger: Mapped[bool | None] = mapped_column(Boolean, default=None)
    urgency: Mapped[Urgency | None] = mapped_column(_enum(Urgency), default=None)
    guardians_informed: Mapped[bool | None] = mapped_column(Boolean, default=None)
    guardians_consent: Mapped[Consent | None] = mapped_column(_enum(Consent), default=None)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # The referrer's messages that carried the child's data: [message id, unix time] pairs,
    # deleted from the chat after sending. Identifiers only.
    message_refs: Mapped[list[list[int]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), default=None)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    nudged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # When the coordinators' alert was planned in the outbox (with the sending, in one
    # transaction: the outbox sends it).
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # When `roundtable purge` anonymised it (with its case, or declined, after the retention
    # period); the bot shows nothing of it from then on.
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class NoteKind(enum.StrEnum):
    QUESTION = "question"
    ANSWER = "answer"
    DECLINE_REASON = "decline_reason"


class ReferralNote(Base):
    """The thread kept on a referral: a coordinator's question, the referrer's answer, the reason
    for declining. The text is encrypted."""

    __tablename__ = "referral_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[NoteKind] = mapped_column(_enum(NoteKind))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    body: Mapped[bytes] = mapped_column(LargeBinary)


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Case(Base):
    """A child's case, opened from an accepted referral; known in chats by its code only."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    referral_id: Mapped[int | None] = mapped_column(
        ForeignKey("referrals.id"), unique=True, default=None
    )
    manager_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    status: Mapped[CaseStatus] = mapped_column(_enum(CaseStatus))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    # When `roundtable purge` anonymised it (after the retention period); never purged twice.
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class CodeSequence(Base):
    """The last number given out per code prefix and year, e.g. "R-2026" → 17."""

    __tablename__ = "code_sequences"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class ConferenceStatus(enum.StrEnum):
    POLLING = "polling"
    SCHEDULED = "scheduled"
    HELD = "held"
    CANCELLED = "cancelled"


class Conference(Base):
    """A case conference: first a poll for a common date, then a date."""

    __tablename__ = "conferences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    coordinator_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    status: Mapped[ConferenceStatus] = mapped_column(_enum(ConferenceStatus), index=True)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    place: Mapped[str] = mapped_column(String(200))
    window_first: Mapped[date] = mapped_column(Date())
    window_last: Mapped[date] = mapped_column(Date())
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    nudge_at: Mapped[datetime] = mapped_column(UTCDateTime())
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    nudged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # When the coordinator was offered the best slot (all required answered, or the deadline).
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The coordinator's live message about the poll, edited as answers arrive.
    board_chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    board_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    round: Mapped[int] = mapped_column(Integer, default=1)
    # The calendar event: one UID for the conference's life, SEQUENCE raised on every change.
    uid: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    # The time participants were last invited to (a new poll keeps it until a new time is set).
    invited_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The outcome, once held: the summary of the situation (encrypted), when the record was
    # finished, and by when the review conference should meet; a review names what it reviews.
    summary: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    review_by: Mapped[date | None] = mapped_column(Date(), default=None)
    review_of_id: Mapped[int | None] = mapped_column(ForeignKey("conferences.id"), default=None)


class ConferenceSlot(Base):
    """A candidate time offered in a conference's poll."""

    __tablename__ = "conference_slots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conference_id: Mapped[int] = mapped_column(ForeignKey("conferences.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Which poll of the conference offered it; a new window is a new round, and the old
    # round's times and answers stay (their ids are never reused by a later round).
    round: Mapped[int] = mapped_column(Integer, default=1)


class InvitationKind(enum.StrEnum):
    INSTITUTION = "institution"
    GUARDIAN = "guardian"  # invited by a one-time link; answers the poll in Telegram
    OFFLINE = "offline"  # a guardian without Telegram; the coordinator enters the answers
    # Not on Telegram, invited by e-mail: an institution's contact address, or a named person
    # (e.g. a paediatrician). The coordinator enters their poll answers; their calendar answers.
    GUEST = "guest"


class Rsvp(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    TENTATIVE = "tentative"
    DECLINED = "declined"


class Invitation(Base):
    """An institution or a guardian invited to a conference; answers the poll once for all."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conference_id: Mapped[int] = mapped_column(ForeignKey("conferences.id"), index=True)
    kind: Mapped[InvitationKind] = mapped_column(_enum(InvitationKind))
    institution_id: Mapped[int | None] = mapped_column(
        ForeignKey("institutions.id"), index=True, default=None
    )
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), default=None)
    number: Mapped[int] = mapped_column(Integer, default=0)  # guardians: 1, 2, ...
    # A guest's address and, for a named person, their name (an institution's guest is named by
    # its institution).
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    guest_name: Mapped[str | None] = mapped_column(String(120), default=None)
    required: Mapped[bool] = mapped_column(Boolean)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), default=None)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The answer to the calendar invitation (pending, accepted, tentative, declined), reset on
    # every new time; who gave it; and who attends (the one who answered, or a colleague the
    # invitation was handed to).
    rsvp: Mapped[Rsvp] = mapped_column(_enum(Rsvp), default=Rsvp.PENDING)
    rsvp_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), default=None)
    rsvp_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    delegate_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), default=None)
    decline_reason: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)  # encrypted
    # Who came, as recorded after the conference: None until recorded (prefilled from the
    # answers); attendee_id is the member who came (a colleague instead of the one invited).
    attended: Mapped[bool | None] = mapped_column(Boolean, default=None)
    attendee_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), default=None)


class InviteMessage(Base):
    """A calendar invitation message in a member's chat, edited when the invitation is answered."""

    __tablename__ = "invite_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)


class SlotAnswer(Base):
    """One invitation's answer for one slot: yes, if need be (maybe) or no."""

    __tablename__ = "slot_answers"

    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("conference_slots.id"), primary_key=True)
    vote: Mapped[str] = mapped_column(String(8))


class PollMessage(Base):
    """A poll message in a member's chat, with the answer they are putting together."""

    __tablename__ = "poll_messages"
    __table_args__ = (UniqueConstraint("invitation_id", "member_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # {slot id: vote} not yet sent; the slots' ids as strings (JSON keys).
    pending: Mapped[dict[str, str | None]] = mapped_column(JSON, default=dict)


class BusyTime(Base):
    """When a member is busy, from a calendar file they sent: start and end times only."""

    __tablename__ = "busy_times"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    # [[start, end], ...] in UTC unix seconds, sorted and merged.
    intervals: Mapped[list[list[int]]] = mapped_column(JSON, default=list)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # waits for its moment (or for a retry)
    SENDING = "sending"  # claimed by a dispatcher; sent again after a crash
    SENT = "sent"
    SKIPPED = "skipped"  # its moment passed while the bot was down, or it no longer applies
    CANCELLED = "cancelled"  # an answer, a new date or a cancellation made it moot
    FAILED = "failed"  # the person blocked the bot, or Telegram kept refusing


class Channel(enum.StrEnum):
    TELEGRAM = "telegram"  # to a member's chat
    MAIL = "mail"  # to an e-mail address (a member's confirmed one, or a guest's)


class OutboxRow(Base):
    """One notification to one person: a reminder, a nudge, an invitation (bot.core.outbox)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_channel_due_at", "status", "channel", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)  # planning twice is a no-op
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(48), index=True)  # e.g. "conference:12"
    channel: Mapped[Channel] = mapped_column(
        _enum(Channel), default=Channel.TELEGRAM, server_default=Channel.TELEGRAM.value
    )
    # The recipient: a member (a chat's rows always; a mail's when it is to a member), and for
    # a mail, the address it goes to.
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    address: Mapped[str | None] = mapped_column(String(254), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # ids, never names
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(36), default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)  # why skipped/failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskParty(enum.StrEnum):
    """Who owns a task: a member, or the child or a guardian (no Telegram; a member follows it
    up and gets the nudges)."""

    MEMBER = "member"
    CHILD = "child"
    GUARDIAN = "guardian"


class Task(Base):
    """A task of the plan agreed at a conference: what, who, by when. Overdue is derived."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    conference_id: Mapped[int] = mapped_column(ForeignKey("conferences.id"), index=True)
    title: Mapped[bytes] = mapped_column(LargeBinary)  # encrypted; shown in chats by design
    party: Mapped[TaskParty] = mapped_column(_enum(TaskParty), default=TaskParty.MEMBER)
    party_name: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)  # encrypted
    owner_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    due_on: Mapped[date] = mapped_column(Date())
    status: Mapped[TaskStatus] = mapped_column(_enum(TaskStatus), index=True)
    # Raised by every change of owner or due date: the nudges' keys carry it.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the owner was told (the record finished, or the task added later).
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # An owner's request for more time, until the coordinator decides.
    asked_due_on: Mapped[date | None] = mapped_column(Date(), default=None)


class TaskNote(Base):
    """A progress note, the note of a task done, or a reason for more time."""

    __tablename__ = "task_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(16))  # note, done, more_time
    body: Mapped[bytes] = mapped_column(LargeBinary)  # encrypted
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Every column that holds ciphertext, with its table's primary key: `roundtable rotate-key`
# re-encrypts exactly these.
ENCRYPTED_COLUMNS: tuple[tuple[type[Base], str, str], ...] = (
    (Referral, "id", "sealed"),
    (ReferralNote, "id", "body"),
    (UserData, "user_id", "data"),
    (ChatData, "chat_id", "data"),
    (Invitation, "id", "decline_reason"),
    (Conference, "id", "summary"),
    (Task, "id", "title"),
    (Task, "id", "party_name"),
    (TaskNote, "id", "body"),
    (EmailConfirmation, "id", "code"),
    (WebLink, "id", "token"),
    *METHOD_ENCRYPTED,
    *CIRCULATION_ENCRYPTED,
)
