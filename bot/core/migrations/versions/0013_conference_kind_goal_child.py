"""the case-conference method: a conference's kind and goal, and the child's voice

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations import shapes

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.create_table(
        "conference_methods",
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            shapes.enum("conferencekind", "initial", "review", "court", "other"),
            nullable=False,
        ),
        sa.Column("goal", sa.LargeBinary(), nullable=True),
        sa.Column(
            "child_part",
            shapes.enum("childpart", "present", "supported", "view", "absent"),
            nullable=True,
        ),
        sa.Column("support", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.LargeBinary(), nullable=True),
        sa.Column("child_view", sa.LargeBinary(), nullable=True),
        sa.Column("child_present", sa.Boolean(), nullable=False),
        shapes.moment("updated_at"),
        foreign_keys={"conference_id": "conferences"},
        primary_key=["conference_id"],
    )


def downgrade() -> None:
    shapes.drop_table("conference_methods")
