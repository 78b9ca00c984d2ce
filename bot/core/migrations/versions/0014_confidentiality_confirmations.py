"""confidentiality: who confirmed which version of the text on confidentiality, and when

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.core.models

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "confidentiality_confirmations",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_confidentiality_confirmations_member_id_members"),
        ),
        sa.PrimaryKeyConstraint(
            "member_id", "version", name=op.f("pk_confidentiality_confirmations")
        ),
    )


def downgrade() -> None:
    op.drop_table("confidentiality_confirmations")
