"""The shapes the migrations write again and again: a table with its named keys and indexes, an
id column, a timestamp column, an enum stored as text.

The names are those of bot.core.base.NAMING (pk_<table>, fk_<table>_<column>_<target>,
uq_<table>_<first column>, ix_<table>_<column>), written out with op.f so that they are taken
as they are.

A migration that has run must keep its effect forever, so a shape's output never changes: a new
need gets a new function, never a change to one that a migration already calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import bot.core.models


def create_table(
    name: str,
    *columns: sa.Column[Any],
    foreign_keys: Mapping[str, str] | None = None,
    primary_key: Sequence[str] = ("id",),
    unique: Sequence[Sequence[str]] = (),
    indexes: Sequence[str] = (),
) -> None:
    """The table `name` with its columns; `foreign_keys` maps a column to the table whose id it
    refers to; `unique` lists the unique constraints by their columns; `indexes` the columns
    that get an index of their own."""
    op.create_table(
        name,
        *columns,
        *(
            sa.ForeignKeyConstraint(
                [column], [f"{target}.id"], name=op.f(f"fk_{name}_{column}_{target}")
            )
            for column, target in (foreign_keys or {}).items()
        ),
        sa.PrimaryKeyConstraint(*primary_key, name=op.f(f"pk_{name}")),
        *(sa.UniqueConstraint(*each, name=op.f(f"uq_{name}_{each[0]}")) for each in unique),
    )
    if indexes:
        with op.batch_alter_table(name, schema=None) as batch_op:
            for column in indexes:
                batch_op.create_index(batch_op.f(f"ix_{name}_{column}"), [column], unique=False)


def drop_table(name: str, *, indexes: Sequence[str] = ()) -> None:
    """Undo create_table: its indexes (given as there, dropped in reverse), then the table."""
    if indexes:
        with op.batch_alter_table(name, schema=None) as batch_op:
            for column in reversed(indexes):
                batch_op.drop_index(batch_op.f(f"ix_{name}_{column}"))
    op.drop_table(name)


def add_columns(
    table: str,
    *columns: sa.Column[Any],
    foreign_keys: Mapping[str, str] | None = None,
    unique: Sequence[Sequence[str]] = (),
) -> None:
    """Add columns to a table (one batch: on SQLite at most one rebuild), then the foreign keys
    and unique constraints on them, named as create_table names them."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.add_column(column)
        for name, target in (foreign_keys or {}).items():
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_{name}_{target}"), target, [name], ["id"]
            )
        for each in unique:
            batch_op.create_unique_constraint(batch_op.f(f"uq_{table}_{each[0]}"), list(each))


def drop_columns(
    table: str,
    *names: str,
    foreign_keys: Mapping[str, str] | None = None,
    unique: Sequence[Sequence[str]] = (),
) -> None:
    """Undo add_columns, given the same: the unique constraints, the foreign keys and the
    columns, each dropped in reverse."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        for each in reversed(unique):
            batch_op.drop_constraint(batch_op.f(f"uq_{table}_{each[0]}"), type_="unique")
        for name, target in reversed(list((foreign_keys or {}).items())):
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_{name}_{target}"), type_="foreignkey")
        for name in reversed(names):
            batch_op.drop_column(name)


def id_column() -> sa.Column[int]:
    """The integer primary key every table with rows of their own has."""
    return sa.Column("id", sa.Integer(), nullable=False)


def moment(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """A point in time, stored in UTC (bot.core.models.UTCDateTime)."""
    return sa.Column(name, bot.core.models.UTCDateTime(), nullable=nullable)


def enum(name: str, *values: str) -> sa.Enum:
    """An enum stored as text (not the database's own enum type), up to 32 characters."""
    return sa.Enum(*values, name=name, native_enum=False, length=32)


# bot.core.models.Role as it was when the members and invite codes tables were made.
ROLE = ("admin", "coordinator", "referrer", "participant")
