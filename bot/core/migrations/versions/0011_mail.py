"""mail: addresses of members and institutions, guests, the outbox's mail channel, failing
addresses, address confirmations and the calendar replies read

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.core.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("guest_name", sa.String(length=120), nullable=True))
    # On SQLite this rebuilds the table: bot.core.migrate turns foreign keys off meanwhile.
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "channel",
                sa.Enum("telegram", "mail", name="channel", native_enum=False, length=32),
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
    op.create_table(
        "mail_addresses",
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("failing_since", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("reply", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_mail_addresses")),
    )
    op.create_table(
        "email_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("code", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_email_confirmations_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_confirmations")),
    )
    with op.batch_alter_table("email_confirmations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_confirmations_member_id"), ["member_id"], unique=False
        )
    op.create_table(
        "inbound_mails",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("received_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_inbound_mails")),
    )


def downgrade() -> None:
    op.drop_table("inbound_mails")
    with op.batch_alter_table("email_confirmations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_confirmations_member_id"))
    op.drop_table("email_confirmations")
    op.drop_table("mail_addresses")
    op.execute("DELETE FROM outbox WHERE channel = 'mail'")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_channel_due_at")
        batch_op.create_index("ix_outbox_status_due_at", ["status", "due_at"], unique=False)
        batch_op.alter_column("chat_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("member_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("address")
        batch_op.drop_column("channel")
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_column("guest_name")
        batch_op.drop_column("email")
    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.drop_column("email")
