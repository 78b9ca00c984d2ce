"""conferences, polls, busy times

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:40:48.450312
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.core.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "busy_times",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("intervals", sa.JSON(), nullable=False),
        sa.Column("imported_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("until", bot.core.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_busy_times_member_id_members")
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_busy_times")),
    )
    op.create_table(
        "conferences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("coordinator_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "polling",
                "scheduled",
                "held",
                "cancelled",
                name="conferencestatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("window_first", sa.Date(), nullable=False),
        sa.Column("window_last", sa.Date(), nullable=False),
        sa.Column("deadline", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("nudge_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("starts_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.Column("created_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("decided_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.Column("nudged_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.Column("offered_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.Column("board_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("board_message_id", sa.BigInteger(), nullable=True),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_conferences_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["coordinator_id"], ["members.id"], name=op.f("fk_conferences_coordinator_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_conferences_district_id_districts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conferences")),
    )
    with op.batch_alter_table("conferences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conferences_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_conferences_coordinator_id"), ["coordinator_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_conferences_district_id"), ["district_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_conferences_status"), ["status"], unique=False)

    op.create_table(
        "conference_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", bot.core.models.UTCDateTime(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conference_id"],
            ["conferences.id"],
            name=op.f("fk_conference_slots_conference_id_conferences"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conference_slots")),
    )
    with op.batch_alter_table("conference_slots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conference_slots_conference_id"), ["conference_id"], unique=False
        )

    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "institution",
                "guardian",
                "offline",
                name="invitationkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("answered_by_id", sa.Integer(), nullable=True),
        sa.Column("answered_at", bot.core.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["answered_by_id"], ["members.id"], name=op.f("fk_invitations_answered_by_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["conference_id"],
            ["conferences.id"],
            name=op.f("fk_invitations_conference_id_conferences"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_invitations_institution_id_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_invitations_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invitations_conference_id"), ["conference_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_invitations_institution_id"), ["institution_id"], unique=False
        )

    op.create_table(
        "poll_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("pending", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_poll_messages_invitation_id_invitations"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_poll_messages_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_poll_messages")),
        sa.UniqueConstraint(
            "invitation_id", "member_id", name=op.f("uq_poll_messages_invitation_id")
        ),
    )
    with op.batch_alter_table("poll_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_poll_messages_invitation_id"), ["invitation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_poll_messages_member_id"), ["member_id"], unique=False)

    op.create_table(
        "slot_answers",
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("vote", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_slot_answers_invitation_id_invitations"),
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["conference_slots.id"],
            name=op.f("fk_slot_answers_slot_id_conference_slots"),
        ),
        sa.PrimaryKeyConstraint("invitation_id", "slot_id", name=op.f("pk_slot_answers")),
    )
    with op.batch_alter_table("districts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("place", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("day_starts", sa.Time(), nullable=False, server_default="08:00:00")
        )
        batch_op.add_column(
            sa.Column("day_ends", sa.Time(), nullable=False, server_default="16:00:00")
        )

    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("day_starts", sa.Time(), nullable=True))
        batch_op.add_column(sa.Column("day_ends", sa.Time(), nullable=True))

    with op.batch_alter_table("invite_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invitation_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_invite_codes_invitation_id_invitations"),
            "invitations",
            ["invitation_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("invite_codes", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_invite_codes_invitation_id_invitations"), type_="foreignkey"
        )
        batch_op.drop_column("invitation_id")

    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.drop_column("day_ends")
        batch_op.drop_column("day_starts")

    with op.batch_alter_table("districts", schema=None) as batch_op:
        batch_op.drop_column("day_ends")
        batch_op.drop_column("day_starts")
        batch_op.drop_column("place")

    op.drop_table("slot_answers")
    with op.batch_alter_table("poll_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_poll_messages_member_id"))
        batch_op.drop_index(batch_op.f("ix_poll_messages_invitation_id"))

    op.drop_table("poll_messages")
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invitations_institution_id"))
        batch_op.drop_index(batch_op.f("ix_invitations_conference_id"))

    op.drop_table("invitations")
    with op.batch_alter_table("conference_slots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conference_slots_conference_id"))

    op.drop_table("conference_slots")
    with op.batch_alter_table("conferences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conferences_status"))
        batch_op.drop_index(batch_op.f("ix_conferences_district_id"))
        batch_op.drop_index(batch_op.f("ix_conferences_coordinator_id"))
        batch_op.drop_index(batch_op.f("ix_conferences_case_id"))

    op.drop_table("conferences")
    op.drop_table("busy_times")
