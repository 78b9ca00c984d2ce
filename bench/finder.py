"""Benchmark of the common-date finder: candidate slots and the best slot on a large poll.

20 invitees with 500 busy intervals each, a 60-working-day window on a 15-minute grid. Ours
(`scheduling.slots.candidates` + `scheduling.finder.best_slot`) is timed against a plain
reference that checks every grid start against every busy interval and booking and picks the
best slot by brute force, on the same instances in the same process; the two must agree.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time as clock
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta

from scheduling.calendar import WorkingCalendar
from scheduling.finder import Best, NoCommonSlot, Vote, Voter, best_slot
from scheduling.slots import (
    Interval,
    InviteeBusy,
    SlotRequest,
    candidates,
    choose,
    free_starts,
    open_starts,
)

RUNS = 50
SEED = 20270104
FIRST_DAY = date(2027, 1, 4)  # a Monday
WINDOW_DAYS = 60
INVITEES = 20
REQUIRED = 5
BUSY_PER_INVITEE = 500
BOOKINGS = 30
FREE_GAPS = 12
CALENDAR = WorkingCalendar()


@dataclass(frozen=True)
class Instance:
    request: SlotRequest
    voters: list[Voter]
    votes: dict[tuple[int, int], Vote]


def instance(rng: random.Random) -> Instance:
    last_day = CALENDAR.add_working_days_to_date(FIRST_DAY, WINDOW_DAYS - 1)
    days = CALENDAR.working_days(FIRST_DAY, last_day)
    # Busy times fall on every calendar day of the window and at every hour, as real calendars'
    # do. At this density 20 people are never all free by chance, so a few two-hour gaps on
    # different days are kept clear of busy times (everyone's standing "case conference
    # afternoon", say): those are the free slots the candidates come from.
    gaps = []
    for day in rng.sample(days, FREE_GAPS):
        opens, _closes = CALENDAR.day_bounds(day, CALENDAR.hours)
        start = opens + rng.randrange(0, 25) * 900
        gaps.append((start, start + 2 * 3600))
    begin = CALENDAR.timestamp(FIRST_DAY, time(0))
    span = CALENDAR.timestamp(last_day + timedelta(days=1), time(0)) - begin
    invitees = []
    for index in range(INVITEES):
        busy: list[Interval] = []
        while len(busy) < BUSY_PER_INVITEE:
            start = begin + rng.randrange(span // 300) * 300
            end = start + rng.randint(15, 120) * 60
            if not any(start < gap_end and gap_start < end for gap_start, gap_end in gaps):
                busy.append((start, end))
        invitees.append(InviteeBusy(required=index < REQUIRED, busy=busy))
    bookings: list[Interval] = []
    for _ in range(BOOKINGS):
        opens, _closes = CALENDAR.day_bounds(rng.choice(days), CALENDAR.hours)
        start = opens + rng.randrange(0, 27) * 900
        bookings.append((start, start + 90 * 60))
    request = SlotRequest(
        first_day=FIRST_DAY, last_day=last_day, bookings=bookings, invitees=invitees
    )
    voters = [Voter(key=1000 + index, required=index < REQUIRED) for index in range(INVITEES)]
    votes: dict[tuple[int, int], Vote] = {}
    for voter in voters:
        for slot in range(request.limit):
            draw = rng.random()
            if draw < 0.1:
                continue  # not answered
            votes[(voter.key, slot)] = (
                Vote.YES if draw < 0.6 else Vote.IF_NEED_BE if draw < 0.9 else Vote.NO
            )
    return Instance(request, voters, votes)


def reference_open_starts(calendar: WorkingCalendar, request: SlotRequest) -> list[tuple[int, int]]:
    """Every grid start checked against every booking and busy interval, one by one."""
    duration = request.duration_minutes * 60
    buffer = request.buffer_minutes * 60
    out = []
    for day in calendar.working_days(request.first_day, request.last_day):
        opens, closes = calendar.day_bounds(day, request.hours)
        start = opens
        while start + duration <= closes:
            end = start + duration
            if request.not_before is None or start >= request.not_before:
                blocked = any(
                    a < b and start < b + buffer and end > a - buffer for a, b in request.bookings
                ) or any(
                    a < b and start < b and end > a
                    for invitee in request.invitees
                    if invitee.required
                    for a, b in invitee.busy
                )
                if not blocked:
                    busy_optional = sum(
                        1
                        for invitee in request.invitees
                        if not invitee.required
                        and any(a < b and start < b and end > a for a, b in invitee.busy)
                    )
                    out.append((start, busy_optional))
            start += request.grid_minutes * 60
    return out


def reference_best(
    slot_count: int, voters: Sequence[Voter], votes: Mapping[tuple[int, int], Vote]
) -> Best | NoCommonSlot:
    """FindTime's rule by brute force: score every slot, take the greatest score."""
    scores = []
    blockers = {}
    for slot in range(slot_count):
        said = {voter: votes.get((voter.key, slot)) for voter in voters}
        noes = sorted(v.key for v, vote in said.items() if v.required and vote is Vote.NO)
        if noes:
            blockers[slot] = tuple(noes)
            continue
        yes = sum(1 for vote in said.values() if vote is Vote.YES)
        optional = sum(
            1 for v, vote in said.items() if not v.required and vote in (Vote.YES, Vote.IF_NEED_BE)
        )
        maybe = tuple(sorted(v.key for v, vote in said.items() if vote is Vote.IF_NEED_BE))
        scores.append(((yes, optional, -slot), Best(slot, yes, optional, maybe)))
    if not scores:
        return NoCommonSlot(blockers)
    return max(scores, key=lambda scored: scored[0])[1]


