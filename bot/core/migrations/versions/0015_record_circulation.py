"""record circulation: a finished record's draft sent for comments, the answers of the invitations
it went to, and the comments (encrypted)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations.shapes import create_table, drop_table, enum, id_column, moment

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_table(
        "record_circulations",
        sa.Column("conference_id", sa.Integer(), nullable=False),
        moment("sent_at"),
        moment("comments_until"),
        moment("final_at", nullable=True),
        foreign_keys={"conference_id": "conferences"},
        primary_key=["conference_id"],
    )
    create_table(
        "record_comments",
        id_column(),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        moment("at"),
        sa.Column("text", sa.LargeBinary(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        foreign_keys={"invitation_id": "invitations", "member_id": "members"},
        indexes=["invitation_id"],
    )
    create_table(
        "record_replies",
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column("reply", enum("reply", "commented", "no_comments", "none"), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        moment("answered_at", nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        foreign_keys={
            "conference_id": "conferences",
            "invitation_id": "invitations",
            "member_id": "members",
        },
        primary_key=["invitation_id"],
        indexes=["conference_id"],
    )


def downgrade() -> None:
    drop_table("record_replies", indexes=["conference_id"])
    drop_table("record_comments", indexes=["invitation_id"])
    drop_table("record_circulations")
