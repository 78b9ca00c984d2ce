"""Refusals that services raise and handlers turn into a polite answer."""

from __future__ import annotations

from bot.core.models import AuditEntry


class ServiceError(Exception):
    """Base of every refusal a service gives."""


class PermissionDenied(ServiceError):
    """The actor may not do this. Its audit entry is kept although the transaction rolls back."""

    def __init__(self, what: str, *, audit: AuditEntry | None = None) -> None:
        super().__init__(what)
        self.rows_to_keep = [] if audit is None else [audit]


class NotFound(ServiceError):
    """The thing asked for does not exist or is not visible to the actor."""
