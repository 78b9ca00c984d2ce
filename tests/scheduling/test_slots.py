"""Candidate slots: hours, window, buffers, busy invitees, the fill and the spreading."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.calendar import WorkingCalendar, WorkingHours
from scheduling.slots import (
    Interval,
    InviteeBusy,
    SlotRequest,
    candidates,
    choose,
    free_starts,
    open_starts,
)

PRAGUE = ZoneInfo("Europe/Prague")
CALENDAR = WorkingCalendar()
MONDAY = date(2027, 1, 4)
EXAMPLES = int(os.environ.get("ROUNDTABLE_PROPERTY_EXAMPLES", "200"))


def at(day: date, hour: int, minute: int = 0) -> int:
    """Local wall-clock time in Prague as UTC seconds."""
    return int(datetime.combine(day, time(hour, minute), tzinfo=PRAGUE).timestamp())


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def wall(start: int) -> tuple[date, time]:
    moment = datetime.fromtimestamp(start, PRAGUE)
    return moment.date(), moment.time()


def one_day(**changes: object) -> SlotRequest:
    return SlotRequest(first_day=MONDAY, last_day=MONDAY, **changes)  # type: ignore[arg-type]


def quarter_hours(day: date, first: tuple[int, int], last: tuple[int, int]) -> list[int]:
    start, stop = at(day, *first), at(day, *last)
    return list(range(start, stop + 1, 900))


def test_slots_lie_on_the_grid_inside_working_hours_and_may_end_at_closing_time() -> None:
    starts = free_starts(CALENDAR, one_day())
    assert starts == quarter_hours(MONDAY, (8, 0), (14, 30))  # 14:30 + 90 min = 16:00
    assert at(MONDAY, 14, 45) not in starts  # it would end at 16:15
    assert free_starts(CALENDAR, one_day(hours=WorkingHours(time(9, 0), time(12, 0)))) == (
        quarter_hours(MONDAY, (9, 0), (10, 30))
    )
    # The grid counts from the start of working hours.
    assert free_starts(CALENDAR, one_day(hours=WorkingHours(time(8, 10), time(10, 0)))) == [
        at(MONDAY, 8, 10),
        at(MONDAY, 8, 25),
    ]


def test_no_slot_on_weekends_or_holidays() -> None:
    request = SlotRequest(first_day=date(2026, 12, 23), last_day=date(2026, 12, 29))
    days = {wall(start)[0] for start in free_starts(CALENDAR, request)}
    assert days == {date(2026, 12, 23), date(2026, 12, 28), date(2026, 12, 29)}


def test_bookings_keep_a_buffer_on_both_sides() -> None:
    bookings = [(at(MONDAY, 13, 0), at(MONDAY, 14, 0)), (at(MONDAY, 9, 0), at(MONDAY, 10, 30))]
    starts = free_starts(CALENDAR, one_day(bookings=bookings))
    # Kept free: 08:45-10:45 and 12:45-14:15. The earliest start after the first booking is
    # 10:45; the latest 90-minute slot before the second starts at 11:15 (ends 12:45).
    assert starts == [
        at(MONDAY, 10, 45),
        at(MONDAY, 11, 0),
        at(MONDAY, 11, 15),
        at(MONDAY, 14, 15),
        at(MONDAY, 14, 30),
    ]
    # Without a buffer a slot may touch a booking.
    unbuffered = free_starts(CALENDAR, one_day(bookings=bookings, buffer_minutes=0))
    assert at(MONDAY, 10, 30) in unbuffered and at(MONDAY, 11, 30) in unbuffered
    assert at(MONDAY, 10, 15) not in unbuffered and at(MONDAY, 11, 45) not in unbuffered


def test_invitees_busy_times_have_no_buffer() -> None:
    busy = [(at(MONDAY, 13, 0), at(MONDAY, 14, 0)), (at(MONDAY, 9, 0), at(MONDAY, 10, 30))]
    for required in (True, False):
        request = one_day(invitees=[InviteeBusy(required=required, busy=busy)])
        assert free_starts(CALENDAR, request) == [
            at(MONDAY, 10, 30),
            at(MONDAY, 10, 45),
            at(MONDAY, 11, 0),
            at(MONDAY, 11, 15),
            at(MONDAY, 11, 30),
            at(MONDAY, 14, 0),
            at(MONDAY, 14, 15),
            at(MONDAY, 14, 30),
        ]


def test_optional_invitees_busy_times_fill_only_when_free_slots_are_short() -> None:
    required = InviteeBusy(required=True, busy=[(at(MONDAY, 8, 0), at(MONDAY, 12, 0))])
    lunch = InviteeBusy(required=False, busy=[(at(MONDAY, 12, 0), at(MONDAY, 13, 0))])
    early = InviteeBusy(required=False, busy=[(at(MONDAY, 12, 0), at(MONDAY, 12, 30))])
    request = one_day(invitees=[required, lunch, early])
    free = quarter_hours(MONDAY, (13, 0), (14, 30))
    assert free_starts(CALENDAR, request) == free
    assert open_starts(CALENDAR, request) == [
        (at(MONDAY, 12, 0), 2),
        (at(MONDAY, 12, 15), 2),
        (at(MONDAY, 12, 30), 1),
        (at(MONDAY, 12, 45), 1),
        *((start, 0) for start in free),
    ]
    # Enough free slots: the others are never offered.
    assert set(candidates(CALENDAR, one_day(invitees=[required, lunch, early], limit=5))) <= set(
        free
    )
    assert len(free) == 7
    # One short: the fewest busy optional invitees first.
    assert candidates(CALENDAR, request) == [at(MONDAY, 12, 30), *free]
    nine = candidates(CALENDAR, one_day(invitees=[required, lunch, early], limit=9))
    assert nine == [at(MONDAY, 12, 30), at(MONDAY, 12, 45), *free]
    ten = candidates(CALENDAR, one_day(invitees=[required, lunch, early], limit=10))
    assert ten == [at(MONDAY, 12, 0), at(MONDAY, 12, 30), at(MONDAY, 12, 45), *free]
    # A required invitee's busy time is never offered, however short the list.
    assert all(start >= at(MONDAY, 12, 0) for start in candidates(CALENDAR, request))


def test_eight_slots_spread_over_a_fifteen_day_window_mornings_and_afternoons() -> None:
    first, last = CALENDAR.planning_window(date(2027, 1, 4))  # 6 to 26 January
    days = CALENDAR.working_days(first, last)
    assert len(days) == 15
    chosen = candidates(CALENDAR, SlotRequest(first_day=first, last_day=last))
    assert chosen == [
        at(days[0], 8, 0),
        at(days[2], 12, 0),
        at(days[4], 8, 0),
        at(days[6], 12, 0),
        at(days[8], 8, 0),
        at(days[10], 12, 0),
        at(days[12], 8, 0),
        at(days[14], 12, 0),
    ]
    assert chosen == sorted(chosen)


def test_spreading_uses_the_days_that_have_room_and_balances_the_halves() -> None:
    first, last = date(2027, 1, 4), date(2027, 1, 22)  # three weeks, 15 working days
    days = CALENDAR.working_days(first, last)
    # Mornings are busy on every day but the first; afternoons are busy on the first ten days.
    busy = [(at(day, 8, 0), at(day, 12, 0)) for day in days[1:]] + [
        (at(day, 12, 0), at(day, 16, 0)) for day in days[:10]
    ]
    request = SlotRequest(
        first_day=first, last_day=last, invitees=[InviteeBusy(required=True, busy=busy)]
    )
    chosen = candidates(CALENDAR, request)
    # Six days have room: the first (mornings only) and the last five (afternoons only). Each
    # gets one slot; no day offers its other half; so two more come from the first and the
    # last of them, not overlapping the slots already there.
    assert [wall(start) for start in chosen] == [
        (days[0], time(8, 0)),
        (days[0], time(9, 30)),
        *((day, time(12, 0)) for day in days[10:]),
        (days[14], time(13, 30)),
    ]


def test_fewer_days_than_slots_take_both_halves_before_a_second_slot_in_a_half() -> None:
    request = SlotRequest(first_day=MONDAY, last_day=MONDAY + timedelta(days=1), limit=4)
    chosen = candidates(CALENDAR, request)
    tuesday = MONDAY + timedelta(days=1)
    assert chosen == [at(MONDAY, 8, 0), at(MONDAY, 12, 0), at(tuesday, 8, 0), at(tuesday, 12, 0)]
    request = SlotRequest(first_day=MONDAY, last_day=MONDAY + timedelta(days=2))
    chosen = candidates(CALENDAR, request)
    assert len(chosen) == 8
    for offset in range(3):
        day = MONDAY + timedelta(days=offset)
        times = [wall(start)[1] for start in chosen if wall(start)[0] == day]
        assert any(t < time(12, 0) for t in times) and any(t >= time(12, 0) for t in times)
    # The extra slots in a half do not overlap the ones already there.
    assert all(later - earlier >= 90 * 60 for earlier, later in pairwise(chosen))


def test_slots_in_the_week_of_the_clock_change_are_at_the_right_utc_time() -> None:
    request = SlotRequest(first_day=date(2026, 3, 27), last_day=date(2026, 3, 30), limit=2)
    starts = free_starts(CALENDAR, request)
    assert starts[0] == utc(2026, 3, 27, 7, 0)  # 08:00 CET
    assert starts[-1] == utc(2026, 3, 30, 12, 30)  # 14:30 CEST
    assert utc(2026, 3, 30, 6, 0) in starts  # 08:00 CEST
    assert candidates(CALENDAR, request) == [utc(2026, 3, 27, 7, 0), utc(2026, 3, 30, 10, 0)]
    autumn = SlotRequest(first_day=date(2026, 10, 23), last_day=date(2026, 10, 26), limit=2)
    assert candidates(CALENDAR, autumn) == [utc(2026, 10, 23, 6, 0), utc(2026, 10, 26, 11, 0)]


def test_no_slot_starts_before_now() -> None:
    request = one_day(not_before=at(MONDAY, 10, 7))
    starts = free_starts(CALENDAR, request)
    assert starts[0] == at(MONDAY, 10, 15)
    assert free_starts(CALENDAR, one_day(not_before=at(MONDAY, 10, 15)))[0] == at(MONDAY, 10, 15)
    assert free_starts(CALENDAR, one_day(not_before=at(MONDAY, 14, 31))) == []
    assert free_starts(CALENDAR, one_day(not_before=at(MONDAY, 6, 0)))[0] == at(MONDAY, 8, 0)


def test_degenerate_requests_give_no_slots_and_no_error() -> None:
    assert candidates(CALENDAR, SlotRequest(first_day=MONDAY, last_day=MONDAY - timedelta(1))) == []
    assert candidates(CALENDAR, one_day(duration_minutes=9 * 60)) == []
    assert candidates(CALENDAR, one_day(hours=WorkingHours(time(16, 0), time(8, 0)))) == []
    assert candidates(CALENDAR, one_day(limit=0)) == []
    assert candidates(CALENDAR, one_day(duration_minutes=0)) == []
    assert candidates(CALENDAR, one_day(grid_minutes=0)) == []
    assert len(candidates(CALENDAR, one_day(invitees=[]))) == 8
    sunday = MONDAY - timedelta(days=1)
    assert candidates(CALENDAR, SlotRequest(first_day=sunday, last_day=sunday)) == []
    everyone_busy = InviteeBusy(required=True, busy=[(at(MONDAY, 0), at(MONDAY, 23))])
    assert candidates(CALENDAR, one_day(invitees=[everyone_busy])) == []


def test_odd_intervals_are_harmless() -> None:
    odd = [(at(MONDAY, 11, 0), at(MONDAY, 9, 0)), (at(MONDAY, 10, 0), at(MONDAY, 10, 0))]
    request = one_day(invitees=[InviteeBusy(required=True, busy=odd)], bookings=odd)
    assert free_starts(CALENDAR, request) == free_starts(CALENDAR, one_day())
    overlapping = [
        (at(MONDAY, 9, 0), at(MONDAY, 11, 0)),
        (at(MONDAY, 8, 0), at(MONDAY, 9, 30)),
        (at(MONDAY, 9, 0), at(MONDAY, 11, 0)),
    ]
    request = one_day(invitees=[InviteeBusy(required=False, busy=overlapping)])
    # One optional invitee is one busy person, however many of their intervals overlap a slot.
    assert {cost for _, cost in open_starts(CALENDAR, request)} == {0, 1}
    assert free_starts(CALENDAR, request)[0] == at(MONDAY, 11, 0)


def test_choose_on_given_options_is_the_fill_and_spread_of_candidates() -> None:
    request = SlotRequest(first_day=MONDAY, last_day=MONDAY + timedelta(days=14))
    options = open_starts(CALENDAR, request)
    assert choose(CALENDAR, request, options) == candidates(CALENDAR, request)
    assert choose(CALENDAR, request, list(reversed(options))) == candidates(CALENDAR, request)


# The property: candidates against a reference that checks every grid start against every
# interval, one by one, on small random instances around the spring clock change.

BEGIN = date(2026, 3, 26)  # Thursday; the clocks change on Sunday the 29th


def reference(request: SlotRequest) -> list[tuple[int, int]]:
    step = timedelta(minutes=request.grid_minutes)
    length = timedelta(minutes=request.duration_minutes)
    buffer = request.buffer_minutes * 60
    out = []
    day = request.first_day
    while day <= request.last_day:
        if CALENDAR.is_working_day(day):
            opens = datetime.combine(day, request.hours.starts, tzinfo=PRAGUE)
            closes = datetime.combine(day, request.hours.ends, tzinfo=PRAGUE)
            moment = opens
            # Wall-clock hours, elapsed-time grid: compare in UTC.
            while moment.astimezone(UTC) + length <= closes.astimezone(UTC):
                s = int(moment.timestamp())
                e = s + request.duration_minutes * 60
                late = request.not_before is None or s >= request.not_before
                booked = any(
                    a < b and s < b + buffer and a - buffer < e for a, b in request.bookings
                )
                blocked = any(
                    a < b and s < b and a < e
                    for invitee in request.invitees
                    if invitee.required
                    for a, b in invitee.busy
                )
                if late and not booked and not blocked:
                    cost = sum(
                        1
                        for invitee in request.invitees
                        if not invitee.required
                        and any(a < b and s < b and a < e for a, b in invitee.busy)
                    )
                    out.append((s, cost))
                moment = (moment.astimezone(UTC) + step).astimezone(PRAGUE)
        day += timedelta(days=1)
    return out


ORIGIN = int(datetime.combine(BEGIN, time(0), tzinfo=PRAGUE).timestamp())
SPAN = 6 * 86400


@st.composite
def intervals(draw: st.DrawFn, most: int) -> list[Interval]:
    out = []
    for _ in range(draw(st.integers(0, most))):
        start = ORIGIN + draw(st.integers(0, SPAN // 300)) * 300
        out.append((start, start + draw(st.integers(-1, 36)) * 300))
    return out


@st.composite
def requests(draw: st.DrawFn) -> SlotRequest:
    first = BEGIN + timedelta(days=draw(st.integers(0, 3)))
    starts = time(draw(st.integers(7, 9)), draw(st.sampled_from([0, 15, 30])))
    ends = time(draw(st.integers(10, 17)), draw(st.sampled_from([0, 30])))
    invitees = [
        InviteeBusy(required=draw(st.booleans()), busy=draw(intervals(5)))
        for _ in range(draw(st.integers(0, 4)))
    ]
    not_before = draw(st.one_of(st.none(), st.integers(ORIGIN, ORIGIN + SPAN)))
    return SlotRequest(
        first_day=first,
        last_day=first + timedelta(days=draw(st.integers(-1, 4))),
        duration_minutes=draw(st.sampled_from([30, 45, 60, 90, 120, 200])),
        hours=WorkingHours(starts, ends),
        grid_minutes=draw(st.sampled_from([5, 10, 15, 30])),
        buffer_minutes=draw(st.sampled_from([0, 5, 15])),
        bookings=draw(intervals(3)),
        invitees=invitees,
        not_before=not_before,
        limit=draw(st.integers(1, 8)),
    )


@settings(max_examples=EXAMPLES, deadline=None)
@given(requests())
def test_candidates_agree_with_checking_every_start_against_every_interval(
    request: SlotRequest,
) -> None:
    expected = reference(request)
    assert open_starts(CALENDAR, request) == expected
    free = [start for start, cost in expected if cost == 0]
    assert free_starts(CALENDAR, request) == free

    chosen = candidates(CALENDAR, request)
    assert chosen == sorted(set(chosen))
    assert len(chosen) == min(request.limit, len(expected))
    cost = dict(expected)
    assert set(chosen) <= cost.keys()
    if len(free) >= request.limit:
        assert set(chosen) <= set(free)
    # Fewest busy optional invitees first: nothing left out is better than anything taken.
    left_out = [cost[start] for start in cost if start not in set(chosen)]
    if chosen and left_out:
        assert max(cost[start] for start in chosen) <= min(left_out)
    # Different days first.
    free_days = {wall(start)[0] for start in free}
    if len(free_days) >= request.limit:
        assert len({wall(start)[0] for start in chosen}) == len(chosen)
