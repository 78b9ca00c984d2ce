"""record circulation: a finished record's draft sent for comments, the answers of the invitations
it went to, and the comments (encrypted)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.core.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "record_circulations",
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column("sent_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("comments_until", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("final_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conference_id"],
            ["conferences.id"],
            name=op.f("fk_record_circulations_conference_id_conferences"),
        ),
        sa.PrimaryKeyConstraint("conference_id", name=op.f("pk_record_circulations")),
    )
    op.create_table(
        "record_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("at", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("text", sa.LargeBinary(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_record_comments_invitation_id_invitations"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_record_comments_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_comments")),
    )
    with op.batch_alter_table("record_comments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_comments_invitation_id"), ["invitation_id"], unique=False
        )

    op.create_table(
        "record_replies",
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column(
            "reply",
            sa.Enum("commented", "no_comments", "none", name="reply", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("answered_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conference_id"],
            ["conferences.id"],
            name=op.f("fk_record_replies_conference_id_conferences"),
        ),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_record_replies_invitation_id_invitations"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_record_replies_member_id_members")
        ),
        sa.PrimaryKeyConstraint("invitation_id", name=op.f("pk_record_replies")),
    )
    with op.batch_alter_table("record_replies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_replies_conference_id"), ["conference_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("record_replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_replies_conference_id"))

    op.drop_table("record_replies")
    with op.batch_alter_table("record_comments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_comments_invitation_id"))

    op.drop_table("record_comments")
    op.drop_table("record_circulations")
