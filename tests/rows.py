"""Rows the tests write straight into the database, as the services would leave them.

A case with no referral behind it is `bench.world.open_case` (the benchmarks' seeds write the
same row); a case opened from a referral, as triage leaves it, is `case_from` here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bench import world
from bot.core.models import Case, Referral


async def case_from(
    session: AsyncSession, referral: Referral, code: str, manager_id: int, *, now: datetime
) -> Case:
    """The open case of an accepted referral, in the referral's district, opened at `now`."""
    case = await world.open_case(session, code, referral.district_id, manager_id, now=now)
    case.referral_id = referral.id
    await session.flush()
    return case
