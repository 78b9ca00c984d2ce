"""Alembic migrations of the Round Table schema."""
