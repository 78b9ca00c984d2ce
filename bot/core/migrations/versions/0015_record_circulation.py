"""record circulation: a finished record's draft sent for comments, the answers of the invitations
it went to, and the comments (encrypted)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations import shapes

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.create_table(
        "record_circulations",
        sa.Column("conference_id", sa.Integer(), nullable=False),
        shapes.moment("sent_at"),
        shapes.moment("comments_until"),
        shapes.moment("final_at", nullable=True),
        foreign_keys={"conference_id": "conferences"},
        primary_key=["conference_id"],
    )
    shapes.create_table(
        "record_comments",
        shapes.id_column(),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        shapes.moment("at"),
        sa.Column("text", sa.LargeBinary(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        foreign_keys={"invitation_id": "invitations", "member_id": "members"},
        indexes=["invitation_id"],
    )
    shapes.create_table(
        "record_replies",
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column(
            "reply", shapes.enum("reply", "commented", "no_comments", "none"), nullable=False
        ),
        sa.Column("member_id", sa.Integer(), nullable=True),
        shapes.moment("answered_at", nullable=True),
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
    shapes.drop_table("record_replies", indexes=["conference_id"])
    shapes.drop_table("record_comments", indexes=["invitation_id"])
    shapes.drop_table("record_circulations")
