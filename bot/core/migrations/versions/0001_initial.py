"""members, institutions, invites, audit log, dialog persistence

Revision ID: 0001
Revises:
Create Date: 2026-11-22 09:17:04.315432
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations import shapes

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def create_data_table(name: str, key: str) -> None:
    """A table of the dialogs' persistence (bot.transport.telegram.persistence): one blob of data
    per Telegram chat or user."""
    shapes.create_table(
        name,
        sa.Column(key, sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        primary_key=[key],
    )


def upgrade() -> None:
    create_data_table("chat_data", "chat_id")
    shapes.create_table(
        "conversation_states",
        sa.Column("handler", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        primary_key=["handler", "key"],
    )
    shapes.create_table(
        "districts",
        shapes.id_column(),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        shapes.moment("created_at"),
        unique=[["name"]],
    )
    shapes.create_table(
        "join_attempts",
        shapes.id_column(),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        shapes.moment("attempted_at"),
        indexes=["telegram_user_id"],
    )
    create_data_table("user_data", "user_id")
    shapes.create_table(
        "institutions",
        shapes.id_column(),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column(
            "kind",
            shapes.enum(
                "institutionkind",
                "police",
                "ospod",
                "social_department",
                "ppp",
                "school",
                "pms",
                "ngo",
                "doctor",
                "prosecutor",
                "other",
            ),
            nullable=False,
        ),
        shapes.moment("created_at"),
        foreign_keys={"district_id": "districts"},
        unique=[["district_id", "name"]],
        indexes=["district_id"],
    )
    shapes.create_table(
        "members",
        shapes.id_column(),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("role", shapes.enum("role", *shapes.ROLE), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        shapes.moment("joined_at"),
        shapes.moment("deactivated_at", nullable=True),
        foreign_keys={"institution_id": "institutions"},
        unique=[["telegram_user_id"]],
        indexes=["institution_id"],
    )
    shapes.create_table(
        "audit_log",
        shapes.id_column(),
        shapes.moment("at"),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        foreign_keys={"actor_id": "members"},
        indexes=["at"],
    )
    shapes.create_table(
        "invite_codes",
        shapes.id_column(),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("role", shapes.enum("role", *shapes.ROLE), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        shapes.moment("created_at"),
        shapes.moment("expires_at"),
        shapes.moment("used_at", nullable=True),
        sa.Column("used_by_id", sa.Integer(), nullable=True),
        foreign_keys={
            "created_by_id": "members",
            "institution_id": "institutions",
            "used_by_id": "members",
        },
        unique=[["code_hash"]],
        indexes=["institution_id"],
    )


def downgrade() -> None:
    shapes.drop_table("invite_codes", indexes=["institution_id"])
    shapes.drop_table("audit_log", indexes=["at"])
    shapes.drop_table("members", indexes=["institution_id"])
    shapes.drop_table("institutions", indexes=["district_id"])
    shapes.drop_table("user_data")
    shapes.drop_table("join_attempts", indexes=["telegram_user_id"])
    shapes.drop_table("districts")
    shapes.drop_table("conversation_states")
    shapes.drop_table("chat_data")