def reference(case: Instance) -> tuple[list[int], Best | NoCommonSlot]:
    options = reference_open_starts(CALENDAR, case.request)
    slots = choose(CALENDAR, case.request, options)
    return slots, reference_best(len(slots), case.voters, case.votes)


def ours(case: Instance) -> tuple[list[int], Best | NoCommonSlot]:
    slots = candidates(CALENDAR, case.request)
    return slots, best_slot(len(slots), case.voters, case.votes)


def main() -> int:
    rng = random.Random(SEED)
    cases = [instance(rng) for _ in range(RUNS)]
    ours(cases[0])  # warm up: imports, the holiday table
    ours_times: list[float] = []
    reference_times: list[float] = []
    for number, case in enumerate(cases):
        began = clock.perf_counter()
        our_slots, our_best = ours(case)
        ours_times.append(clock.perf_counter() - began)
        began = clock.perf_counter()
        their_slots, their_best = reference(case)
        reference_times.append(clock.perf_counter() - began)

        theirs = reference_open_starts(CALENDAR, case.request)
        problems = []
        if free_starts(CALENDAR, case.request) != [start for start, busy in theirs if busy == 0]:
            problems.append("free starts differ")
        if open_starts(CALENDAR, case.request) != theirs:
            problems.append("open starts or busy optional counts differ")
        if len(our_slots) != case.request.limit:
            problems.append(f"{len(our_slots)} candidates, not {case.request.limit}")
        if our_slots != their_slots:
            problems.append(f"candidates differ: {our_slots} != {their_slots}")
        if our_best != their_best:
            problems.append(f"best slot differs: {our_best} != {their_best}")
        if problems:
            print(f"finder bench, run {number}: " + "; ".join(problems), file=sys.stderr)
            return 1
    ours_ms = statistics.median(ours_times) * 1000
    reference_ms = statistics.median(reference_times) * 1000
    figures = {
        "bench": "finder",
        "ours_ms": round(ours_ms, 2),
        "reference_ms": round(reference_ms, 1),
        "speedup": round(reference_ms / ours_ms, 1),
        "runs": RUNS,
    }
    print(json.dumps(figures))
    return 0
