"""The table of confidentiality (mlčenlivost): who confirmed which version of the text, when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.base import Base, UTCDateTime


class ConfidentialityConfirmation(Base):
    """A member confirmed, with one tap, that what they hear about a case is confidential: the
    version of the text they confirmed (bot.services.confidentiality.VERSION), and when. A new
    version asks again; a member who joins again is a new member and confirms anew."""

    __tablename__ = "confidentiality_confirmations"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime())
