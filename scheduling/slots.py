"""Candidate conference slots: start times that the invitees can make, spread over the window."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from itertools import chain
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from scheduling.calendar import WorkingCalendar, WorkingHours

# UTC unix seconds, start inclusive, end exclusive. Plain ints rather than datetimes: the finder
# compares thousands of busy intervals against every grid start, and ints keep that fast.
Interval = tuple[int, int]
Ints = npt.NDArray[np.int64]
NOON = time(12, 0)
# (start, index of its day in the window, whether it starts in the afternoon)
_Entry = tuple[int, int, bool]
_T = TypeVar("_T")


@dataclass(frozen=True)
class InviteeBusy:
    required: bool
    busy: Sequence[Interval]  # any order, may overlap


@dataclass(frozen=True)
class SlotRequest:
    first_day: date  # the window, local dates, both included
    last_day: date
    duration_minutes: int = 90
    hours: WorkingHours = field(default_factory=WorkingHours)
    grid_minutes: int = 15  # starts lie on this grid, counted from the start of working hours
    buffer_minutes: int = 15  # kept free around bookings only
    bookings: Sequence[Interval] = ()  # the coordinator's other conferences, the room's bookings
    invitees: Sequence[InviteeBusy] = ()
    not_before: int | None = None  # now: no slot starts earlier
    limit: int = 8


@dataclass(frozen=True)
class _Grid:
    starts: Ints  # every start that fits the working hours of a window day, ascending
    opens: Ints  # when working hours open on each day that has a start, ascending
    noons: Ints  # 12:00 local on each of those days


def candidates(calendar: WorkingCalendar, request: SlotRequest) -> list[int]:
    """Up to `limit` slot starts (UTC unix seconds), sorted ascending.

    A slot [start, start + duration) lies on a working day of the window, inside the working
    hours, on the grid; it keeps `buffer_minutes` away from every booking and overlaps no busy
    time of any invitee. When fewer than `limit` such slots exist, all of them are taken and the
    rest is filled with slots where only optional invitees are busy, fewest of them first;
    required invitees' busy times and the bookings are never overridden.

    Spreading, among the slots of the last group taken (all free ones, or one level of the
    fill), in rounds until `limit` are chosen:

    1. Days that have no chosen slot yet: as many as still needed, evenly spaced over those
       days in time order (the first and the last included), so a 15-day window is covered
       from its start to its end rather than its first eight days. On each such day (in time
       order) the half of the day chosen less often so far is preferred, the morning on a tie
       (morning = starting before 12:00 local), so mornings and afternoons alternate where the
       days offer both; the earliest start of that half is taken.
    2. Then halves of days that have no chosen slot yet (the other half of a day already
       chosen), evenly spaced in time order, the earliest start of each.
    3. Then a second (third, ...) slot in a half of a day: among the halves that have the
       fewest chosen slots, the earliest start that does not overlap a slot already chosen
       that day, evenly spaced; only when none is left, slots that do overlap, evenly spaced.

    "Evenly spaced": k of n items in time order are those at index round(i * (n - 1) / (k - 1))
    for i = 0..k-1 (halves rounded up); one of n is the earliest. The result is deterministic.
    """
    grid = _grid(calendar, request)
    opened, costs = _assess(grid, request)
    return _choose(grid, request, opened, costs)


def free_starts(calendar: WorkingCalendar, request: SlotRequest) -> list[int]:
    """Every start where nobody invited is busy and no booking is near, ascending."""
    opened, costs = _assess(_grid(calendar, request), request)
    return [int(start) for start in opened[costs == 0]]


def open_starts(calendar: WorkingCalendar, request: SlotRequest) -> list[tuple[int, int]]:
    """Every start the hard rules allow (hours, window, bookings with buffer, required
    invitees), ascending, with how many optional invitees are busy then."""
    opened, costs = _assess(_grid(calendar, request), request)
    return list(zip(opened.tolist(), costs.tolist(), strict=True))


def choose(
    calendar: WorkingCalendar, request: SlotRequest, options: Sequence[tuple[int, int]]
) -> list[int]:
    """The fill-and-spread step of `candidates` over `open_starts`-shaped options, for callers
    (the benchmark's reference) that assess the starts themselves."""
    ordered = sorted(options)
    opened = np.array([start for start, _ in ordered], dtype=np.int64)
    costs = np.array([cost for _, cost in ordered], dtype=np.int64)
    return _choose(_grid(calendar, request), request, opened, costs)


def _grid(calendar: WorkingCalendar, request: SlotRequest) -> _Grid:
    duration = request.duration_minutes * 60
    step = request.grid_minutes * 60
    starts: list[int] = []
    opens: list[int] = []
    noons: list[int] = []
    if duration > 0 and step > 0:
        for day in calendar.working_days(request.first_day, request.last_day):
            day_opens, day_closes = calendar.day_bounds(day, request.hours)
            first = day_opens
            if request.not_before is not None and first < request.not_before:
                first += -(-(request.not_before - first) // step) * step  # next grid point
            latest = day_closes - duration
            if first <= latest:
                starts.extend(range(first, latest + 1, step))
                opens.append(day_opens)
                noons.append(calendar.timestamp(day, NOON))
    return _Grid(
        np.array(starts, dtype=np.int64),
        np.array(opens, dtype=np.int64),
        np.array(noons, dtype=np.int64),
    )


def _arrays(intervals: Iterable[Interval], count: int) -> tuple[Ints, Ints]:
    flat = np.fromiter(chain.from_iterable(intervals), dtype=np.int64, count=2 * count)
    return flat[0::2], flat[1::2]


def _assess(grid: _Grid, request: SlotRequest) -> tuple[Ints, Ints]:
    """The starts the hard rules allow and, for each, how many optional invitees are busy."""
    starts = grid.starts
    n = len(starts)
    if n == 0:
        return starts, starts
    ends = starts + request.duration_minutes * 60
    buffer = request.buffer_minutes * 60

    # Slot i overlaps [a, b) iff ends[i] > a and starts[i] < b: with both arrays ascending that
    # is the index range [lo, hi) with lo = #(ends <= a) and hi = #(starts < b); a difference
    # array and a running sum then count the intervals over every start, with no Python loop
    # per interval.
    ranks_of_ends = _Ranks(ends, starts[0], ends[-1])
    ranks_of_starts = _Ranks(starts, starts[0], ends[-1])

    def spans(a: Ints, b: Ints) -> tuple[Ints, Ints]:
        lo = ranks_of_ends.at_most(a)
        # An interval that ends when or before it starts is empty and overlaps nothing (the
        # index formula alone would count it); for a real one lo <= hi always holds.
        hi = np.where(b > a, ranks_of_starts.below(b), lo)
        return lo, hi

    hard = [invitee.busy for invitee in request.invitees if invitee.required]
    hard_a, hard_b = _arrays(chain.from_iterable(hard), sum(map(len, hard)))
    book_a, book_b = _arrays(request.bookings, len(request.bookings))
    # A booking that ends when (or before) it starts is no booking, and gets no buffer either.
    real = book_b > book_a
    book_a, book_b = book_a[real], book_b[real]
    lo, hi = spans(
        np.concatenate((hard_a, book_a - buffer)), np.concatenate((hard_b, book_b + buffer))
    )
    blocked = np.cumsum((np.bincount(lo, minlength=n + 1) - np.bincount(hi, minlength=n + 1))[:n])

    optional = [invitee.busy for invitee in request.invitees if not invitee.required]
    costs: Ints = np.zeros(n, dtype=np.int64)
    if optional:
        # One row per optional invitee, so that overlapping intervals of one person count once.
        lengths = [len(busy) for busy in optional]
        a, b = _arrays(chain.from_iterable(optional), sum(lengths))
        lo, hi = spans(a, b)
        width = n + 1
        row = np.repeat(np.arange(len(optional), dtype=np.int64) * width, lengths)
        size = len(optional) * width
        diff = np.bincount(row + lo, minlength=size) - np.bincount(row + hi, minlength=size)
        busy = np.cumsum(diff.reshape(len(optional), width), axis=1)[:, :n] > 0
        costs = busy.sum(axis=0, dtype=np.int64)
    allowed = blocked == 0
    return starts[allowed], costs[allowed]


class _Ranks:
    """How many of the ascending `values` lie below (or at most at) each of many moments.

    Binary search (np.searchsorted) costs ~50 ns per moment with 10,000 moments in random order.
    Grid starts (and ends) are at least one grid step apart, so a table of buckets as wide as the
    smallest gap holds at most one value per bucket, and a lookup is a division, two gathers and
    a comparison: several times faster.
    """

    def __init__(self, values: Ints, begin: int, end: int) -> None:
        self.values = values
        gaps = np.diff(values)
        self.width = int(gaps.min()) if len(gaps) else 1
        self.begin = begin
        self.buckets = (end - begin) // self.width + 1
        # A table far larger than the grid (a single start, starts a day apart): search.
        self.table = self.width > 0 and self.buckets <= 64 * len(values) + 1024
        if self.table:
            edges = begin + self.width * np.arange(self.buckets, dtype=np.int64)
            self.before = np.searchsorted(values, edges, side="left")
            self.inside = np.full(self.buckets, np.iinfo(np.int64).max, dtype=np.int64)
            self.inside[(values - begin) // self.width] = values

    def _bucket(self, moments: Ints) -> Ints:
        return np.clip((moments - self.begin) // self.width, 0, self.buckets - 1)

    def below(self, moments: Ints) -> Ints:
        if not self.table:
            return np.searchsorted(self.values, moments, side="left")
        bucket = self._bucket(moments)
        return self.before[bucket] + (moments > self.inside[bucket])

    def at_most(self, moments: Ints) -> Ints:
        if not self.table:
            return np.searchsorted(self.values, moments, side="right")
        bucket = self._bucket(moments)
        return self.before[bucket] + (moments >= self.inside[bucket])


def _choose(grid: _Grid, request: SlotRequest, opened: Ints, costs: Ints) -> list[int]:
    limit = request.limit
    if limit <= 0 or len(opened) == 0:
        return []
    if len(opened) <= limit:
        return [int(start) for start in opened]
    chosen: list[_Entry] = []
    for level in np.unique(costs).tolist():
        tier = opened[costs == level]
        need = limit - len(chosen)
        if len(tier) < need:
            chosen.extend(_entries(grid, tier))
            continue
        chosen.extend(_spread(_entries(grid, tier), chosen, need, request.duration_minutes * 60))
        break
    return sorted(start for start, _, _ in chosen)


def _entries(grid: _Grid, starts: Ints) -> list[_Entry]:
    days = np.searchsorted(grid.opens, starts, side="right") - 1
    afternoon = starts >= grid.noons[days]
    return list(zip(starts.tolist(), days.tolist(), afternoon.tolist(), strict=True))


def _spread(pool: list[_Entry], picked: list[_Entry], need: int, duration: int) -> list[_Entry]:
    """`need` entries of `pool` (ascending), spread as `candidates` describes."""
    taken: list[_Entry] = []
    remaining = list(pool)
    while len(taken) < need and remaining:
        chosen = _round(remaining, picked + taken, need - len(taken), duration)
        taken.extend(chosen)
        gone = set(chosen)
        remaining = [entry for entry in remaining if entry not in gone]
    return taken


def _round(remaining: list[_Entry], picked: list[_Entry], need: int, duration: int) -> list[_Entry]:
    picked_days = {day for _, day, _ in picked}
    fresh: dict[int, list[_Entry]] = {}
    for entry in remaining:
        if entry[1] not in picked_days:
            fresh.setdefault(entry[1], []).append(entry)
    if fresh:
        afternoons = sum(1 for _, _, afternoon in picked if afternoon)
        mornings = len(picked) - afternoons
        out: list[_Entry] = []
        for day in _even(sorted(fresh), need):
            options = fresh[day]
            want_afternoon = afternoons < mornings
            entry = next((e for e in options if e[2] == want_afternoon), options[0])
            out.append(entry)
            afternoons += entry[2]
            mornings += not entry[2]
        return out

    picked_halves = {(day, afternoon) for _, day, afternoon in picked}
    halves: dict[tuple[int, bool], _Entry] = {}
    for entry in remaining:
        half = (entry[1], entry[2])
        if half not in picked_halves and half not in halves:
            halves[half] = entry
    if halves:
        return _even(sorted(halves.values()), need)

    per_half = Counter((day, afternoon) for _, day, afternoon in picked)
    apart: dict[tuple[int, bool], _Entry] = {}
    for entry in remaining:
        half = (entry[1], entry[2])
        if half not in apart and _apart(entry, picked, duration):
            apart[half] = entry
    if not apart:
        return _even(remaining, need)
    fewest = min(per_half[half] for half in apart)
    out = []
    for entry in _even(sorted(e for h, e in apart.items() if per_half[h] == fewest), need):
        # Two halves of one day may offer starts that overlap each other (11:45 and 12:00).
        if _apart(entry, out, duration):
            out.append(entry)
    return out


def _apart(entry: _Entry, others: Iterable[_Entry], duration: int) -> bool:
    return all(abs(entry[0] - other[0]) >= duration for other in others if other[1] == entry[1])


def _even(items: Sequence[_T], k: int) -> list[_T]:
    """k of the items, evenly spaced, the first and the last included; one is the first."""
    n = len(items)
    k = min(k, n)
    if k <= 1:
        return list(items[:k])
    return [items[(2 * i * (n - 1) + k - 1) // (2 * (k - 1))] for i in range(k)]
