"""the case-conference method: a conference's kind and goal, and the child's voice

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.core.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conference_methods",
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "initial",
                "review",
                "court",
                "other",
                name="conferencekind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("goal", sa.LargeBinary(), nullable=True),
        sa.Column(
            "child_part",
            sa.Enum(
                "present",
                "supported",
                "view",
                "absent",
                name="childpart",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("support", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.LargeBinary(), nullable=True),
        sa.Column("child_view", sa.LargeBinary(), nullable=True),
        sa.Column("child_present", sa.Boolean(), nullable=False),
        sa.Column("updated_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conference_id"],
            ["conferences.id"],
            name=op.f("fk_conference_methods_conference_id_conferences"),
        ),
        sa.PrimaryKeyConstraint("conference_id", name=op.f("pk_conference_methods")),
    )


def downgrade() -> None:
    op.drop_table("conference_methods")
