"""The best slot by FindTime's rule, and a property test against a brute-force reference."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.finder import Best, NoCommonSlot, Vote, Voter, best_slot

EXAMPLES = int(os.environ.get("ROUNDTABLE_PROPERTY_EXAMPLES", "200"))
YES, MAYBE, NO = Vote.YES, Vote.IF_NEED_BE, Vote.NO
POLICE, OSPOD, SCHOOL, NGO = Voter(1, True), Voter(2, True), Voter(3, False), Voter(4, False)
VOTERS = [POLICE, OSPOD, SCHOOL, NGO]


def ballot(**slots: str) -> dict[tuple[int, int], Vote]:
    """ballot(s0="YY-N") - one character per voter in VOTERS order: Y, M(aybe), N, - (none)."""
    letters = {"Y": YES, "M": MAYBE, "N": NO}
    votes = {}
    for name, column in slots.items():
        for voter, letter in zip(VOTERS, column, strict=True):
            if letter != "-":
                votes[(voter.key, int(name[1:]))] = letters[letter]
    return votes


def test_the_votes_have_the_stored_values() -> None:
    assert [vote.value for vote in Vote] == ["yes", "maybe", "no"]


def test_most_yes_wins_among_slots_no_required_invitee_refused() -> None:
    votes = ballot(s0="YYYN", s1="NYYY", s2="YMYY")
    assert best_slot(3, VOTERS, votes) == Best(slot=2, yes=3, optional=2, if_need_be=(2,))


def test_then_most_optional_invitees_who_can_come_then_the_earliest() -> None:
    votes = ballot(s0="YYNN", s1="YYNM", s2="MYYY", s3="YYNM")
    # s0, s1, s3: two yes each; s1 and s3 have an optional maybe; s2 has three yes
    assert best_slot(4, VOTERS, votes) == Best(slot=2, yes=3, optional=2, if_need_be=(1,))
    votes = ballot(s0="YYNN", s1="YYNM", s2="YYNM")
    assert best_slot(3, VOTERS, votes) == Best(slot=1, yes=2, optional=1, if_need_be=(4,))
    votes = ballot(s0="YMYN", s1="MYYN")
    assert best_slot(2, VOTERS, votes) == Best(slot=0, yes=2, optional=1, if_need_be=(2,))


def test_yes_counts_everyone_and_if_need_be_counts_for_the_optional_only() -> None:
    # s0: the required said yes, one optional can come; s1: both optional can come
    votes = ballot(s0="YYMN", s1="MMYY")
    assert best_slot(2, VOTERS, votes) == Best(slot=1, yes=2, optional=2, if_need_be=(1, 2))
    votes = ballot(s0="MMYY", s1="YYMM")  # a tie on both counts: the earlier
    assert best_slot(2, VOTERS, votes) == Best(slot=0, yes=2, optional=2, if_need_be=(1, 2))


def test_an_optional_no_does_not_block_and_a_missing_vote_neither_blocks_nor_counts() -> None:
    votes = ballot(s0="YYNN", s1="-YYY")
    assert best_slot(2, VOTERS, votes) == Best(slot=1, yes=3, optional=2, if_need_be=())
    assert best_slot(2, VOTERS, {}) == Best(slot=0, yes=0, optional=0, if_need_be=())


def test_no_common_slot_names_the_required_invitees_who_refused_each_slot() -> None:
    votes = ballot(s0="NYYY", s1="NNYY", s2="YNMM")
    assert best_slot(3, VOTERS, votes) == NoCommonSlot(blockers={0: (1,), 1: (1, 2), 2: (2,)})
    assert best_slot(0, VOTERS, votes) == NoCommonSlot(blockers={})


def test_votes_of_strangers_and_for_other_slots_are_ignored() -> None:
    votes = ballot(s0="NYYY", s1="YYYY") | {(99, 0): YES, (1, 5): YES, (3, 7): NO}
    assert best_slot(2, VOTERS, votes) == Best(slot=1, yes=4, optional=2, if_need_be=())
    assert best_slot(1, VOTERS, votes) == NoCommonSlot(blockers={0: (1,)})


def reference(
    slot_count: int, voters: list[Voter], votes: dict[tuple[int, int], Vote]
) -> Best | NoCommonSlot:
    """The rule written out plainly: score every eligible slot, sort by the whole key."""
    eligible = []
    for slot in range(slot_count):
        said = [(voter, votes.get((voter.key, slot))) for voter in voters]
        if any(voter.required and vote == NO for voter, vote in said):
            continue
        yes = len([1 for _, vote in said if vote == YES])
        optional = len([1 for voter, vote in said if not voter.required and vote in (YES, MAYBE)])
        maybe = tuple(sorted(voter.key for voter, vote in said if vote == MAYBE))
        eligible.append(Best(slot, yes, optional, maybe))
    if eligible:
        return sorted(eligible, key=lambda best: (-best.yes, -best.optional, best.slot))[0]
    return NoCommonSlot(
        {
            slot: tuple(
                sorted(
                    voter.key
                    for voter in voters
                    if voter.required and votes.get((voter.key, slot)) == NO
                )
            )
            for slot in range(slot_count)
        }
    )


@st.composite
def polls(draw: st.DrawFn) -> tuple[int, list[Voter], dict[tuple[int, int], Vote]]:
    slot_count = draw(st.integers(0, 6))
    keys = draw(st.lists(st.integers(1, 50), max_size=6, unique=True))
    voters = [Voter(key, draw(st.booleans())) for key in keys]
    votes = {}
    for key in [*keys, 77]:  # 77 is nobody: their votes must change nothing
        for slot in range(slot_count + 1):  # and the extra slot does not exist
            vote = draw(st.sampled_from([None, YES, MAYBE, NO]))
            if vote is not None:
                votes[(key, slot)] = vote
    return slot_count, voters, votes


@settings(max_examples=EXAMPLES, deadline=None)
@given(polls())
def test_best_slot_agrees_with_the_brute_force_reference(
    poll: tuple[int, list[Voter], dict[tuple[int, int], Vote]],
) -> None:
    slot_count, voters, votes = poll
    assert best_slot(slot_count, voters, votes) == reference(slot_count, voters, votes)
