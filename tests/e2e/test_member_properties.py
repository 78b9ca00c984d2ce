"""Property-based: random traffic at joining, /start, the menus, /invite and /members.

An admin, a coordinator and a newcomer who has not joined yet send random traffic
(tests/e2e/properties.py: hostile texts, commands, media, presses of what they see, forged and
garbage callback data), mixed with runs of cooperative moves: the admin and the coordinator
make invite links (for an existing institution or a new one the admin registers, with a role),
list and deactivate members, change the language; the newcomer joins with the newest link
someone made for them, a used one, or a made-up one, and picks a language. Besides the shared
properties (every update answered, strangers too; nothing reaches the error handler or the
log), the database stays consistent:

- every member joined with exactly one code: a code is used by at most one member, used at a
  time exactly when used by someone, and the members are as many as the used codes;
- a member is active exactly when not deactivated; the example's admin is still active (an
  admin cannot take themselves out);
- every used code's role is its member's role (a forged role button cannot make an admin), and
  no code is kept in the clear;
- each person's "/" menu is their role's commands in their language; a stranger's and a
  leaver's chat has no menu of its own.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import strategies as st
from sqlalchemy import select

from bot.core.models import Institution, InstitutionKind, InviteCode, Member, Role
from bot.sandbox import Person
from handlers.invite import NEW_NAME
from handlers.menus import commands_for
from tests.e2e.conftest import RunningBot
from tests.e2e.properties import (
    Action,
    Data,
    Driver,
    Press,
    Single,
    Text,
    action_lists,
    actions_of,
    examples,
    flood_limits,  # noqa: F401 - the stand-in without flood limits
    garbage_data,
    join,
    run_properties,
)

EXAMPLES = examples(30)
MAX_ACTIONS = 10
HELPFUL_STEPS = 8
LINK = re.compile(r"\?start=([A-Za-z0-9_-]+)")
COMMANDS = ("/invite", "/members", "/language", "/start", "/help", "/referrals", "/refer")
TEMPLATES = ("mem:ask:{}", "mem:do:{}", "mem:p:{}", "inv:i:{}", "inv:p:{}", "lang:{}")
FIXED_DATA = (
    "inv:new",
    "inv:x",
    "inv:k:police",
    "inv:k:school",
    "inv:k:bogus",
    "inv:r:admin",
    "inv:r:coordinator",
    "inv:r:participant",
    "inv:r:referrer",
    "inv:r:",
    "inv:i:",
    "mem:p:-1",
    "mem:do:",
    "mem:ask:1:2",
    "lang:en",
    "lang:cs",
    "lang:uk",
    "lang:xx",
    "lang:",
)
SOURCES = ("member", "institution")
NAMES = ("Spirála Cheb", "ZŠ <b>Nová</b> & spol.", "Policie ČR – OOP Cheb")


def member_actions(who: str) -> st.SearchStrategy[Action]:
    return actions_of(
        who,
        commands=COMMANDS,
        templates=TEMPLATES,
        sources=SOURCES,
        data=garbage_data(FIXED_DATA),
        helpful_steps=HELPFUL_STEPS,
        extra_texts=NAMES,
    )


ACTIONS = action_lists(
    member_actions, ("admin", "admin", "coordinator", "newcomer", "newcomer"), MAX_ACTIONS
)


@dataclass
class MemberDriver(Driver):
    links: list[str] = field(default_factory=list)  # codes of links made so far, oldest first
    everyone: dict[int, Person] = field(default_factory=dict)  # all examples' people

    async def newcomers(self, number: int) -> dict[str, Person]:
        base = 30_000 + 10 * number
        admin = await join(
            self.bot, base, "Alena", Role.ADMIN, institution="OSPOD Cheb", district="Cheb"
        )
        coordinator = await join(
            self.bot, base + 1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", district="Cheb"
        )
        newcomer = self.bot.sandbox.person(base + 2, "Nikola", language_code="uk")
        for person in (admin, coordinator, newcomer):
            self.everyone[person.user_id] = person
        if number % 2:  # a link made for the newcomer before (the others are made in the dialog)
            self.links.append(
                await self.bot.invite_code(
                    Role.PARTICIPANT, "Policie Cheb", InstitutionKind.POLICE, district="Cheb"
                )
            )
        return {"admin": admin, "coordinator": coordinator, "newcomer": newcomer}

    async def helpful(self, who: str, variant: int) -> Single:
        person = self.people[who]
        if who == "newcomer":
            return self.joining(variant)
        if await self.dialog_state(person, "invite") == NEW_NAME:
            return Text(who, NAMES[variant % len(NAMES)])
        newest = self.newest_buttons(person)
        onward = [d for d in newest if d.startswith(("inv:r:", "inv:i:", "inv:k:", "mem:"))]
        if not newest or variant % 7 == 0:
            return Text(who, ("/invite", "/members", "/invite", "/language")[variant // 7 % 4])
        if onward and variant % 7 != 1:
            return Data(who, onward[variant % len(onward)])
        return Press(who, variant)

    def joining(self, variant: int) -> Single:
        """The newest link anyone made (it may be used by now), an old one, or none."""
        for person in (self.people["admin"], self.people["coordinator"]):
            self.links += [c for c in LINK.findall(person.transcript()) if c not in self.links]
        codes = self.links
        newcomer = self.people["newcomer"]
        if newcomer.chat.bot_messages_newest_first() and variant % 3 == 0:
            newest = self.newest_buttons(newcomer)
            if any(data.startswith("lang:") for data in newest):
                return Press("newcomer", variant)
        if codes and variant % 5:
            return Text("newcomer", f"/start {codes[-1 if variant % 4 else 0]}")
        return Text("newcomer", f"/start {('made-up-code', 'x' * 64, '')[variant % 3]}")

    async def ids(self, person: Person, source: str) -> list[int]:
        table = Member.id if source == "member" else Institution.id
        async with self.bot.runtime.database.transaction() as session:
            return list(await session.scalars(select(table)))

    async def check(self) -> None:
        async with self.bot.runtime.database.transaction() as session:
            people = list(await session.scalars(select(Member)))
            codes = list(await session.scalars(select(InviteCode)))
        by_id = {member.id: member for member in people}
        used = [code for code in codes if code.used_by_id is not None]
        for code in codes:
            assert (code.used_at is None) == (code.used_by_id is None), self.failure(
                f"code {code.id} used at {code.used_at} by {code.used_by_id}"
            )
            assert re.fullmatch(r"[0-9a-f]{64}", code.code_hash), self.failure(
                f"code {code.id} is not kept as a hash"
            )
        twice = [m for m, n in Counter(code.used_by_id for code in used).items() if n > 1]
        assert not twice, self.failure(f"members who joined with two codes: {twice}")
        assert len(used) == len(people), self.failure(
            f"{len(people)} members, {len(used)} codes used"
        )
        for code in used:
            member = by_id[code.used_by_id]  # type: ignore[index]
            assert member.role is code.role, self.failure(
                f"member {member.id} is {member.role.value}, joined with a {code.role.value} code"
            )
        for member in people:
            assert member.active == (member.deactivated_at is None), self.failure(
                f"member {member.id}: active {member.active}, deactivated {member.deactivated_at}"
            )
        admin = next(m for m in people if m.telegram_user_id == self.people["admin"].user_id)
        assert admin.active, self.failure("the admin was taken out")
        self.check_menus({member.telegram_user_id: member for member in people})
        self.tally["members"] = len(people)
        self.tally["members active"] = sum(member.active for member in people)
        self.tally["codes made"] = len(codes)
        self.tally["codes used"] = len(used)
        self.tally["newcomers joined"] = sum(
            m.telegram_user_id % 10 == 2 for m in people if m.telegram_user_id >= 30_000
        )

    def check_menus(self, by_user: dict[int, Member]) -> None:
        """Each person's "/" menu is their role's, in their language; a stranger's or a
        leaver's chat has none of its own (earlier examples' people are often taken out)."""
        runtime = self.bot.runtime
        for person in self.everyone.values():
            member = by_user.get(person.user_id)
            menu = self.bot.sandbox.my_commands(scope={"type": "chat", "chat_id": person.chat_id})
            expected = []
            if member is not None and member.active:
                tr = runtime.translator(member.locale)
                expected = [
                    {"command": command.command, "description": command.description}
                    for command in commands_for(member.role, tr)
                ]
            assert menu == expected, self.failure(f"{person.first_name}'s menu is {menu}")


async def test_joining_menus_invites_and_members_keep_the_database_consistent(
    bot: RunningBot,
) -> None:
    driver = MemberDriver(bot)
    tally = await run_properties(driver, ACTIONS, EXAMPLES, "joining and members")
    assert tally["callbacks answered"] > 0
