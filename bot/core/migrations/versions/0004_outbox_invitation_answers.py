"""outbox, invitations answers, calendar events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 22:08:51.181377
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.core.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=48), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("due_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sending",
                "sent",
                "skipped",
                "cancelled",
                "failed",
                name="outboxstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retry_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=36), nullable=True),
        sa.Column("claimed_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.Column("done_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("created_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_outbox_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_key")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_member_id"), ["member_id"], unique=False)
        batch_op.create_index("ix_outbox_status_due_at", ["status", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_subject"), ["subject"], unique=False)

    op.create_table(
        "invite_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_invite_messages_invitation_id_invitations"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_invite_messages_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_messages")),
    )
    with op.batch_alter_table("invite_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invite_messages_invitation_id"), ["invitation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_invite_messages_member_id"), ["member_id"], unique=False
        )

    with op.batch_alter_table("conferences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("sequence", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("invited_starts_at", bot.core.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("cancelled_at", bot.core.models.UTCDateTime(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_conferences_uid"), ["uid"])

    with op.batch_alter_table("districts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mailbox", sa.String(length=254), nullable=True))

    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "rsvp",
                sa.Enum(
                    "pending",
                    "accepted",
                    "tentative",
                    "declined",
                    name="rsvp",
                    native_enum=False,
                    length=32,
                ),
                nullable=False,
                server_default="pending",
            )
        )
        batch_op.add_column(sa.Column("rsvp_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rsvp_at", bot.core.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("delegate_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("decline_reason", sa.LargeBinary(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_invitations_rsvp_by_id_members"), "members", ["rsvp_by_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_invitations_delegate_id_members"), "members", ["delegate_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_invitations_delegate_id_members"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_invitations_rsvp_by_id_members"), type_="foreignkey"
        )
        batch_op.drop_column("decline_reason")
        batch_op.drop_column("delegate_id")
        batch_op.drop_column("rsvp_at")
        batch_op.drop_column("rsvp_by_id")
        batch_op.drop_column("rsvp")

    with op.batch_alter_table("districts", schema=None) as batch_op:
        batch_op.drop_column("mailbox")

    with op.batch_alter_table("conferences", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_conferences_uid"), type_="unique")
        batch_op.drop_column("cancelled_at")
        batch_op.drop_column("invited_starts_at")
        batch_op.drop_column("sequence")
        batch_op.drop_column("uid")

    with op.batch_alter_table("invite_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_messages_member_id"))
        batch_op.drop_index(batch_op.f("ix_invite_messages_invitation_id"))

    op.drop_table("invite_messages")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_subject"))
        batch_op.drop_index("ix_outbox_status_due_at")
        batch_op.drop_index(batch_op.f("ix_outbox_member_id"))

    op.drop_table("outbox")
