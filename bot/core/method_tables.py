"""The table of the case-conference method's own parts of a conference: its kind and goal, and
how the child takes part (the child's voice). One row per conference, made when its poll
starts; every free text in it is encrypted."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.base import Base, UTCDateTime
from bot.core.base import enum_column as _enum


class ConferenceKind(enum.StrEnum):
    INITIAL = "initial"
    REVIEW = "review"
    COURT = "court"  # before a court petition, § 14(2)(b) zákona 359/1999 Sb.
    OTHER = "other"


class ChildPart(enum.StrEnum):
    """How the child takes part in the conference."""

    PRESENT = "present"
    SUPPORTED = "supported"  # with a support person (whom: `support`)
    VIEW = "view"  # through a written or reported view
    ABSENT = "absent"  # not at all (why: `reason`)


class ConferenceMethod(Base):
    """A conference's kind and goal, and the child's voice. The goal, the support person, the
    reason the child does not take part and the child's view are encrypted."""

    __tablename__ = "conference_methods"

    conference_id: Mapped[int] = mapped_column(ForeignKey("conferences.id"), primary_key=True)
    kind: Mapped[ConferenceKind] = mapped_column(_enum(ConferenceKind))
    goal: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    child_part: Mapped[ChildPart | None] = mapped_column(_enum(ChildPart), default=None)
    support: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    reason: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    child_view: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # On the attendance sheet: the child came to the conference.
    child_present: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# The encrypted columns (in bot.core.models.ENCRYPTED_COLUMNS, for key rotation).
METHOD_ENCRYPTED: tuple[tuple[type[Base], str, str], ...] = tuple(
    (ConferenceMethod, "conference_id", column)
    for column in ("goal", "support", "reason", "child_view")
)
