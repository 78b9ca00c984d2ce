"""A database that goes away for a moment (a restart, a failover) is waited for, not given up on:
what tells such an outage from a real error, and the writes that must not be lost to one."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bot.db import unavailable


class _Refusal(Exception):
    """What asyncpg raises for a server that is starting up (SQLSTATE 57P03)."""

    sqlstate = "57P03"


def test_an_outage_is_told_from_an_error() -> None:
    broken = InterfaceError("select 1", {}, Exception("connection is closed"))
    broken.connection_invalidated = True
    assert unavailable(broken)
    assert unavailable(ConnectionRefusedError(111, "Connect call failed"))
    assert unavailable(DBAPIError("select 1", {}, ConnectionResetError()))
    assert unavailable(_Refusal())
    assert not unavailable(OperationalError("select", {}, Exception("no such table: x")))
    assert not unavailable(ValueError("a bug"))
