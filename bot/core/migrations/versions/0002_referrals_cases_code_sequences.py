"""referrals, cases, code sequences

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:33:33.944516
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations import shapes

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.create_table(
        "code_sequences",
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        primary_key=["prefix"],
    )
    shapes.create_table(
        "referrals",
        shapes.id_column(),
        sa.Column("code", sa.String(length=16), nullable=True),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            shapes.enum(
                "referralstatus", "draft", "submitted", "needs_info", "accepted", "declined"
            ),
            nullable=False,
        ),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("back_to_summary", sa.Boolean(), nullable=False),
        sa.Column("danger", sa.Boolean(), nullable=True),
        sa.Column("urgency", shapes.enum("urgency", "routine", "week", "urgent"), nullable=True),
        sa.Column("guardians_informed", sa.Boolean(), nullable=True),
        sa.Column(
            "guardians_consent", shapes.enum("consent", "yes", "no", "not_asked"), nullable=True
        ),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("message_refs", sa.JSON(), nullable=False),
        shapes.moment("created_at"),
        shapes.moment("updated_at"),
        shapes.moment("submitted_at", nullable=True),
        shapes.moment("decided_at", nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        shapes.moment("reminded_at", nullable=True),
        shapes.moment("nudged_at", nullable=True),
        shapes.moment("alerted_at", nullable=True),
        foreign_keys={
            "decided_by_id": "members",
            "district_id": "districts",
            "institution_id": "institutions",
            "referrer_id": "members",
        },
        unique=[["code"]],
        indexes=["district_id", "referrer_id", "status"],
    )
    shapes.create_table(
        "cases",
        shapes.id_column(),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.Column("manager_id", sa.Integer(), nullable=False),
        sa.Column("status", shapes.enum("casestatus", "open", "closed"), nullable=False),
        shapes.moment("opened_at"),
        shapes.moment("closed_at", nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        foreign_keys={
            "district_id": "districts",
            "manager_id": "members",
            "referral_id": "referrals",
        },
        unique=[["code"], ["referral_id"]],
        indexes=["district_id"],
    )
    shapes.create_table(
        "referral_notes",
        shapes.id_column(),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind", shapes.enum("notekind", "question", "answer", "decline_reason"), nullable=False
        ),
        shapes.moment("at"),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        foreign_keys={"author_id": "members", "referral_id": "referrals"},
        indexes=["referral_id"],
    )


def downgrade() -> None:
    shapes.drop_table("referral_notes", indexes=["referral_id"])
    shapes.drop_table("cases", indexes=["district_id"])
    shapes.drop_table("referrals", indexes=["district_id", "referrer_id", "status"])
    shapes.drop_table("code_sequences")
