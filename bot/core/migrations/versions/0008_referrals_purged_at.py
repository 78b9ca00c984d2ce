"""referrals purged_at

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 06:26:27.835235
"""

from collections.abc import Sequence

from alembic import op

from bot.core.migrations import shapes

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.add_columns("referrals", shapes.moment("purged_at", nullable=True))
    # The referrals of cases purged before this column: purged with their case.
    op.execute(
        "UPDATE referrals SET purged_at = "
        "(SELECT cases.purged_at FROM cases WHERE cases.referral_id = referrals.id) "
        "WHERE id IN (SELECT referral_id FROM cases WHERE purged_at IS NOT NULL)"
    )


def downgrade() -> None:
    shapes.drop_columns("referrals", "purged_at")
