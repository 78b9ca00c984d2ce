"""The table of the poll's web page (bot.transport.web): the personal links mailed to guests."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.base import Base, UTCDateTime, enum_column


class LinkPurpose(enum.StrEnum):
    POLL = "poll"  # one round of the date poll
    INVITATION = "invitation"  # the invitation to the time decided (one SEQUENCE of it)


class WebLink(Base):
    """A guest's personal link to the web page: bound to one invitation and one poll round (or
    one SEQUENCE of the invitation), until it expires. Only the token's SHA-256 is kept for
    finding it; the token itself is encrypted, for the mails that carry it again (a nudge, a
    reminder). `form_key` is the value its forms carry back (against cross-site posts)."""

    __tablename__ = "web_links"
    __table_args__ = (UniqueConstraint("invitation_id", "purpose", "round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token: Mapped[bytes] = mapped_column(LargeBinary)  # encrypted
    form_key: Mapped[str] = mapped_column(String(64))
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), index=True)
    purpose: Mapped[LinkPurpose] = mapped_column(enum_column(LinkPurpose))
    round: Mapped[int] = mapped_column(Integer)  # the poll's round, or the invitation's SEQUENCE
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
