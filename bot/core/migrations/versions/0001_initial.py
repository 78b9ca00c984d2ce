"""members, institutions, invites, audit log, dialog persistence

Revision ID: 0001
Revises:
Create Date: 2026-11-22 09:17:04.315432
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations.shapes import ROLE, create_table, drop_table, enum, id_column, moment

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_table(
        "chat_data",
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        primary_key=["chat_id"],
    )
    create_table(
        "conversation_states",
        sa.Column("handler", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        primary_key=["handler", "key"],
    )
    create_table(
        "districts",
        id_column(),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        moment("created_at"),
        unique=[["name"]],
    )
    create_table(
        "join_attempts",
        id_column(),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        moment("attempted_at"),
        indexes=["telegram_user_id"],
    )
    create_table(
        "user_data",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        primary_key=["user_id"],
    )
    create_table(
        "institutions",
        id_column(),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column(
            "kind",
            enum(
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
        moment("created_at"),
        foreign_keys={"district_id": "districts"},
        unique=[["district_id", "name"]],
        indexes=["district_id"],
    )
    create_table(
        "members",
        id_column(),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("role", enum("role", *ROLE), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        moment("joined_at"),
        moment("deactivated_at", nullable=True),
        foreign_keys={"institution_id": "institutions"},
        unique=[["telegram_user_id"]],
        indexes=["institution_id"],
    )
    create_table(
        "audit_log",
        id_column(),
        moment("at"),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        foreign_keys={"actor_id": "members"},
        indexes=["at"],
    )
    create_table(
        "invite_codes",
        id_column(),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("role", enum("role", *ROLE), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        moment("created_at"),
        moment("expires_at"),
        moment("used_at", nullable=True),
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
    drop_table("invite_codes", indexes=["institution_id"])
    drop_table("audit_log", indexes=["at"])
    drop_table("members", indexes=["institution_id"])
    drop_table("institutions", indexes=["district_id"])
    drop_table("user_data")
    drop_table("join_attempts", indexes=["telegram_user_id"])
    drop_table("districts")
    drop_table("conversation_states")
    drop_table("chat_data")
