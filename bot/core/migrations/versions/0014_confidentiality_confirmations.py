"""confidentiality: who confirmed which version of the text on confidentiality, and when

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations import shapes

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.create_table(
        "confidentiality_confirmations",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        shapes.moment("confirmed_at"),
        foreign_keys={"member_id": "members"},
        primary_key=["member_id", "version"],
    )


def downgrade() -> None:
    shapes.drop_table("confidentiality_confirmations")
