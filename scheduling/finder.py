"""The common-date finder: the best slot of a poll by Microsoft FindTime's rule."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class Vote(enum.StrEnum):
    YES = "yes"
    IF_NEED_BE = "maybe"
    NO = "no"


@dataclass(frozen=True)
class Voter:
    key: int  # the invitee's id
    required: bool


@dataclass(frozen=True)
class Best:
    slot: int  # index into the slots
    yes: int  # how many voted yes
    optional: int  # optional invitees who can come (yes or if need be)
    if_need_be: tuple[int, ...]  # keys of invitees who said if need be, ascending


@dataclass(frozen=True)
class NoCommonSlot:
    blockers: dict[int, tuple[int, ...]]  # slot index -> keys of required invitees who said no


def best_slot(
    slot_count: int, voters: Sequence[Voter], votes: Mapping[tuple[int, int], Vote]
) -> Best | NoCommonSlot:
    """The best of `slot_count` slots given in time order, from `votes[(voter key, slot)]`.

    A slot is eligible when no required voter said no; a missing vote (not answered yet) neither
    blocks a slot nor counts for it. Among the eligible slots the best has the most yes votes
    (from all voters), then the most optional voters who can come (yes or if need be), then the
    lowest index. With no eligible slot, NoCommonSlot lists for every slot the required voters
    who said no (keys ascending).
    """
    best: Best | None = None
    blockers: dict[int, tuple[int, ...]] = {}
    for slot in range(slot_count):
        yes = optional = 0
        if_need_be: list[int] = []
        blocking: list[int] = []
        for voter in voters:
            vote = votes.get((voter.key, slot))
            if vote is None:
                continue
            if vote == Vote.NO:
                if voter.required:
                    blocking.append(voter.key)
                continue
            if vote == Vote.YES:
                yes += 1
            else:
                if_need_be.append(voter.key)
            if not voter.required:
                optional += 1
        if blocking:
            blockers[slot] = tuple(sorted(blocking))
        elif best is None or (yes, optional) > (best.yes, best.optional):
            best = Best(slot, yes, optional, tuple(sorted(if_need_be)))
    return NoCommonSlot(blockers) if best is None else best
