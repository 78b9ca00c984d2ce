"""tasks, conference records, attendance

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 23:37:41.210842
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations import shapes

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.create_table(
        "tasks",
        shapes.id_column(),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.LargeBinary(), nullable=False),
        sa.Column("party", shapes.enum("taskparty", "member", "child", "guardian"), nullable=False),
        sa.Column("party_name", sa.LargeBinary(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", shapes.enum("taskstatus", "open", "done", "cancelled"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        shapes.moment("created_at"),
        shapes.moment("issued_at", nullable=True),
        shapes.moment("done_at", nullable=True),
        sa.Column("asked_due_on", sa.Date(), nullable=True),
        foreign_keys={"case_id": "cases", "conference_id": "conferences", "owner_id": "members"},
        indexes=["case_id", "conference_id", "owner_id", "status"],
    )
    shapes.create_table(
        "task_notes",
        shapes.id_column(),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        shapes.moment("created_at"),
        foreign_keys={"member_id": "members", "task_id": "tasks"},
        indexes=["task_id"],
    )

    shapes.add_columns(
        "conferences",
        sa.Column("summary", sa.LargeBinary(), nullable=True),
        shapes.moment("recorded_at", nullable=True),
        sa.Column("review_by", sa.Date(), nullable=True),
        sa.Column("review_of_id", sa.Integer(), nullable=True),
        foreign_keys={"review_of_id": "conferences"},
    )
    shapes.add_columns(
        "invitations",
        sa.Column("attended", sa.Boolean(), nullable=True),
        sa.Column("attendee_id", sa.Integer(), nullable=True),
        foreign_keys={"attendee_id": "members"},
    )


def downgrade() -> None:
    shapes.drop_columns(
        "invitations", "attended", "attendee_id", foreign_keys={"attendee_id": "members"}
    )
    shapes.drop_columns(
        "conferences",
        "summary",
        "recorded_at",
        "review_by",
        "review_of_id",
        foreign_keys={"review_of_id": "conferences"},
    )
    shapes.drop_table("task_notes", indexes=["task_id"])
    shapes.drop_table("tasks", indexes=["case_id", "conference_id", "owner_id", "status"])
