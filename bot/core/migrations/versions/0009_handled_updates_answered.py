"""handled updates answered

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 06:30:16.333749
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations import shapes

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.add_columns(
        "handled_updates",
        sa.Column("answered", sa.Boolean(), server_default=sa.true(), nullable=False),
    )


def downgrade() -> None:
    shapes.drop_columns("handled_updates", "answered")
