"""A typed due date is refused outside today .. two years ahead, before anything is computed
from it."""

from __future__ import annotations

from datetime import date

import pytest

from bot.services.tasks import DueOutOfRange, check_due

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize("due", [TODAY, date(2027, 3, 15), date(2028, 11, 23)])
def test_a_due_date_from_today_to_two_years_ahead_is_taken(due: date) -> None:
    check_due(due, TODAY)


@pytest.mark.parametrize(
    "due",
    [date(2026, 11, 22), date(2028, 11, 24), date(2207, 3, 15), date(9999, 12, 31), date.max],
)
def test_a_past_or_far_due_date_is_refused_with_the_allowed_range(due: date) -> None:
    with pytest.raises(DueOutOfRange) as refused:
        check_due(due, TODAY)
    assert (refused.value.earliest, refused.value.latest) == (TODAY, date(2028, 11, 23))
