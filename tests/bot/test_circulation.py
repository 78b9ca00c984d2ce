"""When comments on a circulated record are due: 3 working days of the district's calendar, at
the end of the working day, and the reminder at the start of the working day before."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from bot.core.models import District
from bot.services.circulation import comment_deadline

PRAGUE = ZoneInfo("Europe/Prague")
CHEB = District(name="Cheb", timezone="Europe/Prague", day_starts=time(8), day_ends=time(16))


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=PRAGUE)


@pytest.mark.parametrize(
    ("sent", "until", "remind"),
    [
        # Monday: Thursday at 16:00, reminded on Wednesday morning.
        (local(2026, 11, 30, 11, 0), local(2026, 12, 3, 16, 0), local(2026, 12, 2, 8, 0)),
        # Friday: over the weekend to Wednesday.
        (local(2026, 12, 4, 15, 0), local(2026, 12, 9, 16, 0), local(2026, 12, 8, 8, 0)),
        # Saturday counts from Monday: Wednesday.
        (local(2026, 12, 5, 10, 0), local(2026, 12, 9, 16, 0), local(2026, 12, 8, 8, 0)),
        # Before Christmas: 24, 25 and 26 December are Czech public holidays.
        (local(2026, 12, 23, 9, 0), local(2026, 12, 30, 16, 0), local(2026, 12, 29, 8, 0)),
        # Friday evening, across the clock change (25 October) and a holiday (28 October).
        (local(2026, 10, 23, 22, 30), local(2026, 10, 29, 16, 0), local(2026, 10, 27, 8, 0)),
    ],
)
def test_three_working_days_and_a_reminder_the_working_day_before(
    sent: datetime, until: datetime, remind: datetime
) -> None:
    assert comment_deadline(CHEB, sent) == (until, remind)


def test_the_districts_own_hours() -> None:
    late = District(name="Aš", timezone="Europe/Prague", day_starts=time(7), day_ends=time(15))
    until, remind = comment_deadline(late, local(2026, 11, 30, 11, 0))
    assert (until.hour, remind.hour) == (15, 7)
