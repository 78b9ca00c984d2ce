"""outbox, invitations answers, calendar events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 22:08:51.181377
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.core.migrations import shapes

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Who answered an invitation, and whom it was handed on to.
INVITATION_ANSWER_KEYS = {"rsvp_by_id": "members", "delegate_id": "members"}


def upgrade() -> None:
    shapes.create_table(
        "outbox",
        shapes.id_column(),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=48), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        shapes.moment("due_at"),
        shapes.moment("expires_at", nullable=True),
        sa.Column(
            "status",
            shapes.enum(
                "outboxstatus", "pending", "sending", "sent", "skipped", "cancelled", "failed"
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        shapes.moment("retry_at", nullable=True),
        sa.Column("claimed_by", sa.String(length=36), nullable=True),
        shapes.moment("claimed_at", nullable=True),
        shapes.moment("done_at", nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        shapes.moment("created_at"),
        foreign_keys={"member_id": "members"},
        unique=[["key"]],
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_member_id"), ["member_id"], unique=False)
        batch_op.create_index("ix_outbox_status_due_at", ["status", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_subject"), ["subject"], unique=False)

    shapes.create_table(
        "invite_messages",
        shapes.id_column(),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        foreign_keys={"invitation_id": "invitations", "member_id": "members"},
        indexes=["invitation_id", "member_id"],
    )

    shapes.add_columns(
        "conferences",
        sa.Column("uid", sa.String(length=64), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False, server_default="0"),
        shapes.moment("invited_starts_at", nullable=True),
        shapes.moment("cancelled_at", nullable=True),
        unique=[["uid"]],
    )
    shapes.add_columns("districts", sa.Column("mailbox", sa.String(length=254), nullable=True))
    shapes.add_columns(
        "invitations",
        sa.Column(
            "rsvp",
            shapes.enum("rsvp", "pending", "accepted", "tentative", "declined"),
            nullable=False,
            server_default="pending",
        ),
        sa.Column("rsvp_by_id", sa.Integer(), nullable=True),
        shapes.moment("rsvp_at", nullable=True),
        sa.Column("delegate_id", sa.Integer(), nullable=True),
        sa.Column("decline_reason", sa.LargeBinary(), nullable=True),
        foreign_keys=INVITATION_ANSWER_KEYS,
    )


def downgrade() -> None:
    shapes.drop_columns(
        "invitations",
        "rsvp",
        "rsvp_by_id",
        "rsvp_at",
        "delegate_id",
        "decline_reason",
        foreign_keys=INVITATION_ANSWER_KEYS,
    )
    shapes.drop_columns("districts", "mailbox")
    shapes.drop_columns(
        "conferences", "uid", "sequence", "invited_starts_at", "cancelled_at", unique=[["uid"]]
    )
    shapes.drop_table("invite_messages", indexes=["invitation_id", "member_id"])
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_subject"))
        batch_op.drop_index("ix_outbox_status_due_at")
        batch_op.drop_index(batch_op.f("ix_outbox_member_id"))

    op.drop_table("outbox")
