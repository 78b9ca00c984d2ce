"""cases purged_at

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 02:01:14.051065
"""

from collections.abc import Sequence

from bot.core.migrations import shapes

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.add_columns("cases", shapes.moment("purged_at", nullable=True))


def downgrade() -> None:
    shapes.drop_columns("cases", "purged_at")
