"""web links: the guests' personal links to the poll's web page

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations import shapes

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.create_table(
        "web_links",
        shapes.id_column(),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("form_key", sa.String(length=64), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("purpose", shapes.enum("linkpurpose", "poll", "invitation"), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        shapes.moment("created_at"),
        shapes.moment("expires_at"),
        foreign_keys={"invitation_id": "invitations"},
        unique=[["token_hash"], ["invitation_id", "purpose", "round"]],
        indexes=["invitation_id"],
    )


def downgrade() -> None:
    shapes.drop_table("web_links", indexes=["invitation_id"])
