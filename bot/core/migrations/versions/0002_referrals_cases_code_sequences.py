"""referrals, cases, code sequences

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:33:33.944516
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations.shapes import create_table, drop_table, enum, id_column, moment

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_table(
        "code_sequences",
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        primary_key=["prefix"],
    )
    create_table(
        "referrals",
        id_column(),
        sa.Column("code", sa.String(length=16), nullable=True),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            enum("referralstatus", "draft", "submitted", "needs_info", "accepted", "declined"),
            nullable=False,
        ),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("back_to_summary", sa.Boolean(), nullable=False),
        sa.Column("danger", sa.Boolean(), nullable=True),
        sa.Column("urgency", enum("urgency", "routine", "week", "urgent"), nullable=True),
        sa.Column("guardians_informed", sa.Boolean(), nullable=True),
        sa.Column("guardians_consent", enum("consent", "yes", "no", "not_asked"), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("message_refs", sa.JSON(), nullable=False),
        moment("created_at"),
        moment("updated_at"),
        moment("submitted_at", nullable=True),
        moment("decided_at", nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        moment("reminded_at", nullable=True),
        moment("nudged_at", nullable=True),
        moment("alerted_at", nullable=True),
        foreign_keys={
            "decided_by_id": "members",
            "district_id": "districts",
            "institution_id": "institutions",
            "referrer_id": "members",
        },
        unique=[["code"]],
        indexes=["district_id", "referrer_id", "status"],
    )
    create_table(
        "cases",
        id_column(),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.Column("manager_id", sa.Integer(), nullable=False),
        sa.Column("status", enum("casestatus", "open", "closed"), nullable=False),
        moment("opened_at"),
        moment("closed_at", nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        foreign_keys={
            "district_id": "districts",
            "manager_id": "members",
            "referral_id": "referrals",
        },
        unique=[["code"], ["referral_id"]],
        indexes=["district_id"],
    )
    create_table(
        "referral_notes",
        id_column(),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("kind", enum("notekind", "question", "answer", "decline_reason"), nullable=False),
        moment("at"),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        foreign_keys={"author_id": "members", "referral_id": "referrals"},
        indexes=["referral_id"],
    )


def downgrade() -> None:
    drop_table("referral_notes", indexes=["referral_id"])
    drop_table("cases", indexes=["district_id"])
    drop_table("referrals", indexes=["district_id", "referrer_id", "status"])
    drop_table("code_sequences")
