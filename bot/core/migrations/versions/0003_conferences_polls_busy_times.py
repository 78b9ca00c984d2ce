"""conferences, polls, busy times

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:40:48.450312
"""

from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.migrations import shapes

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shapes.create_table(
        "busy_times",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("intervals", sa.JSON(), nullable=False),
        shapes.moment("imported_at"),
        shapes.moment("until"),
        foreign_keys={"member_id": "members"},
        primary_key=["member_id"],
    )
    shapes.create_table(
        "conferences",
        shapes.id_column(),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("coordinator_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            shapes.enum("conferencestatus", "polling", "scheduled", "held", "cancelled"),
            nullable=False,
        ),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("window_first", sa.Date(), nullable=False),
        sa.Column("window_last", sa.Date(), nullable=False),
        shapes.moment("deadline"),
        shapes.moment("nudge_at"),
        shapes.moment("starts_at", nullable=True),
        shapes.moment("created_at"),
        shapes.moment("decided_at", nullable=True),
        shapes.moment("nudged_at", nullable=True),
        shapes.moment("offered_at", nullable=True),
        sa.Column("board_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("board_message_id", sa.BigInteger(), nullable=True),
        sa.Column("round", sa.Integer(), nullable=False),
        foreign_keys={
            "case_id": "cases",
            "coordinator_id": "members",
            "district_id": "districts",
        },
        indexes=["case_id", "coordinator_id", "district_id", "status"],
    )
    shapes.create_table(
        "conference_slots",
        shapes.id_column(),
        sa.Column("conference_id", sa.Integer(), nullable=False),
        shapes.moment("starts_at"),
        sa.Column("round", sa.Integer(), nullable=False),
        foreign_keys={"conference_id": "conferences"},
        indexes=["conference_id"],
    )
    shapes.create_table(
        "invitations",
        shapes.id_column(),
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            shapes.enum("invitationkind", "institution", "guardian", "offline"),
            nullable=False,
        ),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("answered_by_id", sa.Integer(), nullable=True),
        shapes.moment("answered_at", nullable=True),
        foreign_keys={
            "answered_by_id": "members",
            "conference_id": "conferences",
            "institution_id": "institutions",
            "member_id": "members",
        },
        indexes=["conference_id", "institution_id"],
    )
    shapes.create_table(
        "poll_messages",
        shapes.id_column(),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("pending", sa.JSON(), nullable=False),
        foreign_keys={"invitation_id": "invitations", "member_id": "members"},
        unique=[["invitation_id", "member_id"]],
        indexes=["invitation_id", "member_id"],
    )
    shapes.create_table(
        "slot_answers",
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("vote", sa.String(length=8), nullable=False),
        foreign_keys={"invitation_id": "invitations", "slot_id": "conference_slots"},
        primary_key=["invitation_id", "slot_id"],
    )
    shapes.add_columns(
        "districts",
        sa.Column("place", sa.String(length=200), nullable=True),
        sa.Column("day_starts", sa.Time(), nullable=False, server_default="08:00:00"),
        sa.Column("day_ends", sa.Time(), nullable=False, server_default="16:00:00"),
    )
    shapes.add_columns(
        "institutions",
        sa.Column("day_starts", sa.Time(), nullable=True),
        sa.Column("day_ends", sa.Time(), nullable=True),
    )
    shapes.add_columns(
        "invite_codes",
        sa.Column("invitation_id", sa.Integer(), nullable=True),
        foreign_keys={"invitation_id": "invitations"},
    )


def downgrade() -> None:
    shapes.drop_columns(
        "invite_codes", "invitation_id", foreign_keys={"invitation_id": "invitations"}
    )
    shapes.drop_columns("institutions", "day_starts", "day_ends")
    shapes.drop_columns("districts", "place", "day_starts", "day_ends")
    shapes.drop_table("slot_answers")
    shapes.drop_table("poll_messages", indexes=["invitation_id", "member_id"])
    shapes.drop_table("invitations", indexes=["conference_id", "institution_id"])
    shapes.drop_table("conference_slots", indexes=["conference_id"])
    shapes.drop_table("conferences", indexes=["case_id", "coordinator_id", "district_id", "status"])
    shapes.drop_table("busy_times")
