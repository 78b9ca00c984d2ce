"""Two districts in one database never see each other's people, referrals, cases, conferences
or tasks: not in lists and queues, not in the pickers of institutions and people, not in polls,
reminders and digests, not in the /start message. (Forged ids are the access matrix's.)

Every name in district A (Cheb) holds "Cheb" and every one in B (Sokolov) "Sokolov", and the
codes of both are known, so one look tells whether anything crossed over.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.models import Case, CaseStatus, Institution, InstitutionKind
from bot.sandbox import FloodLimits, Person
from tests.e2e.access_world import DISTRICTS, World, who
from tests.e2e.conftest import RunningBot
from tests.e2e.test_access_matrix import Matrix, Seen, person_of, prepared, watched
from tests.e2e.test_conferences import until

OTHER = {"A": "B", "B": "A"}


@pytest.fixture
def flood_limits() -> FloodLimits:
    return FloodLimits(enabled=False)


def codes(world: World, letter: str, *pools: str) -> set[str]:
    """The referral or case codes of a district's objects in these pools."""
    return {
        thing.secrets[0]
        for pool in pools
        for thing in world.pools[pool]
        if thing.district == letter
    }


def crossed(world: World, letter: str, text: str) -> list[str]:
    """What of the other district is in a text meant for district `letter`."""
    other = OTHER[letter]
    found = [DISTRICTS[other]] if DISTRICTS[other] in text else []
    return found + sorted(s for s in world.secrets_of(other) if s in text)


async def all_pages(matrix: Matrix, person: Person, first: Seen, namespace: str) -> str:
    """The text of every page of a list, pressing ▶ until there is no next page."""
    texts, seen, page = [first.blob()], first, 0
    while True:
        pages = [
            int(m.group(1)) for d in seen.data() if (m := re.fullmatch(rf"{namespace}:p:(\d+)", d))
        ]
        later = [p for p in pages if p > page]
        if not later:
            return "\n".join(texts)
        page = min(later)
        seen = await matrix.act(person, press=f"{namespace}:p:{page}")
        texts.append(seen.blob())


async def case_codes(bot: RunningBot, world: World, letter: str) -> set[str]:
    district_id = world.institutions[f"{letter}.OSPOD"].district_id
    async with bot.runtime.database.reading() as session:
        return set(
            await session.scalars(
                select(Case.code).where(
                    Case.district_id == district_id, Case.status == CaseStatus.OPEN
                )
            )
        )


