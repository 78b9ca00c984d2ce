"""members: a leaver who joins again is a new row; one active row per Telegram user

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On SQLite this rebuilds the table: bot.core.migrate turns foreign keys off meanwhile.
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_constraint("uq_members_telegram_user_id", type_="unique")
        batch_op.create_index(
            "ux_members_telegram_user_id_active",
            ["telegram_user_id"],
            unique=True,
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        )


def downgrade() -> None:
    # Only possible while nobody has joined again: the old constraint allows one row per user.
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index("ux_members_telegram_user_id_active")
        batch_op.create_unique_constraint("uq_members_telegram_user_id", ["telegram_user_id"])
