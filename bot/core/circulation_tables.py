"""The tables of a record circulated for comments: the circulation of a conference's draft
record (its deadline for comments, and when the final record went out), each circulated
invitation's answer, and the comments (encrypted)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.base import Base, UTCDateTime
from bot.core.base import enum_column as _enum


class Reply(enum.StrEnum):
    """What an institution (or a guardian) answered to the circulated draft."""

    COMMENTED = "commented"
    NO_COMMENTS = "no_comments"
    NONE = "none"  # no answer (yet)


class RecordCirculation(Base):
    """A conference's draft record, sent for comments once the coordinator finished it."""

    __tablename__ = "record_circulations"

    conference_id: Mapped[int] = mapped_column(ForeignKey("conferences.id"), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    comments_until: Mapped[datetime] = mapped_column(UTCDateTime())
    final_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RecordReply(Base):
    """One circulated invitation's answer: commented, no comments, or none; who gave it, when,
    and whether after the deadline."""

    __tablename__ = "record_replies"

    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), primary_key=True)
    conference_id: Mapped[int] = mapped_column(ForeignKey("conferences.id"), index=True)
    reply: Mapped[Reply] = mapped_column(_enum(Reply), default=Reply.NONE)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), default=None)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    late: Mapped[bool] = mapped_column(Boolean, default=False)


class RecordComment(Base):
    """A comment on the draft (encrypted: it may name the child), for the coordinator."""

    __tablename__ = "record_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[bytes] = mapped_column(LargeBinary)  # encrypted
    late: Mapped[bool] = mapped_column(Boolean, default=False)


# The encrypted column (in bot.core.models.ENCRYPTED_COLUMNS, for key rotation).
CIRCULATION_ENCRYPTED: tuple[tuple[type[Base], str, str], ...] = ((RecordComment, "id", "text"),)