async def test_lists_and_queues_hold_only_the_own_district(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix = await prepared(bot, monkeypatch)
    world = matrix.world
    for letter in DISTRICTS:
        coordinator = person_of(matrix, f"{letter}.C1")
        queue = await all_pages(
            matrix, coordinator, await matrix.act(coordinator, text="/referrals"), "rq"
        )
        waiting = codes(world, letter, "referral", "referral-accept", "referral-question")
        assert waiting and all(code in queue for code in waiting), queue
        assert crossed(world, letter, queue) == []

        cases = await all_pages(
            matrix, coordinator, await matrix.act(coordinator, text="/cases"), "cs"
        )
        assert all(code in cases for code in await case_codes(bot, world, letter))
        assert crossed(world, letter, cases) == []

        agenda = (await matrix.act(coordinator, text="/agenda")).blob()
        mine = {
            t.secrets[0]
            for t in world.pools["scheduled"]
            if t.district == letter and t.chair == f"{letter}.C1"
        }
        assert mine and all(code in agenda for code in mine), agenda
        assert crossed(world, letter, agenda) == []

        admin = person_of(matrix, f"{letter}.A1")
        people = await all_pages(matrix, admin, await matrix.act(admin, text="/members"), "mem")
        names = {m.display_name for key, m in world.members.items() if key.startswith(letter)}
        assert all(name in people for name in names), people
        assert crossed(world, letter, people) == []

        referrer = person_of(matrix, f"{letter}.R1")
        tasks = (await matrix.act(referrer, text="/tasks")).blob()
        titles = {
            t.extra["title"]
            for pool, things in world.pools.items()
            if pool.startswith("task")
            for t in things
            if t.holder == f"{letter}.R1"
        }
        assert titles and all(title[:29] in tasks for title in titles), tasks
        assert crossed(world, letter, tasks) == []
        own = (await matrix.act(referrer, text="/myreferrals")).blob()
        theirs = {
            t.secrets[0]
            for pool in ("referral", "referral-accept", "referral-question")
            for t in world.pools[pool]
            if t.holder == f"{letter}.R1"
        }
        assert theirs and all(code in own for code in theirs), own
        assert crossed(world, letter, own) == []
        # Not even a colleague's referral of the same school.
        assert not any(
            t.secrets[0] in own for t in world.pools["referral"] if t.holder == f"{letter}.R2"
        )

        for key in ("C1", "R1", "P1", "A1"):  # the home message names no one
            home = (await matrix.act(person_of(matrix, f"{letter}.{key}"), text="/start")).blob()
            assert "Commands:" in home and crossed(world, letter, home) == []


async def test_pickers_offer_only_the_own_district(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix = await prepared(bot, monkeypatch)
    world = matrix.world
    for letter in DISTRICTS:
        town = DISTRICTS[letter]
        ours = [f"{name} {town}" for name in ("OSPOD", "School", "Police", "Town")]
        for key in ("A1", "C1"):  # whom an invite link is for
            person = person_of(matrix, f"{letter}.{key}")
            listed = await all_pages(
                matrix, person, await matrix.act(person, text="/invite"), "inv"
            )
            assert all(name in listed for name in ours), listed
            assert crossed(world, letter, listed) == []

        coordinator = person_of(matrix, f"{letter}.C1")
        me = who(world, "coordinator", f"{letter}.C1")
        case = world.pick("case", me, "own")
        assert case is not None
        plan = (await matrix.act(coordinator, press=f"cf:n:{case.id}")).blob()
        assert all(name in plan for name in ours[1:]), plan  # not OSPOD: it chairs
        assert crossed(world, letter, plan) == []
        await matrix.act(coordinator, text="/cases")  # leaves the plan

        held = world.pick("held", me, "own")
        assert held is not None
        await matrix.act(coordinator, press=f"rc:n:{held.id}")
        owners = (await matrix.act(coordinator, text="Visit the family")).blob()
        assert "Who owns it?" in owners and f"{town} P1" in owners
        assert crossed(world, letter, owners) == []
        await matrix.act(coordinator, text="/cancel")

        task = world.pick("task", me, "district")
        assert task is not None
        takers = (await matrix.act(coordinator, press=f"tk:o:{task.id}")).blob()
        assert "Who takes the task over?" in takers and crossed(world, letter, takers) == []

        participant = person_of(matrix, f"{letter}.P1")
        invitation = world.pick("scheduled-invitation", who(world, "p", f"{letter}.P1"), "own")
        assert invitation is not None
        colleagues = (await matrix.act(participant, press=f"iv:{invitation.id}:0:c")).blob()
        assert f"{town} P2" in colleagues
        assert f"{town} R1" not in colleagues  # another institution of the same district
        assert crossed(world, letter, colleagues) == []

        referrer = person_of(matrix, f"{letter}.R1")
        await matrix.act(referrer, text="/refer")
        schools = (await matrix.act(referrer, press="ref:go:school")).blob()
        assert f"School {town}" in schools and crossed(world, letter, schools) == []
        await matrix.act(referrer, text="/cancel")


async def test_polls_reminders_and_digests_stay_in_their_district(
    bot: RunningBot, clock: FakeClock
) -> None:
    matrix = await watched(bot)
    world = matrix.world
    everyone = {key: person_of(matrix, key) for key in world.members}

    # A poll sent in A reaches A's invited people only.
    hana = everyone["A.C1"]
    case = world.pick("case", who(world, "coordinator", "A.C1"), "own")
    assert case is not None
    await matrix.act(hana, press=f"cf:n:{case.id}")
    for name in ("Police", "Town"):  # the school is ticked already (truancy)
        await matrix.act(hana, press=f"pl:{case.id}:i:{world.institutions[f'A.{name}'].id}")
    marks = {key: len(p.events) for key, p in everyone.items()}
    seen = await matrix.act(hana, press=f"pl:{case.id}:s")
    assert "is on its way" in seen.blob()
    polled = {
        key
        for key, person in everyone.items()
        if any("When can" in (e.text or "") for e in person.events[marks[key] :])
    }
    assert polled and all(key.startswith("A.") for key in polled), polled
    assert {"A.R1", "A.P1", "A.A1"} <= polled  # the invited institutions' members
    await matrix.act(hana, text="/cases")

    # Confirming a time sends the calendar invitations (through the outbox): to A's people.
    confirm = world.pick("poll-confirm", who(world, "coordinator", "A.C1"), "own")
    assert confirm is not None
    marks = {key: len(p.events) for key, p in everyone.items()}
    await matrix.act(hana, press=f"cf:c:{confirm.id}:{confirm.extra['slot']}")
    for key in ("A.R1", "A.P1", "A.A1"):
        # Asked, or marked as coming by a yes in the poll: an invitation either way.
        invitation = await until(everyone[key], "Place: ")
        name, content, _mime = everyone[key].document_of(invitation)
        assert name == f"{confirm.extra['code']}.ics"
        assert crossed(world, "A", content.decode()) == [], content.decode()
    await bot.settle()
    invited = {k for k, p in everyone.items() if len(p.events) > marks[k]}
    assert invited and all(key.startswith("A.") for key in invited), invited

    # A week later (the polls' deadlines passed, the referrals waited, Monday's digest):
    # what each coordinator is sent names their district only.
    await bot.sweep()  # plans next Monday's digests
    clock.advance(timedelta(days=7))
    marks = {key: len(p.events) for key, p in everyone.items()}
    await bot.sweep()
    for key, person in everyone.items():
        letter = key[0]
        told = "\n".join(
            (e.message.text or e.message.caption or "") if e.message else ""
            for e in person.events[marks[key] :]
        )
        assert crossed(world, letter, told) == [], (key, told)
        if key.endswith(("C1", "C2", "K")):
            assert "Your week" in told, (key, told)
            waiting = codes(world, letter, "referral", "referral-accept")
            assert all(code in told for code in waiting), (key, told)


async def test_institutions_are_the_own_districts_in_the_database_too(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The world itself: two districts, each with its own four institutions (a guard against
    a world in which isolation would be trivially true)."""
    matrix = await prepared(bot, monkeypatch)
    async with bot.runtime.database.reading() as session:
        rows = list(await session.execute(select(Institution.district_id, Institution.kind)))
    districts = {district for district, _kind in rows}
    assert len(districts) == 2
    for district in districts:
        kinds = {kind for d, kind in rows if d == district}
        assert {InstitutionKind.OSPOD, InstitutionKind.SCHOOL, InstitutionKind.POLICE} <= kinds
    assert len(matrix.world.members) == 2 * 14
