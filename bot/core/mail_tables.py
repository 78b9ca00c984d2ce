"""The tables of e-mail: addresses that fail, addresses waiting for their code, and the
calendar replies read from the organizer's mailbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.base import Base, UTCDateTime


class MailAddress(Base):
    """An address the mail server refused for good (a 5xx): nothing more is sent to it until it
    is given again (confirmed anew, or set anew by an admin or a coordinator)."""

    __tablename__ = "mail_addresses"

    address: Mapped[str] = mapped_column(String(254), primary_key=True)  # lower case
    failing_since: Mapped[datetime] = mapped_column(UTCDateTime())
    reply: Mapped[str] = mapped_column(String(200))  # the server's answer, e.g. "550 5.1.1"


class EmailConfirmation(Base):
    """A member's new address, waiting for the one-time code sent to it. Only the code's
    SHA-256 is kept for checking; the code itself is encrypted, for the mail that carries it."""

    __tablename__ = "email_confirmations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    address: Mapped[str] = mapped_column(String(254))
    code_hash: Mapped[str] = mapped_column(String(64))
    code: Mapped[bytes] = mapped_column(LargeBinary)  # encrypted
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class InboundMail(Base):
    """A mail read from the organizer's mailbox (a calendar reply), by its Message-ID (or its
    content's hash): each is applied once, also when the mailbox shows it again after a crash."""

    __tablename__ = "inbound_mails"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256, hex
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(32))  # applied, or why it was ignored
