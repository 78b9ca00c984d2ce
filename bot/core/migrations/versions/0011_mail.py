"""mail: addresses of members and institutions, guests, the outbox's mail channel, failing
addresses, address confirmations and the calendar replies read

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.core.migrations import shapes

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.add_columns("institutions", sa.Column("email", sa.String(length=254), nullable=True))
    shapes.add_columns(
        "invitations",
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("guest_name", sa.String(length=120), nullable=True),
    )
    # On SQLite this rebuilds the table: bot.core.migrate turns foreign keys off meanwhile.
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "channel",
                shapes.enum("channel", "telegram", "mail"),
                server_default="telegram",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("address", sa.String(length=254), nullable=True))
        batch_op.alter_column("member_id", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("chat_id", existing_type=sa.BigInteger(), nullable=True)
        batch_op.drop_index("ix_outbox_status_due_at")
        batch_op.create_index(
            "ix_outbox_status_channel_due_at", ["status", "channel", "due_at"], unique=False
        )
    shapes.create_table(
        "mail_addresses",
        sa.Column("address", sa.String(length=254), nullable=False),
        shapes.moment("failing_since"),
        sa.Column("reply", sa.String(length=200), nullable=False),
        primary_key=["address"],
    )
    shapes.create_table(
        "email_confirmations",
        shapes.id_column(),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("code", sa.LargeBinary(), nullable=False),
        shapes.moment("created_at"),
        shapes.moment("expires_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        shapes.moment("confirmed_at", nullable=True),
        foreign_keys={"member_id": "members"},
        indexes=["member_id"],
    )
    shapes.create_table(
        "inbound_mails",
        sa.Column("key", sa.String(length=64), nullable=False),
        shapes.moment("received_at"),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        primary_key=["key"],
    )


def downgrade() -> None:
    shapes.drop_table("inbound_mails")
    shapes.drop_table("email_confirmations", indexes=["member_id"])
    shapes.drop_table("mail_addresses")
    op.execute("DELETE FROM outbox WHERE channel = 'mail'")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_channel_due_at")
        batch_op.create_index("ix_outbox_status_due_at", ["status", "due_at"], unique=False)
        batch_op.alter_column("chat_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("member_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("address")
        batch_op.drop_column("channel")
    shapes.drop_columns("invitations", "email", "guest_name")
    shapes.drop_columns("institutions", "email")
